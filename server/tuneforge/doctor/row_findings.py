"""What is wrong with the rows in the columns a method reads: the one rule for row problems.

A `Finding` is one thing wrong in one column (missing, null, the wrong kind of value, empty), with the
rows it affects, sample lines and whether it stops training. The verdicts (method_verdicts.py) word
the blocking findings of their fit as reasons; the report (row_scan.py) lists the findings as problems
with their lines: those of the requested method, or with method auto those of every method whose
layout the data has (`auto_findings`), each column's finding once.
"""

from __future__ import annotations

from dataclasses import dataclass

from .column_stats import ColumnStats, describe_kind
from .method_fit import Fit


@dataclass(frozen=True)
class Finding:
    kind: str  # missing, type, empty
    column: str
    message: str  # "3 row(s) have null in 'output'"
    count: int
    lines: list[tuple[int, int]]  # (file index, line), a sample
    blocking: bool


def column_findings(fit: Fit, columns: dict[str, ColumnStats]) -> list[Finding]:
    """The findings in the columns FIT reads (none when the layout does not fit)."""
    if not fit.fits:
        return []
    out: list[Finding] = []
    targets = {t.name: t for t in fit.layout.targets}
    for target_name, column in fit.sources.items():
        target, col = targets[target_name], columns[column]
        where = f"{column!r}" + (f" (used as {target_name!r})" if column != target_name else "")
        if col.missing:
            out.append(Finding("missing", column, f"{col.missing} row(s) have no {where}", col.missing,
                               col.missing_lines, True))
        if col.nulls:
            out.append(Finding("missing", column, f"{col.nulls} row(s) have null in {where}", col.nulls,
                               col.kind_lines.get("null", []), True))
        if target_name == "label":
            if col.non_labels:
                out.append(Finding("type", column, f"{col.non_labels} row(s) hold a label in {where} that is not "
                                   "true/false, 1/0, yes/no or good/bad", col.non_labels, col.not_labels, True))
        else:
            off, off_lines, kinds = col.off_kind(target.kinds)
            if off:
                out.append(Finding("type", column, f"{off} row(s) hold {', '.join(describe_kind(k) for k in sorted(kinds))} "
                                   f"in {where} instead of {' or '.join(describe_kind(k) for k in sorted(target.kinds))}",
                                   off, off_lines, True))
        if col.blank and target.required:  # an empty optional field (Alpaca's input) is the normal case
            empty_lists = bool(col.kinds.get("empty_list"))  # an empty conversation leaves nothing to train on
            what = "an empty conversation in " if empty_lists and col.blank == col.kinds["empty_list"] else "an empty "
            out.append(Finding("empty", column, f"{col.blank} row(s) have {what}{where}", col.blank, col.blank_lines,
                               empty_lists))
    return out


def auto_findings(primary: Fit | None, fits: list[Fit], columns: dict[str, ColumnStats]) -> list[Finding]:
    """With method auto: the findings of the primary method's fit, then those of every other fitting
    method on columns not already reported for the same kind of problem."""
    out: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for fit in ([primary] if primary is not None else []) + [f for f in fits if f is not primary]:
        for finding in column_findings(fit, columns):
            key = (finding.kind, finding.column)
            if key not in seen:
                seen.add(key)
                out.append(finding)
    return out
