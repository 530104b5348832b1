"""CSV and TSV files: a header row, then one row per record (quoted fields may span lines)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Iterator

from .row_records import Item, ReadError, Record
from .text_files import sniff_text_file


def read_csv_file(path: Path, name: str | None) -> Iterator[Item]:
    """Every row of a .csv/.tsv file, as {header: field}."""
    _head, bom = sniff_text_file(path, name)
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
