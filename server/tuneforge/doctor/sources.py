"""Read every row of a dataset source, streaming, and say exactly which lines cannot be read.

A source is a local file (.jsonl/.ndjson, .json array or lines, .csv/.tsv, .parquet: one reader module
per format), a directory of such files (folders.py), or a Hub dataset id (hub_datasets.py).
`open_source` resolves it (or raises a TuneforgeError saying why it cannot be read);
`Source.records()` yields a `Record` per row and a `ReadError` per unreadable line, and keeps going
after errors so that all bad lines can be listed. Memory stays bounded: files are read a line (or a
chunk) at a time, nothing keeps rows, and no line, value, field or cell is loaded past the limits in
read_limits.py; binary files behind a data extension are known by their first bytes (text_files.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..config import is_repo_id
from ..errors import TuneforgeError
from .csv_files import read_csv_file
from .file_types import EXTENSIONS, kind_of
from .folders import folder_files
from .hub_datasets import read_hub_dataset
from .json_files import read_json_file
from .parquet_files import read_parquet_file
from .row_records import Item, only_share, share_filter


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
            yield from only_share(share, 0, read_hub_dataset(self.hub_id or self.label))
            return
        for index, path in enumerate(self.files):
            name = str(path.relative_to(self.root)) if self.root else None
            if self.kind == "parquet":
                yield from only_share(share, index, read_parquet_file(path, name))
            elif self.kind == "csv":
                yield from only_share(share, index, read_csv_file(path, name))
            else:
                yield from read_json_file(path, name, share_filter(share, index))


def open_source(source: str) -> Source:
    """Resolve SOURCE to files or a Hub id, or raise a TuneforgeError that says what to do."""
    if not isinstance(source, str) or not source.strip():
        raise TuneforgeError("No dataset given.", "Pass a .jsonl/.json/.csv/.parquet file, a directory or a Hub dataset id.",
                             code="dataset.not_given")
    path = Path(source).expanduser()
    if path.is_dir():
        found = folder_files(source, path)
        return Source(label=source, kind=found.kind, files=found.files, root=path, notes=found.notes)
    if path.exists():
        if not path.is_file():
            raise TuneforgeError(f"{source} is not a regular file.", "Pass a data file or a directory of data files.",
                                 code="dataset.not_a_file")
        return Source(label=source, kind=kind_of(path), files=[path])
    looks_local = source.startswith(("/", "./", "../", "~", ".\\")) or Path(source).suffix.lower() in EXTENSIONS \
        or source.count("/") > 1 or "\\" in source
    if looks_local or not is_repo_id(source):
        raise TuneforgeError(
            f"Dataset file {source!r} does not exist.",
            "Check the path (relative paths start from the current directory), or pass a Hub id like 'owner/name'.",
            code="dataset.not_found",
        )
    return Source(label=source, kind="hub", hub_id=source)
