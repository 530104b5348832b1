"""The bounds every reader keeps, so that no input, however large or odd, costs more than a few hundred MB
of memory or more time than its size: one place for the limits and the nesting-depth check.

- A JSON Lines line and a CSV line are read up to LINE_LIMIT bytes, a JSON value read as a stream (a
  .json array, pretty-printed objects) up to LINE_LIMIT characters; a longer one is reported with its
  line number and not loaded. A row that big is far beyond any max_length (262,144 tokens is about 1 MB).
- A CSV field may hold FIELD_LIMIT characters (csv.field_size_limit is set to it for every read).
- A Parquet value may hold CELL_LIMIT bytes; a data page over PAGE_LIMIT is not decompressed at all
  (parquet_pages.py finds page sizes from the page headers before anything is decoded).
- JSON may nest MAX_DEPTH levels (objects and arrays); deeper values are reported, never parsed
  recursively into a RecursionError.
"""

from __future__ import annotations

import re
from typing import BinaryIO

MB = 1024 * 1024
LINE_LIMIT = 32 * MB
FIELD_LIMIT = 16 * MB
CELL_LIMIT = 32 * MB
PAGE_LIMIT = 128 * MB
MAX_DEPTH = 100

# a JSON string (skipped whole) or one bracket; the unrolled form keeps long strings fast
_TOKENS_B = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_TOKENS_S = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def skip_rest_of_line(fh: BinaryIO, chunk: int = 4 * MB) -> None:
    """Move FH past the next newline (or to the end of the file) in large reads into one reused buffer."""
    block = bytearray(chunk)
    while True:
        start = fh.tell()
        got = fh.readinto(block)
        if not got:
            return
        at = block.find(b"\n", 0, got)
        if at >= 0:
            fh.seek(start + at + 1)
            return


def mb(size: int) -> str:
    return f"{size / MB:.0f} MB" if size >= MB else f"{size} bytes"


def too_deep(text: bytes | str, start: int = 0, end: int | None = None) -> bool:
    """True when the JSON in text[start:end] nests objects/arrays more than MAX_DEPTH levels (brackets
    inside strings do not count). Cheap for ordinary rows: the exact scan runs only when the text holds
    more than MAX_DEPTH opening brackets at all."""
    end = len(text) if end is None else end
    if isinstance(text, bytes):
        if text.count(b"[", start, end) + text.count(b"{", start, end) <= MAX_DEPTH:
            return False
        tokens, opening, closing = _TOKENS_B, (0x5B, 0x7B), (0x5D, 0x7D)
    else:
        if text.count("[", start, end) + text.count("{", start, end) <= MAX_DEPTH:
            return False
        tokens, opening, closing = _TOKENS_S, ("[", "{"), ("]", "}")
    depth = 0
    for match in tokens.finditer(text, start, end):
        char = text[match.start()]
        if char in opening:
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif char in closing:
            depth -= 1
    return False


DEPTH_MESSAGE = f"JSON nested more than {MAX_DEPTH} levels deep (objects or arrays inside each other); not read"
