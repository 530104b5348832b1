"""A directory as a dataset: its data files (hidden ones left out), only the train split when the
names say which files are which, and one file type for all of them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TuneforgeError
from .file_types import EXTENSIONS


@dataclass
class FolderFiles:
    files: list[Path]
    kind: str  # json, csv or parquet
    notes: list[str] = field(default_factory=list)


def folder_files(label: str, root: Path) -> FolderFiles:
    """The files of the directory ROOT (given as LABEL) that training reads, or a TuneforgeError saying why none."""
    files = sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise TuneforgeError(
            f"The directory {label} holds no .jsonl, .json, .csv or .parquet files.",
            "Point at the data file itself, or at a directory that contains data files.",
            code="dataset.no_data_files",
        )
    notes: list[str] = []
    train = [p for p in files if split_of(p.relative_to(root)) == "train"]
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
            code="dataset.mixed_types",
        )
    notes.insert(0, f"Read {len(files)} file(s) from the directory.")
    return FolderFiles(files, kinds.pop(), notes)


def split_of(rel: Path) -> str | None:
    """'train' / 'test' / 'validation' from names like train.jsonl, data/train-00000-of-00002.parquet."""
    words = set(re.split(r"[^a-z]+", "/".join(rel.parts).lower()))
    for split, names in (("train", {"train", "training"}), ("test", {"test", "testing"}),
                         ("validation", {"validation", "valid", "val", "dev", "eval"})):
        if words & names:
            return split
    return None
