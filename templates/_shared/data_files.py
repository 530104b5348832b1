"""Which files of a local dataset training reads: one rule for the dataset doctor, the templates and
the upload to a cloud job (stdlib only).

A file is read by its extension. In a folder, hidden files and folders are left out, and when the
names say which files are the train split (train.jsonl, data/train-00000-of-00002.parquet), only
those are read. One folder holds one kind of file.
"""

from __future__ import annotations

import re
from pathlib import Path

TEXT_EXTENSIONS = {".jsonl": "json", ".ndjson": "json", ".json": "json", ".csv": "csv", ".tsv": "csv"}
EXTENSIONS = {**TEXT_EXTENSIONS, ".parquet": "parquet"}  # extension -> kind (json, csv, parquet)


class DataFilesError(ValueError):
    """No data files, or several kinds of them, in a folder; `reason` is "none" or "mixed"."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def split_of(rel: Path) -> str | None:
    """'train' / 'test' / 'validation' from names like train.jsonl, data/train-00000-of-00002.parquet."""
    words = set(re.split(r"[^a-z]+", "/".join(rel.parts).lower()))
    for split, names in (("train", {"train", "training"}), ("test", {"test", "testing"}),
                         ("validation", {"validation", "valid", "val", "dev", "eval"})):
        if words & names:
            return split
    return None


def folder_data_files(root: Path) -> tuple[list[Path], str, list[str]]:
    """The files of the folder ROOT that training reads, their kind, and notes on what was left out."""
    files = sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise DataFilesError("none", f"{root} holds no .jsonl, .json, .csv or .parquet files")
    notes: list[str] = []
    train = [p for p in files if split_of(p.relative_to(root)) == "train"]
    if train and len(train) < len(files):
        others = [str(p.relative_to(root)) for p in files if p not in train]
        notes.append(f"Read the train split only ({len(train)} file(s)); left out: {', '.join(others[:5])}"
                     + (f" and {len(others) - 5} more" if len(others) > 5 else "") + ".")
        files = train
    kinds = {EXTENSIONS[p.suffix.lower()] for p in files}
    if len(kinds) > 1:
        raise DataFilesError("mixed", f"{root} mixes file types ({', '.join(sorted(kinds))}); training reads one type")
    notes.insert(0, f"Read {len(files)} file(s) from the directory.")
    return files, kinds.pop(), notes


def data_files(path: Path) -> tuple[list[Path], str, list[str]]:
    """A data file or a folder of them: the files training reads, their kind, notes."""
    if path.is_file():
        kind = EXTENSIONS.get(path.suffix.lower())
        if kind is None:
            raise DataFilesError("none", f"{path.name}: unsupported file type {path.suffix or '(no extension)'!r}")
        return [path], kind, []
    return folder_data_files(path)


def csv_delimiter(files: list[Path]) -> str:
    return "\t" if all(f.suffix.lower() == ".tsv" for f in files) else ","
