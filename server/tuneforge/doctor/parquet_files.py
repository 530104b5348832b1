"""Parquet files, read a batch of rows at a time with pyarrow (from the train extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..errors import MissingDependency, TuneforgeError
from .row_records import Item, ReadError, Record


def read_parquet_file(path: Path, name: str | None) -> Iterator[Item]:
    """Every row of a .parquet file; a row number stands for the line."""
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
            code="dataset.parse_error",
        ) from None
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=1024):
            for value in batch.to_pylist():
                row += 1
                yield Record(row, value, name)
    except Exception as exc:
        yield ReadError(row + 1, f"cannot read the Parquet data from here on ({type(exc).__name__}: {exc})", name)
