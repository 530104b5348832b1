"""The data file types the doctor reads, by extension, and what to do with any other file."""

from __future__ import annotations

from pathlib import Path

from ..errors import TuneforgeError

from ..templates._shared.data_files import EXTENSIONS, TEXT_EXTENSIONS  # noqa: F401  (re-exported)

COMPRESSED = (".gz", ".zst", ".bz2", ".xz", ".zip")


def kind_of(path: Path) -> str:
    """json, csv or parquet for a data file; a TuneforgeError that says what to do for any other."""
    suffix = path.suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    if suffix in COMPRESSED:
        raise TuneforgeError(
            f"{path.name} is compressed ({suffix}).",
            f"Decompress it first (e.g. `gunzip {path.name}`), then validate the .jsonl/.csv inside.",
            code="dataset.compressed",
        )
    raise TuneforgeError(
        f"{path.name}: unsupported file type {suffix or '(no extension)'!r}.",
        "Use .jsonl (one JSON object per line), .json, .csv or .parquet; rename the file if it already is one of those.",
        code="dataset.unsupported_type",
    )
