"""CSV and TSV files: a header row, then one row per record (quoted fields may span lines).

Bounded: a physical line is read up to LINE_LIMIT bytes and a field may hold FIELD_LIMIT characters
(read_limits.py); past either the reader says where and stops, since what follows an unclosed quote or
a runaway line cannot be told apart from data.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from .read_limits import FIELD_LIMIT, LINE_LIMIT, mb
from .row_records import Item, ReadError, Record
from .text_files import sniff_text_file


class _LineTooLong(Exception):
    def __init__(self, line: int):
        super().__init__(line)
        self.line = line


def read_csv_file(path: Path, name: str | None) -> Iterator[Item]:
    """Every row of a .csv/.tsv file, as {header: field}."""
    _head, bom = sniff_text_file(path, name)
    bad_lines: deque[int] = deque()  # undecodable lines read but not yet matched to a record

    def lines() -> Iterator[str]:
        with open(path, "rb") as fh:
            fh.seek(bom)
            number = 0
            while True:
                raw = fh.readline(LINE_LIMIT)
                if not raw:
                    return
                number += 1
                if len(raw) == LINE_LIMIT and not raw.endswith(b"\n"):
                    raise _LineTooLong(number)
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError:
                    bad_lines.append(number)
                    yield raw.decode("utf-8", "replace")

    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    csv.field_size_limit(FIELD_LIMIT)  # deliberately: the module's default (128 KiB) is too small, no limit too big
    reader = csv.reader(lines(), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except _LineTooLong as exc:
        yield ReadError(exc.line, f"the header line is longer than {mb(LINE_LIMIT)}; the file was not read", name)
        return
    except csv.Error as exc:
        yield ReadError(1, f"cannot read the CSV header: {_why(exc)}", name)
        return
    header = [h.strip() or f"column_{i + 1}" for i, h in enumerate(header)]
    previous = reader.line_num
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except _LineTooLong as exc:
            yield ReadError(exc.line, f"line is longer than {mb(LINE_LIMIT)}; it and the rest of the file were not "
                            "read (a missing newline, or a quote that is never closed?)", name)
            return
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                yield ReadError(previous + 1, f"a field longer than {mb(FIELD_LIMIT)} (a quote that is never "
                                "closed?); the rest of the file was not read", name)
                return
            yield ReadError(previous + 1, f"invalid CSV: {exc}", name)
            previous = reader.line_num
            continue
        start, previous = previous + 1, reader.line_num
        while bad_lines and bad_lines[0] < start:
            bad_lines.popleft()
        if bad_lines and bad_lines[0] <= previous:
            yield ReadError(bad_lines.popleft(), "not valid UTF-8 (it looks like Latin-1/Windows-1252)", name)
            continue
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        if len(fields) != len(header):
            yield ReadError(start, f"{len(fields)} fields, but the header has {len(header)}", name)
            continue
        yield Record(start, dict(zip(header, fields)), name)


def _why(exc: csv.Error) -> str:
    if "field larger than field limit" in str(exc):
        return f"a field longer than {mb(FIELD_LIMIT)}"
    return str(exc)
