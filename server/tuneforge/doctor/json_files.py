"""JSON Lines (.jsonl, .ndjson) and JSON (.json: an array, objects one after another, or lines), read
streaming with the line of every row and an exact reason for every line that cannot be read.
"""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path
from typing import Any, Iterator

from .read_limits import DEPTH_MESSAGE, LINE_LIMIT, MAX_DEPTH, MB, mb, skip_rest_of_line, too_deep
from .row_records import Item, LineFilter, ReadError, Record, only_kept
from .text_files import sniff_text_file

try:  # optional: about 3x faster than the standard library on well-formed lines
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

CHUNK = 1024 * 1024
TOO_LONG = (f"line is longer than {mb(LINE_LIMIT)}; not read (JSON Lines holds one record per line: "
            "is a newline missing, or is a record far too big?)")
_SURROGATE = re.compile("[\udc80-\udcff]")
_NOT_BLANK = re.compile(r"[^ \t\r\n]")


def read_json_file(path: Path, name: str | None, keep: LineFilter | None = None) -> Iterator[Item]:
    """Every row of a .jsonl/.json file; with `keep`, only the records on kept lines (a share of the rows:
    the errors were reported by the first, unshared pass)."""
    head, bom = sniff_text_file(path, name)
    first = head[bom:].lstrip()[:1]
    if first == b"[" or first == b"{" and _objects_span_lines(path, bom):
        # an array, or objects spread over several lines (pretty-printed) or run together on one: a stream
        yield from only_kept(keep, _json_stream(path, name, bom, array=first == b"["))
        return
    if keep is not None:
        yield from (item for item in _json_lines(path, name, bom, keep) if isinstance(item, Record))
        return
    yield from _json_lines(path, name, bom)


def _objects_span_lines(path: Path, bom: int) -> bool:
    """True when the first record line (it starts with '{') cannot hold a whole object: it does not end
    with '}', or it is too long to read as one line."""
    with open(path, "rb") as fh:
        fh.seek(bom)
        while True:
            raw = fh.readline(LINE_LIMIT)
            if not raw:
                return False
            if len(raw) == LINE_LIMIT and not raw.endswith(b"\n"):
                return True
            text = raw.strip()
            if text:
                return not text.endswith(b"}")


def _json_lines(path: Path, name: str | None, bom: int, keep: LineFilter | None = None) -> Iterator[Item]:
    loads = _orjson.loads if _orjson is not None else None
    with open(path, "rb") as fh:
        fh.seek(bom)
        number = 0
        while True:
            raw = fh.readline(LINE_LIMIT)
            if not raw:
                break
            number += 1
            if len(raw) == LINE_LIMIT and not raw.endswith(b"\n"):
                del raw
                if keep is None or keep(number):
                    yield ReadError(number, TOO_LONG, name)
                skip_rest_of_line(fh)
                continue
            if keep is not None and not keep(number):
                continue
            if loads is not None:
                try:
                    value = loads(raw)
                except Exception:
                    pass
                else:
                    if type(value) is dict and (raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH or not too_deep(raw)):
                        yield Record(number, value, name)
                        continue
            if not raw.strip():
                continue
            yield _parse_line(raw, number, name)


def _parse_line(raw: bytes, number: int, name: str | None) -> Item:
    """The careful (slow) path: explain exactly what is wrong with one line."""
    ends_file = not raw.endswith(b"\n")
    text_bytes = raw.strip()
    if too_deep(text_bytes):  # never handed to a recursive parser
        return ReadError(number, DEPTH_MESSAGE, name)
    try:
        text = text_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        guess = ""
        try:
            text_bytes.decode("cp1252")
            guess = " (it looks like Latin-1/Windows-1252)"
        except UnicodeDecodeError:
            pass
        return ReadError(number, f"not valid UTF-8 at byte {exc.start + 1}{guess}", name)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if ends_file and exc.pos >= len(text) - 1 or ends_file and exc.msg.startswith("Unterminated"):
            return ReadError(number, f"the file ends in the middle of this record (truncated?): {exc.msg}", name)
        return ReadError(number, f"invalid JSON at column {exc.colno}: {exc.msg}", name)
    except RecursionError:  # pragma: no cover - too_deep refuses such lines first
        return ReadError(number, DEPTH_MESSAGE, name)
    if not isinstance(value, dict):
        return ReadError(number, f"a JSON {_json_type(value)}, not an object with named fields", name)
    return Record(number, value, name)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


