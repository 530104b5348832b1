"""Each method's verdict on the data: ready, needs a column mapping, or incompatible, with the reasons.

The verdict is made from the column summaries of every row (column_stats.py) and the best layout fit
(method_fit.py), never from the first few rows; what is wrong with the rows is row_findings.py's rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..reports.dataset import MethodVerdict
from ..types import Method
from .column_stats import ColumnStats
from .method_fit import LAYOUTS, Fit, best_fit
from .row_findings import column_findings
from .tally import Tally


def _lines(sample: list[tuple[int, int]], files: list[str | None]) -> str:
    shown = []
    for file_index, line in sorted(sample)[:5]:
        name = files[file_index] if file_index < len(files) else None
        shown.append(f"{name}:{line}" if name else str(line))
    return ", ".join(shown)


@dataclass
class Evidence:
    """What the scan found that the verdicts need besides the column summaries."""

    rows: int
    columns: dict[str, ColumnStats]
    column_tallies: dict[str, list[Tally]]  # column -> findings inside its values
    files: list[str | None]
    label_counts: dict[bool, int] = field(default_factory=dict)


def judge(method: Method, evidence: Evidence) -> tuple[MethodVerdict, Fit]:
    fit = best_fit(method, evidence.columns)
    cols = evidence.columns
    if not fit.fits:
        reasons = list(fit.wrong)
        if fit.missing:
            have = ", ".join(list(cols)[:12]) or "none"
            layouts = " or ".join("/".join(t.name for t in lay.targets if t.required) for lay in LAYOUTS[method])
            reasons.insert(0, f"{method} needs the columns {layouts}; missing: {', '.join(fit.missing)} "
                              f"(the data has: {have}).")
        reasons.extend(_suggestions(method, evidence))
        return MethodVerdict(status="incompatible", mapping={}, reasons=reasons), fit

    reasons: list[str] = []
    blockers: list[str] = []
    mapping = fit.mapping
    layout = fit.layout
    if layout.converted:
        reasons.append(layout.converted)
    if mapping:
        pairs = ", ".join(f"{t} <- {s}" for t, s in mapping.items())
        flags = " ".join(f"--column-map {t}={s}" for t, s in mapping.items())
        reasons.append(f"Rename columns ({pairs}): put column_map {mapping} in the config, or pass {flags}.")
        for target, others in fit.alternatives.items():
            reasons.append(f"{target!r} could also come from {', '.join(map(repr, others))}; change the mapping if so.")
        if any(s in ("chosen",) and t in ("completion", "messages", "text") for t, s in mapping.items()):
            reasons.append("This trains on the chosen responses only; the rejected ones are not used.")
    if layout.note:
        reasons.append(layout.note)

    for finding in column_findings(fit, cols):
        if finding.blocking:
            blockers.append(f"{finding.message} (lines {_lines(finding.lines, evidence.files)}).")
    trained = {t.name for t in layout.targets if t.trained}
    for target_name, column in fit.sources.items():
        where = f"{column!r}" + (f" (used as {target_name!r})" if column != target_name else "")
        for tally in evidence.column_tallies.get(column, []):
            if tally.blocking and (target_name in trained or tally.kind != "no_assistant"):
                blockers.append(f"{tally.count} row(s) in {where}: {tally.message} (lines {_lines(tally.lines, evidence.files)}).")

    if method == Method.SFT and layout.name == "prompt_completion" and "label" in cols and cols["label"].labels > cols["label"].non_labels:
        blockers.append("The rows carry a true/false 'label' (KTO data): SFT would also learn the completions "
                        "labelled false. Keep only label=true rows for SFT, or train with --method kto.")
    if "prompt" in fit.sources and "chosen" in fit.sources and cols[fit.sources["chosen"]].full_conversations:
        blockers.append(f"{cols[fit.sources['chosen']].full_conversations} row(s) hold whole conversations (user turns "
                        "included) in chosen/rejected while a prompt column is there too: the prompt would be fed "
                        "twice. Drop the 'prompt' column (TRL then splits the shared prompt off), or keep only the "
                        "assistant turns in chosen/rejected.")
    if method == Method.KTO and layout.name == "unpaired_preference" and evidence.label_counts:
        yes, no = evidence.label_counts.get(True, 0), evidence.label_counts.get(False, 0)
        if not yes or not no:
            reasons.append(f"Every label is {'true' if yes else 'false'}: KTO learns from both desirable and "
                           "undesirable examples; add some of the other kind.")

    if blockers:
        return MethodVerdict(status="incompatible", mapping=mapping,
                             reasons=blockers + ["Fix or drop these rows, then validate again."] + reasons), fit
    if mapping:
        return MethodVerdict(status="needs_mapping", mapping=mapping, reasons=reasons), fit
    if not reasons:
        reasons.append(f"Columns {', '.join(fit.sources)} fit {method} as they are.")
    return MethodVerdict(status="ready", mapping={}, reasons=reasons), fit


def _suggestions(method: Method, evidence: Evidence) -> list[str]:
    cols = evidence.columns
    kinds = {c.kind for c in cols.values()}
    if method == Method.GRPO and "messages" in cols:
        return ["GRPO needs prompts only: write each conversation without its last assistant turn into a "
                "'prompt' column (the rest can stay as extra columns for reward functions)."]
    if method in (Method.DPO, Method.REWARD) and ("completion" in cols or "messages" in cols or "text" in cols):
        return [f"{method} needs a chosen and a rejected answer per prompt; this data has one answer per row."]
    if method == Method.KTO and "completion" in cols and "label" not in cols:
        return ["Add a boolean 'label' column (true: a good completion, false: a bad one)."]
    if method == Method.SFT and kinds <= {"number", "bool", "null", "object", "other"}:
        return ["No column holds text or chat messages."]
    return []
