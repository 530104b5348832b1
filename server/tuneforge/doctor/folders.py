"""A directory as a dataset: the files training reads (the rule in templates/_shared/data_files.py),
or an error that says what to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TuneforgeError
from ..templates._shared.data_files import DataFilesError, folder_data_files


@dataclass
class FolderFiles:
    files: list[Path]
    kind: str  # json, csv or parquet
    notes: list[str] = field(default_factory=list)


def folder_files(label: str, root: Path) -> FolderFiles:
    """The files of the directory ROOT (given as LABEL) that training reads, or a TuneforgeError saying why none."""
    try:
        files, kind, notes = folder_data_files(root)
    except DataFilesError as exc:
        if exc.reason == "none":
            raise TuneforgeError(
                f"The directory {label} holds no .jsonl, .json, .csv or .parquet files.",
                "Point at the data file itself, or at a directory that contains data files.",
                code="dataset.no_data_files",
            ) from None
        raise TuneforgeError(
            f"The directory {label} mixes file types; training reads one type ({exc}).",
            "Keep one type of data file in the directory, or validate the files one by one.",
            code="dataset.mixed_types",
        ) from None
    return FolderFiles(files, kind, notes)