class _CharStream:
    """Decoded text read a chunk at a time, with the 1-based line number of the read position."""

    def __init__(self, fh: Any):
        self.fh = fh
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False
        self.dirty = False  # the buffer holds bytes that were not valid UTF-8

    def compact(self) -> None:
        """Drop what has been read (only between values: positions held by callers move)."""
        if self.pos > CHUNK:
            self.buf = self.buf[self.pos:]
            self.pos = 0
            self.dirty = bool(self.dirty and _SURROGATE.search(self.buf))

    def fill(self) -> bool:
        if self.eof:
            return False
        pending = len(self.buf) - self.pos  # doubling keeps re-parsing linear; the cap keeps a record bounded
        data = self.fh.read(max(CHUNK, min(pending, LINE_LIMIT - pending)))
        if not data:
            self.eof = True
        text = self.decoder.decode(data, final=self.eof)
        if _SURROGATE.search(text):
            self.dirty = True
        self.buf += text
        return True

    def skip_ws(self) -> str | None:
        """Skip whitespace; the next character, or None at the end of the file."""
        while True:
            found = _NOT_BLANK.search(self.buf, self.pos)
            end = found.start() if found else len(self.buf)
            self.line += self.buf.count("\n", self.pos, end)
            self.pos = end
            if found:
                return self.buf[end]
            self.buf, self.pos, self.dirty = "", 0, False  # all read: do not keep a file of blanks
            if not self.fill():
                return None

    def decode_value(self, decoder: json.JSONDecoder) -> tuple[Any, int] | str:
        """(value, end) for the JSON value at pos, or an error message."""
        while True:
            try:
                value, end = decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                incomplete = exc.pos >= len(self.buf) - 1 or exc.msg.startswith("Unterminated")
                if incomplete and len(self.buf) - self.pos >= LINE_LIMIT:
                    return (f"a record longer than {LINE_LIMIT // MB} million characters (or one that never ends: "
                            "an unclosed string, array or object)")
                if incomplete and self.fill():
                    continue
                if incomplete:
                    return f"the file ends in the middle of this record (truncated?): {exc.msg}"
                return f"invalid JSON: {exc.msg} (line {self.line + self.buf.count(chr(10), self.pos, exc.pos)})"
            except RecursionError:  # the C scanner's own limit, deeper than MAX_DEPTH
                return DEPTH_MESSAGE.replace("; not read", "")
            if end >= len(self.buf) and self.fill():  # a number cut by the chunk edge: read on
                continue
            return value, end


def _json_stream(path: Path, name: str | None, bom: int, *, array: bool) -> Iterator[Item]:
    """A JSON array of objects (or objects one after another), read incrementally."""
    decoder = json.JSONDecoder()
    with open(path, "rb") as fh:
        fh.seek(bom)
        s = _CharStream(fh)
        c = s.skip_ws()
        if array:
            s.pos += 1  # the '['
        first = True
        while True:
            s.compact()
            c = s.skip_ws()
            if c is None:
                if array:
                    yield ReadError(s.line, "the file ends before the closing ']' of the array (truncated?)", name)
                return
            if array and c == "]":
                s.pos += 1
                if s.skip_ws() is not None:
                    yield ReadError(s.line, "text after the closing ']' of the array", name)
                return
            if array and not first:
                if c != ",":
                    yield ReadError(s.line, f"expected ',' or ']' between array items, found {c!r}; "
                                    "the rest of the file was not read", name)
                    return
                s.pos += 1
                c = s.skip_ws()
                if c is None:
                    yield ReadError(s.line, "the file ends after a ',' (truncated?)", name)
                    return
            first = False
            start_line, start = s.line, s.pos
            result = s.decode_value(decoder)
            if isinstance(result, str):
                yield ReadError(start_line, result + "; the rest of the file was not read", name)
                return
            value, end = result
            deep = isinstance(value, (dict, list)) and too_deep(s.buf, start, end)
            s.line += s.buf.count("\n", start, end)
            s.pos = end
            if deep:
                yield ReadError(start_line, DEPTH_MESSAGE, name)
            elif s.dirty and _SURROGATE.search(s.buf, start, end):
                yield ReadError(start_line, "not valid UTF-8 (it looks like Latin-1/Windows-1252)", name)
            elif isinstance(value, dict):
                if not array and len(value) == 1 and _rows_nested_under_one_key(value):
                    key, items = next(iter(value.items()))
                    for i, item in enumerate(items):  # {"data": [...]}: the rows live under one key
                        yield Record(start_line, item, name) if isinstance(item, dict) else \
                            ReadError(start_line, f"item {i + 1} of {key!r} is a JSON {_json_type(item)}, not an object", name)
                else:
                    yield Record(start_line, value, name)
            else:
                yield ReadError(start_line, f"a JSON {_json_type(value)}, not an object with named fields", name)


def _rows_nested_under_one_key(value: dict[str, Any]) -> bool:
    """{"data": [{...}, {...}]}: one key holding a list of row objects (not a list of chat messages)."""
    key, items = next(iter(value.items()))
    if key in ("messages", "conversations", "prompt", "completion", "chosen", "rejected", "text"):
        return False
    return isinstance(items, list) and bool(items) and isinstance(items[0], dict) \
        and not {"role", "from", "content", "value"} & items[0].keys()
