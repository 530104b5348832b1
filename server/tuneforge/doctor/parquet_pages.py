"""The largest page of a Parquet column chunk, read from the page headers alone (nothing is decompressed).

A value of a Parquet column lives whole inside one page, so the largest page's uncompressed size bounds
the largest value. pyarrow does not expose page headers, so they are read here: each is a small Thrift
(compact protocol) struct in front of its page, whose fields 2 and 3 are the page's uncompressed and
compressed sizes. Only the headers are read (a few KB per page), so walking a chunk costs its number of
pages, not its size. Any header that cannot be read gives None: the caller then falls back on the chunk's
own size.
"""

from __future__ import annotations

from typing import BinaryIO

HEADER_READ = 64 * 1024  # a page header is a few hundred bytes (a few KB with statistics)
HEADER_MAX = 1024 * 1024
MAX_PAGES = 1_000_000


class _Short(Exception):
    """The buffer ends inside the header: read more."""


class _Compact:
    """Just enough of Thrift's compact protocol to read one struct's i32 fields and skip the rest."""

    def __init__(self, buf: bytes):
        self.buf = buf
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.buf):
            raise _Short
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise ValueError("varint too long")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def advance(self, n: int) -> None:
        if n < 0:
            raise ValueError("negative length")
        self.pos += n
        if self.pos > len(self.buf):
            raise _Short

    def skip(self, kind: int, depth: int) -> None:
        if depth > 16:
            raise ValueError("nested too deeply")
        if kind in (1, 2):  # a boolean held in the field header
            return
        if kind == 3:
            self.advance(1)
        elif kind in (4, 5, 6):
            self.varint()
        elif kind == 7:
            self.advance(8)
        elif kind == 8:
            self.advance(self.varint())
        elif kind in (9, 10):  # list, set
            head = self.byte()
            size, element = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            for _ in range(size):
                self.element(element, depth)
        elif kind == 11:  # map
            size = self.varint()
            if size:
                types = self.byte()
                for _ in range(size):
                    self.element(types >> 4, depth)
                    self.element(types & 0x0F, depth)
        elif kind == 12:
            self.struct(depth + 1)
        elif kind == 13:  # uuid
            self.advance(16)
        else:
            raise ValueError(f"unknown thrift type {kind}")

    def element(self, kind: int, depth: int) -> None:
        """A container's element (booleans take a byte there)."""
        if kind in (1, 2):
            self.advance(1)
        else:
            self.skip(kind, depth + 1)

    def struct(self, depth: int = 0, want: frozenset[int] = frozenset()) -> dict[int, int]:
        found: dict[int, int] = {}
        last = 0
        while True:
            head = self.byte()
            if head == 0:
                return found
            delta, kind = head >> 4, head & 0x0F
            field = last + delta if delta else self.zigzag()
            last = field
            if field in want and kind == 5:
                found[field] = self.zigzag()
            else:
                self.skip(kind, depth)


def largest_page(fh: BinaryIO, start: int, length: int) -> int | None:
    """The largest uncompressed page size in the column chunk at [start, start + length), or None."""
    pos, end, largest = start, start + length, 0
    for _ in range(MAX_PAGES):
        if pos >= end:
            return largest
        size = HEADER_READ
        while True:
            fh.seek(pos)
            buf = fh.read(size)
            reader = _Compact(buf)
            try:
                fields = reader.struct(want=frozenset({2, 3}))
                break
            except _Short:
                if len(buf) < size or size >= HEADER_MAX:
                    return None
                size *= 4
            except (ValueError, IndexError):
                return None
        uncompressed, compressed = fields.get(2), fields.get(3)
        if uncompressed is None or compressed is None or uncompressed < 0 or compressed < 0:
            return None
        largest = max(largest, uncompressed)
        pos += reader.pos + compressed
    return None
