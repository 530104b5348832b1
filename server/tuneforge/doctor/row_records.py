"""What reading a source yields: a `Record` per row and a `ReadError` per unreadable line, and the
filter that gives one process its share of the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Union

SHARE_BLOCK = 256  # rows are shared between processes in blocks of this many lines


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
LineFilter = Callable[[int], bool]


def share_filter(share: tuple[int, int] | None, file_index: int) -> LineFilter | None:
    """For share=(part, parts): keep the lines of the blocks numbered part, part + parts, ...; None: keep all."""
    if share is None or share[1] <= 1:
        return None
    part, parts = share
    return lambda line: (line // SHARE_BLOCK + file_index) % parts == part


def only_kept(keep: LineFilter | None, items: Iterator[Item]) -> Iterator[Item]:
    """The records on kept lines (errors were reported by the first, unshared pass); all items when keep is None."""
    if keep is None:
        yield from items
        return
    for item in items:
        if isinstance(item, Record) and keep(item.line):
            yield item


def only_share(share: tuple[int, int] | None, file_index: int, items: Iterator[Item]) -> Iterator[Item]:
    """Items of one file, filtered to a process's share of the rows."""
    return only_kept(share_filter(share, file_index), items)
