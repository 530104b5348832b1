"""Reading job logs: the last lines of a file without loading it whole, and the lines appended since last time."""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path


def tail_lines(path: Path, n: int | None) -> list[str]:
    """The last n lines of a text file (all when n is None), read without loading a huge log whole."""
    if not path.exists():
        return []
    if n is None:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    if n <= 0:
        return []
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        block, data = 65536, b""
        while size > 0 and data.count(b"\n") <= n:
            step = min(block, size)
            size -= step
            fh.seek(size)
            data = fh.read(step) + data
    return list(deque(data.decode("utf-8", errors="replace").splitlines(), maxlen=n))


class LogFollower:
    """Reads the lines appended to a log since the last call."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.partial = b""

    def new_lines(self) -> list[str]:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        return [line.decode("utf-8", errors="replace") for line in lines]
