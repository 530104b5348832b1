"""What the per-row token tallies add up to: the report's TokenStats (length percentiles, truncation,
trainable tokens, EOS, double BOS), the problems they point at, and the findings that block training.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..reports.dataset import Problem, TokenStats
from .chat_tokenizer import Tok
from .method_fit import Fit
from .sequences import Renderer, needs_template
from .tally import SAMPLE, Tally


def new_tallies(max_length: int) -> dict[str, Tally]:
    return {
        "too_long": Tally("too_long", f"longer than max_length={max_length} tokens (cut off: the end is not trained)",
                          "Raise max_length (--max-length) or shorten/split these rows."),
        "zero_trainable": Tally("zero_trainable", "no trainable tokens at this max_length (every label would be "
                                "-100; tuneforge's templates drop such rows and count them in the result)",
                                "Raise max_length (--max-length) if truncation cut off the answer, or drop these rows."),
        "no_eos": Tally("no_eos", "the end-of-turn/EOS token is not inside the trained span: the model would not learn to stop",
                        "Use a chat template that closes assistant turns with the EOS/end-of-turn token "
                        "(the model's instruct template does), or append the EOS token to each answer.", True),
        "double_bos": Tally("double_bos", "the sequence starts with BOS twice (the text already holds BOS and the tokenizer adds one)",
                            "Remove the BOS text from the start of each row; the tokenizer adds it."),
        "template": Tally("template", "the chat template fails on these rows", "Fix the rows the template rejects "
                          "(most templates require alternating user/assistant turns and may refuse a system role).", True),
        "template_prefix": Tally("template", "the chat template renders earlier turns differently once later turns follow "
                                 "(e.g. it drops reasoning); assistant spans were found by their text instead",
                                 "Nothing to do unless the counts look wrong; a template that renders every turn "
                                 "the same way masks exactly."),
    }


@dataclass
class Share:
    """What one process measured (its blocks of rows); shares add up."""

    tallies: dict[str, Tally]
    hist: Counter = field(default_factory=Counter)
    trained: int = 0
    rows: int = 0
    skipped: int = 0
    verified: int = 0
    fast: bool = False
    disagreement: str | None = None
    template_error: tuple[tuple[int, int], str] | None = None

    def add(self, other: "Share") -> None:
        self.hist.update(other.hist)
        for name, tally in other.tallies.items():
            mine = self.tallies[name]
            mine.count += tally.count
            mine.lines = sorted(mine.lines + tally.lines)[:SAMPLE]
        self.trained += other.trained
        self.rows += other.rows
        self.skipped += other.skipped
        self.verified += other.verified
        self.fast = self.fast and other.fast
        self.disagreement = self.disagreement or other.disagreement
        if other.template_error and (self.template_error is None or other.template_error[0] < self.template_error[0]):
            self.template_error = other.template_error


def stats_from_histogram(hist: Counter[int], max_length: int) -> dict[str, Any]:
    """Length percentiles, totals and truncation from a histogram of length -> rows."""
    rows = sum(hist.values())
    if not rows:
        return {"rows": 0}
    total = sum(k * n for k, n in hist.items())
    p50_at, p95_at = (rows + 1) // 2, max(1, -(-rows * 95 // 100))
    seen, p50, p95 = 0, None, None
    for length in sorted(hist):
        seen += hist[length]
        if p50 is None and seen >= p50_at:
            p50 = length
        if p95 is None and seen >= p95_at:
            p95 = length
            break
    truncated = sum(n for k, n in hist.items() if k > max_length)
    return {"rows": rows, "mean": round(total / rows, 1), "p50": p50 or 0, "p95": p95 or 0, "max": max(hist),
            "total_tokens": total, "truncated_rows": truncated, "truncated_share": round(truncated / rows, 4)}


@dataclass
class Measured:
    stats: TokenStats
    tallies: dict[str, Tally] = field(default_factory=dict)
    blockers: list[str] = field(default_factory=list)

    def problems(self, files: list[str | None]) -> list[Problem]:
        out = []
        for t in self.tallies.values():
            if not t.count:
                continue
            lines = sorted(t.lines)
            first_file = files[lines[0][0]] if lines and lines[0][0] < len(files) else None
            out.append(Problem(kind=t.kind, line=lines[0][1] if lines else None, file=first_file,
                               message=f"{t.count} row(s): {t.message}", count=t.count,
                               lines=[ln for f, ln in lines if f == lines[0][0]], fix=t.fix, blocking=t.blocking))
        return out


def measured_result(total: Share, tok: Tok, fit: Fit, model: str, max_length: int,
                    first: dict[str, Any] | None) -> Measured:
    """The TokenStats, problems and blockers from everything measured; `first` is the first row."""
    tallies = total.tallies
    has_spans = fit.layout.name != "prompt_only"
    conversational = needs_template(fit, first)
    error = total.template_error[1] if total.template_error else None
    if error:
        tallies["template"].message += f" (first error: {error})"
    notes: list[str] = []
    if total.skipped:
        notes.append(f"{total.skipped} row(s) were not measured: they lack the values the layout needs (see the problems).")
    if total.disagreement:
        notes.append(f"The fast token counter disagreed with the tokenizer ({total.disagreement}); the tokenizer "
                     "counted from there on.")
    elif total.fast and total.verified:
        notes.append(f"Counted with the fast exact counter, checked against the tokenizer on {total.verified} sequence(s).")
    if conversational and tok.template and not tok.generation_markers and has_spans:
        notes.append("The chat template has no {% generation %} markers, so TRL's own assistant_only_loss cannot "
                     "mask it; tuneforge finds the assistant spans by rendering each prefix, as measured here.")
    if conversational and tok.adds_bos and _template_starts_with_bos(tok):
        notes.append("The chat template writes BOS and the tokenizer also adds BOS to plain text: tokenize rendered "
                     "chats with add_special_tokens=False (TRL and tuneforge do), or they start with two BOS tokens.")
    stats = TokenStats(
        tokenizer=model, estimated=False, method=fit.method, max_length=max_length,
        trainable_tokens=total.trained if has_spans else None,
        zero_trainable_rows=tallies["zero_trainable"].count if has_spans else None,
        no_eos_rows=tallies["no_eos"].count if has_spans else None,
        double_bos_rows=tallies["double_bos"].count,
        chat_template="model" if conversational else "not_needed",
        notes=notes, **stats_from_histogram(total.hist, max_length),
    )
    blockers = []
    z, t, e = tallies["zero_trainable"], tallies["template"], tallies["no_eos"]
    if z.count and z.count >= total.rows:
        z.blocking = True
        blockers.append(f"No row has a trainable token with {model}'s template at max_length={max_length}: "
                        "there is nothing to learn. Raise max_length or check the assistant turns.")
    if t.count:
        blockers.append(f"The chat template of {model} fails on {t.count} row(s) (lines "
                        f"{', '.join(str(ln) for _, ln in sorted(t.lines)[:5])}): {error}.")
    if e.count:
        blockers.append(f"In {e.count} row(s) the trained span does not include the end-of-turn/EOS token, so the model "
                        "would not learn to stop.")
    return Measured(stats, tallies, blockers)


def _template_starts_with_bos(tok: Tok) -> bool:
    try:
        return bool(tok.bos) and Renderer(tok).render([{"role": "user", "content": "hi"}], False).startswith(tok.bos)
    except Exception:
        return False
