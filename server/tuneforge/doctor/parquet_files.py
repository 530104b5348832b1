"""Parquet files, read a batch of rows at a time with pyarrow (from the train extra).

Bounded before anything is decoded: the footer's size is checked, and a column chunk big enough to hold
a value over CELL_LIMIT has its page headers read (parquet_pages.py); a row group with a page over
PAGE_LIMIT is reported and skipped, never decompressed. Batches are sized from the row group's bytes
per row, and a decoded row over CELL_LIMIT is reported instead of turned into Python objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import MissingDependency, TuneforgeError
from .parquet_pages import largest_page
from .read_limits import CELL_LIMIT, MB, PAGE_LIMIT, mb
from .row_records import Item, ReadError, Record
from .text_files import binary_kind

BATCH_ROWS = 1024
BATCH_BYTES = 64 * MB  # decoded bytes per batch, about
FOOTER_LIMIT = 64 * MB


def read_parquet_file(path: Path, name: str | None) -> Iterator[Item]:
    """Every row of a .parquet file; a row number stands for the line."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependency("pyarrow", "train") from None
    where = name or path.name
    _check_signature(path, where)
    try:
        pf = pq.ParquetFile(str(path), buffer_size=MB)  # column chunks streamed, not read whole
        meta = pf.metadata
    except Exception as exc:
        raise TuneforgeError(
            f"{where} is not a readable Parquet file ({type(exc).__name__}: {exc}).",
            "Check that the file is complete (re-download or re-export it).",
            code="dataset.parse_error",
        ) from None
    row = 0
    with open(path, "rb") as fh:
        for index in range(meta.num_row_groups):
            group = meta.row_group(index)
            first, rows = row + 1, group.num_rows
            refused = _oversized_page(fh, group)
            if refused:
                row += rows
                yield ReadError(first, f"rows {first}-{first + rows - 1} (row group {index + 1}) were not read: {refused}", name)
                continue
            batch_rows = max(1, min(BATCH_ROWS, BATCH_BYTES * max(rows, 1) // max(group.total_byte_size, 1)))
            try:
                for batch in pf.iter_batches(batch_size=batch_rows, row_groups=[index], use_threads=False):
                    for item in _rows(batch, row, name):
                        yield item
                    row += batch.num_rows
            except Exception as exc:
                yield ReadError(row + 1, f"cannot read the Parquet data from here on ({type(exc).__name__}: {exc})", name)
                return


def _check_signature(path: Path, where: str) -> None:
    with open(path, "rb") as fh:
        head = fh.read(8192)
        size = fh.seek(0, 2)
        if size >= 12:
            fh.seek(size - 8)
            tail = fh.read(8)
        else:
            tail = b""
    if head.startswith(b"PAR1") and tail.endswith(b"PAR1"):
        footer = int.from_bytes(tail[:4], "little")
        if footer > FOOTER_LIMIT:
            raise TuneforgeError(f"{where}: its Parquet metadata claims {mb(footer)}; not read.",
                                 "Re-export the file (with fewer columns or row groups), or check that it is complete.",
                                 code="dataset.too_large")
        return
    known = binary_kind(head)
    if head.startswith(b"PAR1"):
        what, fix = "an incomplete Parquet file (no footer)", "The file is cut short: re-download or re-export it."
    elif known is not None:
        what, fix = known[0], known[2].replace("{name}", path.name)
    elif head.lstrip()[:1] in (b"{", b"["):
        what, fix = "JSON text", "Rename it to end in .jsonl (one object per line) or .json."
    else:
        what, fix = "not Parquet data", "Point at a Parquet file, or rename a text file to .jsonl/.json/.csv."
    raise TuneforgeError(f"{where} is {what}, not a Parquet file.", fix,
                         code="dataset.binary" if known is not None else "dataset.parse_error",
                         details={"detected": known[1] if known else None})


def _oversized_page(fh: Any, group: Any) -> str | None:
    """Why a row group cannot be decoded in bounded memory (a page over PAGE_LIMIT), or None."""
    for j in range(group.num_columns):
        column = group.column(j)
        if column.total_uncompressed_size <= CELL_LIMIT:  # no value in it can be bigger
            continue
        starts = [o for o in (column.dictionary_page_offset if column.has_dictionary_page else None,
                              column.data_page_offset) if o]
        start = min(starts) if starts else 0
        largest = largest_page(fh, start, column.total_compressed_size) if start else None
        if largest is None:  # the headers could not be read: the chunk's size is the bound
            largest = column.total_uncompressed_size
        if largest > PAGE_LIMIT:
            return (f"column {column.path_in_schema!r} has a page of {mb(largest)} (a value over "
                    f"{mb(CELL_LIMIT)}, the most a row may hold); split or shorten those values")
    return None


def _rows(batch: Any, row: int, name: str | None) -> Iterator[Item]:
    if batch.nbytes <= CELL_LIMIT:
        for value in batch.to_pylist():
            row += 1
            yield Record(row, value, name)
        return
    for k in range(batch.num_rows):  # a big batch (few rows, see batch_rows): each row on its own
        one = batch.slice(k, 1)
        row += 1
        if one.nbytes > CELL_LIMIT:
            yield ReadError(row, f"the row holds {mb(one.nbytes)}, over the {mb(CELL_LIMIT)} a row may hold; not read", name)
        else:
            yield Record(row, one.to_pylist()[0], name)
