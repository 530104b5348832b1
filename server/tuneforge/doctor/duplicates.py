"""Exact and near duplicate rows, found in bounded memory.

Nothing here keeps rows. Duplicates are found from two 64-bit hashes per row (the exact content and a
normalised form: lower case, letters and digits only) kept in compact arrays; past `cap` rows the
sketch keeps a fixed share of the hash space (whole duplicate groups stay together) and scales its
counts, so memory stays flat however long the file is.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from .tally import SAMPLE

_NOISE = bytes(range(0, 48)) + bytes(range(58, 65)) + bytes(range(91, 97)) + bytes(range(123, 128))  # ASCII non-alphanumerics


def normalized(text: str) -> bytes:
    """Lower case without ASCII spaces and punctuation: rows that differ only in case, spacing or
    punctuation match. (bytes.translate: this runs on every row.)"""
    return text.lower().encode("utf-8", "surrogatepass").translate(None, _NOISE)


@dataclass
class Duplicates:
    count: int = 0
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (row index, index of the row it repeats)
    estimated: bool = False


class DuplicateSketch:
    """Exact and near duplicate counting over 64-bit hashes, with bounded memory."""

    def __init__(self, cap: int = 1 << 20):
        self.cap = cap
        self.level = 0  # keep hashes whose low `level` bits are zero
        self.exact = array("q")
        self.norm = array("q")
        self.rows = array("q")  # the row index of each kept entry

    def add(self, row: int, text: str) -> None:
        n = hash(normalized(text))
        if self.level and n & ((1 << self.level) - 1):
            return
        self.exact.append(hash(text))
        self.norm.append(n)
        self.rows.append(row)
        if len(self.rows) > self.cap:
            self._thin()

    def _thin(self) -> None:
        self.level += 1
        mask = (1 << self.level) - 1
        keep = [i for i, n in enumerate(self.norm) if not n & mask]
        self.exact = array("q", (self.exact[i] for i in keep))
        self.norm = array("q", (self.norm[i] for i in keep))
        self.rows = array("q", (self.rows[i] for i in keep))

    @property
    def scale(self) -> int:
        return 1 << self.level

    def keeps(self, norm_hash: int) -> bool:
        """Whether this part of the hash space is still kept (always, until the sketch thins)."""
        return not (self.level and norm_hash & ((1 << self.level) - 1))

    def seen(self, norm_hashes: array) -> list[bool]:
        """For each normalised hash: was a row with it seen (the caller filters with `keeps`)."""
        try:
            import numpy as np
        except ImportError:  # pragma: no cover - numpy comes with the train extra
            known = set(self.norm)
            return [h in known for h in norm_hashes]
        if not len(norm_hashes) or not len(self.norm):
            return [False] * len(norm_hashes)
        return np.isin(np.frombuffer(norm_hashes, dtype=np.int64), np.frombuffer(self.norm, dtype=np.int64)).tolist()

    def find(self) -> tuple[Duplicates, Duplicates]:
        """(exact duplicates, near duplicates that are not exact ones), each with sample pairs."""
        exact = Duplicates(estimated=self.level > 0)
        near = Duplicates(estimated=self.level > 0)
        try:
            import numpy as np
        except ImportError:  # pragma: no cover - numpy comes with the train extra
            return self._find_slow(exact, near)
        if not len(self.rows):
            return exact, near
        rows = np.frombuffer(self.rows, dtype=np.int64)
        exact_dup, exact_first = _repeats(np.frombuffer(self.exact, dtype=np.int64))
        norm_dup, norm_first = _repeats(np.frombuffer(self.norm, dtype=np.int64))
        for found, mask, first in ((exact, exact_dup, exact_first), (near, norm_dup & ~exact_dup, norm_first)):
            where = np.flatnonzero(mask)
            found.count = int(len(where)) * self.scale
            found.pairs = [(int(rows[i]), int(rows[first[i]])) for i in where[:SAMPLE]]
        return exact, near

    def _find_slow(self, exact: Duplicates, near: Duplicates) -> tuple[Duplicates, Duplicates]:
        first_exact: dict[int, int] = {}
        first_norm: dict[int, int] = {}
        for i, (e, n) in enumerate(zip(self.exact, self.norm)):
            j = first_exact.setdefault(e, i)
            k = first_norm.setdefault(n, i)
            found, orig = (exact, j) if j != i else (near, k) if k != i else (None, i)
            if found is not None:
                found.count += self.scale
                if len(found.pairs) < SAMPLE:
                    found.pairs.append((self.rows[i], self.rows[orig]))
        return exact, near


def _repeats(h):  # numpy int64 array -> (bool mask: an earlier entry has this hash, index of the first such entry)
    import numpy as np

    n = len(h)
    order = np.argsort(h, kind="stable")  # stable: equal hashes keep their file order
    sorted_h = h[order]
    same = np.zeros(n, dtype=bool)
    same[1:] = sorted_h[1:] == sorted_h[:-1]
    starts = np.maximum.accumulate(np.where(same, 0, np.arange(n)))
    dup = np.zeros(n, dtype=bool)
    dup[order] = same
    first = np.empty(n, dtype=np.int64)
    first[order] = order[starts]
    return dup, first
