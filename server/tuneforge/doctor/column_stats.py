"""Per-column statistics over the whole file: what each column holds, and which rows lack it.

The method checks work from these summaries, so a decision about a column is made from every row,
never from the first few.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .row_shapes import KIND_WORDS
from .tally import SAMPLE

MAX_COLUMNS = 256


@dataclass
class ColumnStats:
    name: str
    kinds: Counter = field(default_factory=Counter)
    kind_lines: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    missing: int = 0  # rows without this column: set when the pass is over (Scan.count_missing)
    missing_lines: list[tuple[int, int]] = field(default_factory=list)
    blank: int = 0  # empty or whitespace-only text, empty lists
    blank_lines: list[tuple[int, int]] = field(default_factory=list)
    labels: int = 0  # values a KTO label can be (true/false, 0/1, yes/no...)
    not_labels: list[tuple[int, int]] = field(default_factory=list)  # sample lines of other values
    full_conversations: int = 0  # message lists that start with a user/system turn (they hold the prompt)

    def add(self, kind: str, blank: bool, where: tuple[int, int]) -> None:
        self.kinds[kind] += 1
        sample = self.kind_lines.setdefault(kind, [])
        if len(sample) < SAMPLE:
            sample.append(where)
        if blank:
            self.blank += 1
            if len(self.blank_lines) < SAMPLE:
                self.blank_lines.append(where)

    def add_label(self, ok: bool, where: tuple[int, int]) -> None:
        if ok:
            self.labels += 1
        elif len(self.not_labels) < SAMPLE:
            self.not_labels.append(where)

    @property
    def non_labels(self) -> int:
        return sum(n for k, n in self.kinds.items() if k != "null") - self.labels

    @property
    def kind(self) -> str:
        """The kind most non-null values have ('null' when all are null)."""
        real = [(n, k) for k, n in self.kinds.items() if k != "null"]
        return max(real)[1] if real else "null"

    @property
    def nulls(self) -> int:
        return self.kinds.get("null", 0)

    def off_kind(self, allowed: frozenset[str] | set[str]) -> tuple[int, list[tuple[int, int]], set[str]]:
        """Rows whose value is none of `allowed` (nulls excluded): count, sample lines, kinds seen."""
        count, lines, seen = 0, [], set()
        for kind, n in self.kinds.items():
            if kind in allowed or kind == "null":
                continue
            count += n
            seen.add(kind)
            lines.extend(self.kind_lines.get(kind, []))
        return count, sorted(lines)[:SAMPLE], seen


def describe_kind(kind: str) -> str:
    return KIND_WORDS.get(kind, kind)
