"""The eval set beside the training data: its unreadable lines, its layout, and rows it shares with
the training data (found through the training scan's duplicate sketch)."""

from __future__ import annotations

from array import array
from collections import Counter

from ..reports.dataset import DatasetReport, ParseError, Problem
from .duplicates import normalized
from .row_records import ReadError
from .row_scan import FIXES, MAX_ERRORS, Scan
from .row_shapes import FORMAT_WORDS, content_text, row_format
from .sources import Source
from .tally import SAMPLE


def check_eval(report: DatasetReport, scan: Scan, src: Source) -> None:
    """Read the eval set: its unreadable lines, its layout, and rows it shares with the training data."""
    label = f"eval:{src.label}"
    formats: Counter[str] = Counter()
    hashes, places = array("q"), []
    rows = 0
    for item in src.records():
        if isinstance(item, ReadError):
            report.error_count += 1
            if len(report.errors) < MAX_ERRORS + 10:
                report.errors.append(ParseError(line=item.line, message=item.message,
                                                file=f"{label}/{item.file}" if item.file else label))
            continue
        rows += 1
        formats[row_format(item.value)] += 1
        h = hash(normalized(content_text(item.value)))
        if scan.dups.keeps(h):
            hashes.append(h)
            places.append((item.file, item.line))
    report.notes.append(f"Eval set {src.label}: {rows} row(s).")
    if rows and formats.most_common(1)[0][0] != report.format:
        eval_fmt = formats.most_common(1)[0][0]
        report.problems.append(Problem(kind="eval_format", message=f"the eval set is {FORMAT_WORDS.get(eval_fmt, eval_fmt)} "
                                       f"but the training data is {FORMAT_WORDS.get(report.format, report.format)}",
                                       count=rows, file=label, fix=FIXES["eval_format"], blocking=True))
        for verdict in report.methods.values():
            if verdict.status != "incompatible":
                verdict.status = "incompatible"
                verdict.reasons.insert(0, "The eval set has another layout than the training data; training would fail when it evaluates.")
    shared = [p for p, hit in zip(places, scan.dups.seen(hashes)) if hit]
    if shared:
        count = len(shared) * scan.dups.scale
        approx = "about " if scan.dups.scale > 1 else ""
        report.problems.append(Problem(kind="overlap", line=shared[0][1], file=f"{label}/{shared[0][0]}" if shared[0][0] else label,
                                       message=f"{approx}{count} eval row(s) also appear in the training data",
                                       count=count, lines=[ln for _, ln in shared[:SAMPLE]], fix=FIXES["overlap"]))
