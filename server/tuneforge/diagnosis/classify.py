"""diagnose_lines: a training log (ours or any TRL/transformers script's) -> a Diagnosis.

Every cleaned line is matched against the rules; lines that are warnings ("UserWarning: No module named
'flash_attn'", "WARNING ...") count only when nothing else matched. The kind highest in `rules.PRIORITY`
among those that matched wins (a diverging loss read from the reported losses ranks just above network and not_found: a
run that trained into NaN and then failed to reach the Hub diverged first). `evidence` is the few lines of
the winning kind, scrubbed.
"""

from __future__ import annotations

from ..config import RunConfig
from ..reports.diagnosis import Diagnosis
from . import signals
from .fixes import FIXES, fix_for
from .rules import PRIORITY, scan

#: at most this many evidence lines: the first (the root) and the last ones (what the run said at the end)
EVIDENCE_LINES = 5
#: the rank of a loss that went NaN/inf or exploded, read from the losses rather than from a message
LOSS_DIVERGENCE_RANK = PRIORITY.index("network") - 0.5


def _evidence(lines: list[str]) -> list[str]:
    """The distinct lines, leaving out one that only repeats an earlier one with more words after it (a
    status message that quotes the log's cause)."""
    distinct: list[str] = []
    for line in dict.fromkeys(line.strip() for line in lines):
        if not any(line.startswith(earlier) for earlier in distinct):
            distinct.append(line)
    if len(distinct) <= EVIDENCE_LINES:
        return distinct
    return [distinct[0], *distinct[-(EVIDENCE_LINES - 1):]]


def diagnose_lines(lines: list[str], config: RunConfig | None = None, *, secrets: list[str] | None = None) -> Diagnosis:
    """Classify a failed run from its log lines (raw: event lines, ANSI codes and all), with the fix and,
    given the run's config, the config change a retry applies. `secrets`: values to scrub from the evidence
    (default: this machine's, secrets.secret_values)."""
    reading = signals.read(lines, secrets)
    found: dict[str, list[str]] = {}
    tags: dict[str, set[str]] = {}
    matched = scan(reading.lines)
    errors = [(i, rule) for i, rule in matched if not signals.is_warning(reading.lines[i])]
    for index, rule in errors or matched:  # a warning counts only when no other line says anything
        found.setdefault(rule.kind, []).append(reading.lines[index])
        tags.setdefault(rule.kind, set()).add(rule.tag)
    ranks: dict[str, float] = {kind: PRIORITY.index(kind) for kind in found}
    if (loss_lines := signals.diverged(reading.losses)) and "divergence" not in found:
        found["divergence"], tags["divergence"] = loss_lines, {"loss"}
        ranks["divergence"] = LOSS_DIVERGENCE_RANK
    if not ranks:
        tail = [line for line in reading.lines if line.strip()][-3:]
        return Diagnosis(kind="unknown", evidence=tail, fix=FIXES["unknown"], retry_with={})
    kind = min(ranks, key=lambda k: ranks[k])
    evidence = _evidence(found[kind])
    fix, retry_with = fix_for(kind, tags[kind], config, found[kind])
    return Diagnosis(kind=kind, evidence=evidence, fix=fix, retry_with=retry_with)  # type: ignore[arg-type]


__all__ = ["diagnose_lines", "EVIDENCE_LINES"]
