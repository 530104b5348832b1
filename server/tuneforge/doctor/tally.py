"""A finding's count and the first few places it shows: bounded bookkeeping used by every whole-file check."""

from __future__ import annotations

from dataclasses import dataclass, field

SAMPLE = 10  # sample lines kept per finding


@dataclass
class Tally:
    """How many rows show one finding, and the first few lines where it shows."""

    kind: str
    message: str
    fix: str | None = None
    blocking: bool = False
    column: str | None = None
    count: int = 0
    lines: list[tuple[int, int]] = field(default_factory=list)  # (file index, line)

    def add(self, line: int, file_index: int = 0) -> None:
        self.count += 1
        if len(self.lines) < SAMPLE:
            self.lines.append((file_index, line))
