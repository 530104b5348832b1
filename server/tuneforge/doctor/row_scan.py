"""One streaming pass over every row, keeping only bounded summaries (per-column kinds, findings with
sample lines, duplicate hashes, PII counts), and the report built from them: the layout, each
method's verdict (method_verdicts.py) and the problems with where they are and what to do.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..reports.dataset import (
    DatasetReport,
    MethodVerdict,
    ParseError,
    Problem,
    TokenStats,
)
from ..types import Method
from .column_stats import MAX_COLUMNS, ColumnStats
from .duplicates import DuplicateSketch
from .images import ImageScan, base_dirs
from .method_fit import METHOD_FOR_FORMAT, Fit
from .method_verdicts import Evidence, judge
from .pii import find_pii
from .row_findings import auto_findings, column_findings
from .row_records import ReadError, Record
from .row_shapes import (
    FORMAT_WORDS,
    content_text,
    is_label,
    label_value,
    message_issues,
    row_format,
    value_kind,
)
from .sources import Source
from .tally import SAMPLE, Tally
from .token_stats import stats_from_histogram

MAX_ERRORS = 50  # unreadable lines listed (all are counted)
#: below this many rows a method barely changes the model
MIN_ROWS: dict[str, int] = {Method.SFT: 100, Method.DPO: 100, Method.KTO: 100, Method.REWARD: 100, Method.GRPO: 32}
LINE_BITS = 40  # a row's place is packed as (file index << 40) | line

FIXES = {
    "missing": "Fill in or drop these rows: every row needs the fields the method reads.",
    "type": "Make every value of the column the same kind (all text, or all lists of {role, content} messages).",
    "empty": "Fill in or drop the empty values.",
    "role": "Use the roles system, user, assistant (and tool); rename others (e.g. 'developer' -> 'system', 'bot' -> 'assistant').",
    "no_assistant": "Add the assistant's answer or drop these rows: with assistant-only loss they have nothing to learn.",
    "alternation": "Merge consecutive turns of the same role and keep the system message first; many chat templates reject anything else.",
    "mixed_format": "Convert these rows to the layout of the others, or keep them in a separate file.",
    "duplicate": "Drop the repeated rows: they overweight those examples and leak into the eval split.",
    "near_duplicate": "Drop rows that differ only in case, spacing or punctuation: they act as duplicates.",
    "pii": "Remove or mask personal data before training: models memorise and repeat it.",
    "too_few_rows": "Add more examples (a few hundred is a practical minimum); or expect a model that barely changes.",
    "overlap": "Remove eval rows that also appear in the training data, or the eval loss will look better than the model is.",
    "identical_pair": "Drop pairs whose chosen and rejected answers are the same: they carry no preference.",
    "eval_format": "Give the eval file the same layout (columns) as the training file.",
}


class Scan:
    """Accumulates everything the report needs from one pass over the rows, in bounded memory."""

    def __init__(self, source: Source):
        self.source = source
        self.files: list[str | None] = source.file_names()
        self._file_ids: dict[str | None, int] = {name: i for i, name in enumerate(self.files)}
        self.rows = 0
        self.errors: list[ParseError] = []
        self.error_count = 0
        self.formats: Counter[str] = Counter()
        self.format_lines: dict[str, list[tuple[int, int]]] = {}
        self.columns: dict[str, ColumnStats] = {}
        self.too_many_columns = False
        self._sampling_missing: set[str] = set()  # columns with fewer than SAMPLE missing lines noted
        self._first_rows: list[tuple[int, int]] = []
        self.tallies: dict[tuple[str, str, str], Tally] = {}
        self.dups = DuplicateSketch()
        self.pii = {name: Tally("pii", f"{what} in the text") for name, what in
                    (("email", "email addresses"), ("phone", "phone numbers"), ("card", "card-like numbers"))}
        self.identical = Tally("identical_pair", "chosen and rejected are the same")
        self.label_counts: Counter[bool] = Counter()
        self.length_hist: Counter[int] = Counter()  # content characters // 4 -> rows
        self.images = ImageScan(base_dirs(source.files, source.root, source.kind == "hub"))

    # ---- the pass ------------------------------------------------------------------------------
    def place(self, file: str | None, line: int) -> tuple[int, int]:
        index = self._file_ids.get(file)
        if index is None:
            index = self._file_ids[file] = len(self.files)
            self.files.append(file)
        return index, line

    def run(self) -> None:
        for item in self.source.records():
            if isinstance(item, Record):
                self.add_row(item.value, self.place(item.file, item.line))
            else:
                self.add_error(item)

    def add_error(self, item: ReadError) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(ParseError(line=item.line, message=item.message, file=item.file))

    def add_row(self, row: dict[str, Any], where: tuple[int, int]) -> None:
        self.rows += 1
        if len(self._first_rows) < SAMPLE:
            self._first_rows.append(where)
        fmt = row_format(row)
        self.formats[fmt] += 1
        sample = self.format_lines.setdefault(fmt, [])
        if len(sample) < SAMPLE:
            sample.append(where)
        if row.keys() != self.columns.keys():
            self._note_missing(row, where)
        columns = self.columns
        for key, value in row.items():
            col = columns.get(key)
            if col is None:
                col = self._new_column(key)
                if col is None:
                    continue
            kind = value_kind(value)
            col.add(kind, (kind == "text" and (not value or value.isspace())) or kind == "empty_list", where)
            if kind == "messages" or kind == "sharegpt":
                self._check_conversation(key, value, kind == "sharegpt", where)
                if kind == "messages" and type(value[0]) is dict and value[0].get("role") in ("user", "system"):
                    col.full_conversations += 1
            elif kind != "null" and kind != "objects" and kind != "list":
                col.add_label(is_label(value), where)
        if "chosen" in row and "rejected" in row and row["chosen"] == row["rejected"] and row["chosen"] not in (None, "", []):
            self.identical.add(where[1], where[0])
        label = row.get("label")
        if label is not None and is_label(label):
            self.label_counts[bool(label_value(label))] += 1
        text = content_text(row)
        self.dups.add((where[0] << LINE_BITS) | where[1], text)
        email, phone, card = find_pii(text)
        if email:
            self.pii["email"].add(where[1], where[0])
        if phone:
            self.pii["phone"].add(where[1], where[0])
        if card:
            self.pii["card"].add(where[1], where[0])
        self.length_hist[len(text) // 4] += 1
        self.images.add_row(row, where)

    def _new_column(self, key: str) -> ColumnStats | None:
        if len(self.columns) >= MAX_COLUMNS:
            self.too_many_columns = True
            return None
        col = self.columns[key] = ColumnStats(str(key))
        before = self.rows - 1
        if before:  # earlier rows lacked it
            col.missing_lines.extend(self._first_rows[:min(before, SAMPLE)])
        if len(col.missing_lines) < SAMPLE:
            self._sampling_missing.add(key)
        return col

    def _note_missing(self, row: dict[str, Any], where: tuple[int, int]) -> None:
        """Sample lines of the columns this row lacks (the counts come from the rows that have them, in
        count_missing): a set difference in C, so rows of scattered keys cost little."""
        for name in self._sampling_missing - row.keys():
            lines = self.columns[name].missing_lines
            lines.append(where)
            if len(lines) >= SAMPLE:
                self._sampling_missing.discard(name)

    def count_missing(self) -> None:
        """Each column's missing count: the rows read less the rows that hold it."""
        for col in self.columns.values():
            col.missing = self.rows - sum(col.kinds.values())

    def _check_conversation(self, column: str, messages: list[Any], sharegpt: bool, where: tuple[int, int]) -> None:
        seen: set[tuple[str, str]] = set()
        for kind, detail in message_issues(messages, sharegpt, trained=column != "prompt"):
            if (kind, detail) in seen:
                continue
            seen.add((kind, detail))
            key = (kind, column, detail)
            tally = self.tallies.get(key)
            if tally is None:
                blocking = kind in ("missing", "type", "no_assistant")
                tally = self.tallies[key] = Tally(kind, detail, FIXES.get(kind), blocking, column)
            tally.add(where[1], where[0])

    # ---- the report ----------------------------------------------------------------------------
    def report(self, method: str) -> tuple[DatasetReport, dict[str, Fit]]:
        self.count_missing()
        fmt = self.formats.most_common(1)[0][0] if self.rows else "empty"
        column_tallies: dict[str, list[Tally]] = {}
        for tally in self.tallies.values():
            column_tallies.setdefault(tally.column or "", []).append(tally)
        evidence = Evidence(self.rows, self.columns, column_tallies, self.files, dict(self.label_counts))
        verdicts: dict[str, MethodVerdict] = {}
        fits: dict[str, Fit] = {}
        for name in Method:
            if self.rows:
                verdicts[name], fits[name] = judge(name, evidence)
            else:
                verdicts[name] = MethodVerdict(status="incompatible", reasons=["The source has no readable rows."])
        primary = method if method != "auto" else primary_method(fmt, verdicts)
        ordered = {primary: verdicts[primary], **{k: v for k, v in verdicts.items() if k != primary}}
        fit = fits.get(primary)
        conversational = bool(fit and fit.fits and any(
            self.columns[c].kind in ("messages", "sharegpt") for c in fit.sources.values())) or fmt in ("messages", "sharegpt")
        report = DatasetReport(
            source=self.source.label,
            format=fmt,
            conversational=conversational,
            rows=self.rows,
            method=method,
            methods=ordered,
            errors=list(self.errors),
            error_count=self.error_count,
            columns={name: col.kind for name, col in self.columns.items()},
            notes=list(self.source.notes),
        )
        if self.too_many_columns:
            report.notes.append(f"Rows have more than {MAX_COLUMNS} distinct fields; only the first {MAX_COLUMNS} were checked.")
        if not self.rows:
            what = "no readable rows" if self.error_count else "no rows (the file is empty or holds only blank lines)"
            report.notes.append(f"The source has {what}.")
        report.problems = self._problems(fmt, primary, fit, fits, method)
        report.images = self.images.stats()
        broken = sum(t.count for t in self.images.tallies.values() if t.blocking)
        if broken:  # the trainer's collator would stop at the first of these rows
            for verdict in report.methods.values():
                if verdict.status != "incompatible":
                    verdict.status = "incompatible"
                    verdict.reasons.insert(0, f"{broken} image problem(s) would stop training (missing, corrupt or "
                                              "unmatched images); see the problems.")
        return report, fits

    def where(self, place: tuple[int, int]) -> tuple[str | None, int]:
        return self.files[place[0]] if place[0] < len(self.files) else None, place[1]

    def _problem(self, kind: str, message: str, count: int, sample: list[tuple[int, int]], *, blocking: bool = False,
                 fix: str | None = None) -> Problem:
        sample = sorted(sample)
        file, line = self.where(sample[0]) if sample else (None, None)
        return Problem(kind=kind, line=line, file=file, message=message, count=count,
                       lines=[ln for f, ln in sample if f == (sample[0][0] if sample else 0)],
                       fix=fix if fix is not None else FIXES.get(kind), blocking=blocking)

    def _problems(self, fmt: str, primary: str, fit: Fit | None, fits: dict[str, Fit], method: str) -> list[Problem]:
        # the rows' problems in the columns a method reads: the requested one's, or (auto) every fitting one's
        if method == "auto":
            findings = auto_findings(fit, list(fits.values()), self.columns)
        else:
            findings = column_findings(fit, self.columns) if fit is not None else []
        out = [self._problem(f.kind, f.message, f.count, f.lines, blocking=f.blocking) for f in findings]
        for tally in self.tallies.values():
            out.append(self._problem(tally.kind, f"{tally.count} row(s) in {tally.column!r}: {tally.message}",
                                     tally.count, tally.lines, blocking=tally.blocking, fix=tally.fix))
        for tally in self.images.tallies.values():
            detail = self.images.examples.get(tally.kind + tally.message)
            out.append(self._problem(tally.kind, f"{tally.count} {tally.message} in {tally.column!r}"
                                     + (f" (first: {detail})" if detail else ""), tally.count, tally.lines,
                                     blocking=tally.blocking, fix=tally.fix))
        if self.identical.count:
            out.append(self._problem("identical_pair", f"{self.identical.count} row(s): {self.identical.message}",
                                     self.identical.count, self.identical.lines))
        for other, n in self.formats.items():
            if other != fmt and self.rows:
                out.append(self._problem("mixed_format", f"{n} row(s) are {FORMAT_WORDS.get(other, other)} while most "
                                         f"are {FORMAT_WORDS.get(fmt, fmt)}", n, self.format_lines.get(other, [])))
        exact, near = self.dups.find()
        for kind, found, what in (("duplicate", exact, "repeat an earlier row exactly"),
                                  ("near_duplicate", near, "repeat an earlier row up to case, spacing and punctuation")):
            if found.count:
                first = ", ".join(f"line {self._line_of(a)} repeats line {self._line_of(b)}" for a, b in found.pairs[:3])
                approx = "about " if found.estimated else ""
                out.append(self._problem(kind, f"{approx}{found.count} row(s) {what} ({first})", found.count,
                                         [self._unpack(a) for a, _ in found.pairs]))
        for tally in self.pii.values():
            if tally.count:
                out.append(self._problem("pii", f"{tally.count} row(s) contain {tally.message.replace(' in the text', '')}",
                                         tally.count, tally.lines))
        wanted = MIN_ROWS.get(primary, 100)
        if 0 < self.rows < wanted:
            out.append(self._problem("too_few_rows", f"only {self.rows} row(s); {primary} needs a few hundred to learn "
                                     f"reliably (at least {wanted})", self.rows, [],
                                     fix=f"Add examples (at least {wanted} for {primary}), or expect little change in the model."))
        return out

    @staticmethod
    def _unpack(packed: int) -> tuple[int, int]:
        return packed >> LINE_BITS, packed & ((1 << LINE_BITS) - 1)

    def _line_of(self, packed: int) -> str:
        file, line = self.where(self._unpack(packed))
        return f"{file}:{line}" if file else str(line)

    # ---- lengths without a tokenizer -------------------------------------------------------------
    def estimated_stats(self, method: str, max_length: int) -> TokenStats:
        stats = stats_from_histogram(self.length_hist, max_length)
        return TokenStats(tokenizer=None, estimated=True, method=method, max_length=max_length,
                          notes=["Estimated as characters / 4 of each row's content; pass --model for exact counts "
                                 "with the model's tokenizer and chat template."], **stats)


def primary_method(fmt: str, verdicts: dict[str, MethodVerdict]) -> str:
    """The method the report leads with (auto): the one the layout is usually trained with unless it cannot
    use the data, else the first ready one, else the first that needs only a column mapping."""
    by_format = METHOD_FOR_FORMAT.get(fmt)
    if by_format and verdicts[by_format].status != "incompatible":
        return by_format
    for wanted in ("ready", "needs_mapping"):
        for name, verdict in verdicts.items():
            if verdict.status == wanted:
                return name
    return by_format or Method.SFT
