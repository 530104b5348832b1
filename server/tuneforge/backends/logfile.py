"""Reading job logs: the last lines of a file without loading it whole, and the lines appended since last time."""

from __future__ import annotations

import os
import threading
from collections import deque
from pathlib import Path
from typing import IO

from ..secrets import scrub


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


class ScrubbedLog:
    """Copies a process's output into its log file, with secret values masked, and hands back the lines.

    A thread reads the pipe as data arrives; only scrubbed text reaches the file. A line longer than
    MAX_PARTIAL without a newline (a progress bar redrawn with carriage returns) is written as it is."""

    MAX_PARTIAL = 1 << 16

    def __init__(self, pipe: IO[bytes], path: Path, secrets: list[str]):
        self.pipe, self.path, self.secrets = pipe, path, secrets
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._copy, name="job-log", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        partial = b""
        with self.path.open("ab") as out:
            while chunk := os.read(self.pipe.fileno(), 65536):
                parts = (partial + chunk).split(b"\n")
                partial = parts.pop()
                if len(partial) > self.MAX_PARTIAL:
                    parts.append(partial)
                    partial = b""
                self._write(out, parts)
            if partial:
                self._write(out, [partial])

    def _write(self, out: IO[bytes], parts: list[bytes]) -> None:
        lines = [scrub(p.decode("utf-8", errors="replace"), self.secrets) for p in parts]
        out.write("".join(line + "\n" for line in lines).encode("utf-8"))
        out.flush()
        with self._lock:
            self._lines.extend(lines)

    def new_lines(self) -> list[str]:
        """The lines written since the last call."""
        with self._lock:
            lines, self._lines = self._lines, []
        return lines

    def close(self, timeout: float = 5.0) -> None:
        """Wait for the copy to reach the end of the output (the pipe closes when the process group is gone)."""
        self._thread.join(timeout)
