"""Read every row of a dataset source, streaming, and say exactly which lines cannot be read.

A source is a local file (.jsonl/.ndjson, .json array or lines, .csv/.tsv, .parquet), a directory of
such files, or a Hub dataset id. `open_source` resolves it (or raises a TuneforgeError saying why it
cannot be read); `Source.records()` yields a `Record` per row and a `ReadError` per unreadable line, and
keeps going after errors so that all bad lines can be listed. Memory stays bounded: files are read a
line (or a chunk) at a time; nothing keeps rows.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Union

from ..errors import MissingDependency, TuneforgeError

try:  # optional: about 3x faster than the standard library on well-formed lines
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

TEXT_EXTENSIONS = {".jsonl": "json", ".ndjson": "json", ".json": "json", ".csv": "csv", ".tsv": "csv"}
EXTENSIONS = {**TEXT_EXTENSIONS, ".parquet": "parquet"}
LINE_LIMIT = 64 * 1024 * 1024  # a single line longer than this is reported, not loaded
CHUNK = 1024 * 1024
_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass(slots=True)
class Record:
    line: int
    value: dict[str, Any]
    file: str | None = None


@dataclass(slots=True)
class ReadError:
    line: int | None
    message: str
    file: str | None = None


Item = Union[Record, ReadError]


@dataclass
class Source:
    """A resolved source: local files of one kind, or a Hub dataset id."""

    label: str
    kind: str  # json, csv, parquet, hub
    files: list[Path] = field(default_factory=list)
    root: Path | None = None  # the directory, when the source is one
    hub_id: str | None = None
    notes: list[str] = field(default_factory=list)

    def file_names(self) -> list[str | None]:
        """The `file` of each record, in reading order (None for a single file or a Hub dataset)."""
        if self.root is None:
            return [None]
        return [str(p.relative_to(self.root)) for p in self.files]

    def size_bytes(self) -> int | None:
        if self.kind == "hub":
            return None
        return sum(p.stat().st_size for p in self.files)

    def records(self, share: tuple[int, int] | None = None) -> Iterator[Item]:
        """Every row (Record) and unreadable line (ReadError), in order. With share=(part, parts), only the
        rows of blocks of SHARE_BLOCK lines numbered part, part + parts...: processes that split the work
        each read their share (JSON Lines skip the other lines unparsed)."""
        if self.kind == "hub":
            yield from _only(share, 0, _hub_records(self.hub_id or self.label))
            return
        for index, path in enumerate(self.files):
            name = str(path.relative_to(self.root)) if self.root else None
            if self.kind == "parquet":
                yield from _only(share, index, _parquet_records(path, name))
            elif self.kind == "csv":
                yield from _only(share, index, _csv_records(path, name))
            else:
                yield from _json_records(path, name, _keeper(share, index))


SHARE_BLOCK = 256


def _keeper(share: tuple[int, int] | None, file_index: int) -> Any:
    if share is None or share[1] <= 1:
        return None
    part, parts = share
    return lambda line: (line // SHARE_BLOCK + file_index) % parts == part


def _only(share: tuple[int, int] | None, file_index: int, items: Iterator[Item]) -> Iterator[Item]:
    keep = _keeper(share, file_index)
    if keep is None:
        yield from items
        return
    for item in items:
        if isinstance(item, Record) and keep(item.line):
            yield item


# ---- resolving a source ----------------------------------------------------------------------------

def open_source(source: str) -> Source:
    """Resolve SOURCE to files or a Hub id, or raise a TuneforgeError that says what to do."""
    if not isinstance(source, str) or not source.strip():
        raise TuneforgeError("No dataset given.", "Pass a .jsonl/.json/.csv/.parquet file, a directory or a Hub dataset id.")
    path = Path(source).expanduser()
    if path.is_dir():
        return _directory_source(source, path)
    if path.exists():
        if not path.is_file():
            raise TuneforgeError(f"{source} is not a regular file.", "Pass a data file or a directory of data files.")
        return Source(label=source, kind=_kind_of(path), files=[path])
    looks_local = source.startswith(("/", "./", "../", "~", ".\\")) or Path(source).suffix.lower() in EXTENSIONS \
        or source.count("/") > 1 or "\\" in source
    if looks_local or not _is_hub_id(source):
        raise TuneforgeError(
            f"Dataset file {source!r} does not exist.",
            "Check the path (relative paths start from the current directory), or pass a Hub id like 'owner/name'.",
        )
    return Source(label=source, kind="hub", hub_id=source)


def _is_hub_id(value: str) -> bool:
    from ..config import is_repo_id

    return is_repo_id(value)


def _kind_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    if suffix in (".gz", ".zst", ".bz2", ".xz", ".zip"):
        raise TuneforgeError(
            f"{path.name} is compressed ({suffix}).",
            f"Decompress it first (e.g. `gunzip {path.name}`), then validate the .jsonl/.csv inside.",
        )
    raise TuneforgeError(
        f"{path.name}: unsupported file type {suffix or '(no extension)'!r}.",
        "Use .jsonl (one JSON object per line), .json, .csv or .parquet; rename the file if it already is one of those.",
    )


def _directory_source(label: str, root: Path) -> Source:
    files = sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise TuneforgeError(
            f"The directory {label} holds no .jsonl, .json, .csv or .parquet files.",
            "Point at the data file itself, or at a directory that contains data files.",
        )
    notes: list[str] = []
    train = [p for p in files if _split_of(p.relative_to(root)) == "train"]
    if train and len(train) < len(files):
        others = [str(p.relative_to(root)) for p in files if p not in train]
        notes.append(f"Read the train split only ({len(train)} file(s)); left out: {', '.join(others[:5])}"
                     + (f" and {len(others) - 5} more" if len(others) > 5 else "") + ".")
        files = train
    kinds = {EXTENSIONS[p.suffix.lower()] for p in files}
    if len(kinds) > 1:
        raise TuneforgeError(
            f"The directory {label} mixes file types ({', '.join(sorted(kinds))}); training reads one type.",
            "Keep one type of data file in the directory, or validate the files one by one.",
        )
    notes.insert(0, f"Read {len(files)} file(s) from the directory.")
    return Source(label=label, kind=kinds.pop(), files=files, root=root, notes=notes)


def _split_of(rel: Path) -> str | None:
    """'train' / 'test' / 'validation' from names like train.jsonl, data/train-00000-of-00002.parquet."""
    words = set(re.split(r"[^a-z]+", "/".join(rel.parts).lower()))
    for split, names in (("train", {"train", "training"}), ("test", {"test", "testing"}),
                         ("validation", {"validation", "valid", "val", "dev", "eval"})):
        if words & names:
            return split
    return None


# ---- JSON / JSON Lines ------------------------------------------------------------------------------

def _sniff_text_file(path: Path, name: str | None) -> tuple[bytes, int]:
    """The first bytes (for format sniffing) and the BOM length; refuse binary and UTF-16/32 files."""
    with open(path, "rb") as fh:
        head = fh.read(8192)
    where = name or path.name
    if head.startswith(codecs.BOM_UTF8):
        return head, len(codecs.BOM_UTF8)
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)) or head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) \
            or (len(head) >= 4 and (head[1:2] == b"\x00" and head[3:4] == b"\x00" or head[0:1] == b"\x00" and head[2:3] == b"\x00")):
        raise TuneforgeError(
            f"{where} is UTF-16/UTF-32 text; training reads UTF-8 only.",
            f"Convert it: iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}",
        )
    if b"\x00" in head:
        what = "binary data"
        if head.startswith(b"\x1f\x8b"):
            what = "gzip-compressed data"
        elif head.startswith(b"PK\x03\x04"):
            what = "a zip archive"
        elif head.startswith(b"PAR1"):
            what = "a Parquet file with the wrong extension"
        raise TuneforgeError(
            f"{where} holds {what}, not {path.suffix or 'text'} text.",
            "Rename a Parquet file to .parquet, decompress archives, or export the data as JSON Lines (one object per line).",
        )
    return head, 0


def _json_records(path: Path, name: str | None, keep: Any = None) -> Iterator[Item]:
    head, bom = _sniff_text_file(path, name)
    first = head[bom:].lstrip()[:1]
    if first == b"[":
        yield from _filtered(keep, _json_stream(path, name, bom, array=True))
        return
    if keep is not None:  # a share of the rows (the errors were reported by the first pass)
        yield from (item for item in _json_lines(path, name, bom, keep) if isinstance(item, Record))
        return
    pretty = False
    for number, item in enumerate(_json_lines(path, name, bom)):
        if number == 0 and isinstance(item, ReadError) and item.line is not None and first == b"{" \
                and _looks_pretty_printed(path, bom, item.line):
            pretty = True
            break
        yield item
    if pretty:  # one object spread over several lines (or several such objects): read them as a stream
        yield from _json_stream(path, name, bom, array=False)


def _filtered(keep: Any, items: Iterator[Item]) -> Iterator[Item]:
    if keep is None:
        yield from items
        return
    for item in items:
        if isinstance(item, Record) and keep(item.line):
            yield item


def _looks_pretty_printed(path: Path, bom: int, line: int) -> bool:
    """True when the first record line fails because an object spans several lines."""
    with open(path, "rb") as fh:
        fh.seek(bom)
        for number, raw in enumerate(fh, start=1):
            text = raw.strip()
            if not text:
                continue
            return number == line and text.startswith(b"{") and not text.endswith(b"}")
    return False


def _json_lines(path: Path, name: str | None, bom: int, keep: Any = None) -> Iterator[Item]:
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
                while True:  # skip the rest of an oversized line without keeping it
                    more = fh.readline(LINE_LIMIT)
                    if not more or more.endswith(b"\n"):
                        break
                yield ReadError(number, f"line is longer than {LINE_LIMIT // (1024 * 1024)} MB; not read", name)
                continue
            if keep is not None and not keep(number):
                continue
            if loads is not None:
                try:
                    value = loads(raw)
                except Exception:
                    pass
                else:
                    if type(value) is dict:
                        yield Record(number, value, name)
                        continue
            if not raw.strip():
                continue
            yield _parse_line(raw, number, name)


def _parse_line(raw: bytes, number: int, name: str | None) -> Item:
    """The careful (slow) path: explain exactly what is wrong with one line."""
    ends_file = not raw.endswith(b"\n")
    text_bytes = raw.strip()
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
    except RecursionError:
        return ReadError(number, "JSON nested too deeply to read", name)
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
        data = self.fh.read(max(CHUNK, len(self.buf) - self.pos))
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
            buf, n, pos = self.buf, len(self.buf), self.pos
            while pos < n and buf[pos] in " \t\r\n":
                if buf[pos] == "\n":
                    self.line += 1
                pos += 1
            self.pos = pos
            if pos < n:
                return buf[pos]
            if not self.fill():
                return None

    def decode_value(self, decoder: json.JSONDecoder) -> tuple[Any, int] | str:
        """(value, end) for the JSON value at pos, or an error message."""
        while True:
            try:
                value, end = decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                incomplete = exc.pos >= len(self.buf) - 1 or exc.msg.startswith("Unterminated")
                if incomplete and self.fill():
                    continue
                if incomplete:
                    return f"the file ends in the middle of this record (truncated?): {exc.msg}"
                return f"invalid JSON: {exc.msg} (line {self.line + self.buf.count(chr(10), self.pos, exc.pos)})"
            except RecursionError:
                return "JSON nested too deeply to read"
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
            s.line += s.buf.count("\n", start, end)
            s.pos = end
            if s.dirty and _SURROGATE.search(s.buf, start, end):
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


# ---- CSV ----------------------------------------------------------------------------------------------

def _csv_records(path: Path, name: str | None) -> Iterator[Item]:
    _head, bom = _sniff_text_file(path, name)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    bad_lines: list[int] = []

    def lines() -> Iterator[str]:
        with open(path, "rb") as fh:
            fh.seek(bom)
            for number, raw in enumerate(fh, start=1):
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError:
                    bad_lines.append(number)
                    yield raw.decode("utf-8", "replace")

    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.reader(lines(), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        yield ReadError(1, f"cannot read the CSV header: {exc}", name)
        return
    header = [h.strip() or f"column_{i + 1}" for i, h in enumerate(header)]
    reported = 0
    previous = reader.line_num
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            yield ReadError(previous + 1, f"invalid CSV: {exc}", name)
            previous = reader.line_num
            continue
        start, previous = previous + 1, reader.line_num
        while reported < len(bad_lines) and bad_lines[reported] < start:
            reported += 1
        if reported < len(bad_lines) and bad_lines[reported] <= previous:
            yield ReadError(bad_lines[reported], "not valid UTF-8 (it looks like Latin-1/Windows-1252)", name)
            continue
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        if len(fields) != len(header):
            yield ReadError(start, f"{len(fields)} fields, but the header has {len(header)}", name)
            continue
        yield Record(start, dict(zip(header, fields)), name)


# ---- Parquet ------------------------------------------------------------------------------------------

def _parquet_records(path: Path, name: str | None) -> Iterator[Item]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependency("pyarrow", "train") from None
    try:
        pf = pq.ParquetFile(str(path))
    except Exception as exc:
        raise TuneforgeError(
            f"{name or path.name} is not a readable Parquet file ({type(exc).__name__}: {exc}).",
            "Check that the file is complete (re-download or re-export it).",
        ) from None
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=1024):
            for value in batch.to_pylist():
                row += 1
                yield Record(row, value, name)
    except Exception as exc:
        yield ReadError(row + 1, f"cannot read the Parquet data from here on ({type(exc).__name__}: {exc})", name)


# ---- Hub datasets -------------------------------------------------------------------------------------

def _offline() -> bool:
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _hub_records(hub_id: str) -> Iterator[Item]:
    if _offline():
        raise TuneforgeError(
            f"{hub_id!r} is not a local file, and Hugging Face Hub access is off (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set).",
            "Pass a local file or directory, or unset HF_HUB_OFFLINE to stream the dataset from the Hub.",
        )
    try:
        from huggingface_hub import HfApi

        HfApi().dataset_info(hub_id, timeout=15)
    except Exception as exc:
        raise _hub_error(hub_id, exc) from None
    try:
        import datasets
    except ImportError:
        raise MissingDependency("datasets", "train") from None
    try:
        stream = datasets.load_dataset(hub_id, split="train", streaming=True)
        row = 0
        for value in stream:
            row += 1
            yield Record(row, dict(value))
    except TuneforgeError:
        raise
    except Exception as exc:
        raise _hub_error(hub_id, exc) from None


def _hub_error(hub_id: str, exc: Exception) -> TuneforgeError:
    name = type(exc).__name__
    if "NotFound" in name or "404" in str(exc):
        return TuneforgeError(f"No dataset {hub_id!r} on the Hugging Face Hub (or it is private).",
                              "Check the id on huggingface.co/datasets, or log in with `hf auth login` for a private one.")
    if "Gated" in name or "401" in str(exc) or "403" in str(exc):
        return TuneforgeError(f"The dataset {hub_id!r} needs access rights.",
                              "Accept its terms on huggingface.co and log in with `hf auth login`.")
    return TuneforgeError(f"Cannot read {hub_id!r} from the Hub ({name}: {str(exc)[:200]}).",
                          "Check the network and the dataset id, or download it and validate the local files.")
