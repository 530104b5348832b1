"""Token lengths and trained spans as training will see them: every row rendered with the model's own
tokenizer and chat template (sequences.py), counted exactly (counting.py).

From the counts: length percentiles, rows truncated at max_length, rows with zero trainable tokens,
whether the end-of-turn / EOS token lies inside the trained span (a model that never learns to stop),
double BOS, and rows the chat template rejects. Large inputs are split into blocks of rows shared with
worker processes that rebuild the tokenizer from its serialised form (no transformers, no torch there).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .counting import FastCounter, SeqCount, count_with_tokenizer
from .methods import Fit
from .reading import Record, Source
from ..reports.dataset import Problem, TokenStats
from .sequences import Renderer, Seq, SkipRow, needs_template, row_sequences
from .sketch import SAMPLE, Tally
from .tokenizer import Tok, TokenizerSpec, load_tokenizer, tok_from_spec

BATCH = 512  # sequences counted together
VERIFY_FIRST = 256  # sequences checked against the real tokenizer before trusting the fast counter
VERIFY_EVERY = 499  # ... and one in this many after that
VERIFY_MAX_CHARS = 100_000  # longer texts are not re-counted (the check would cost more than it tells)


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


def measure(src: Source, fit: Fit, model: str, max_length: int, files: list[str | None], *,
            spec: TokenizerSpec | None = None, workers: int = 0) -> Measured:
    """Measure every row of `src` for `fit` (the method and columns chosen) with `model`'s tokenizer."""
    tok = tok_from_spec(spec) if spec is not None else load_tokenizer(model)
    first = next((item.value for item in src.records() if isinstance(item, Record)), None)
    if needs_template(fit, first) and not tok.template:
        stats = TokenStats(tokenizer=model, estimated=False, method=fit.method, max_length=max_length, rows=0,
                           chat_template="none",
                           notes=["Not measured: the rows are conversations and the model has no chat template."])
        return Measured(stats, {}, [
            f"The model {model!r} has no chat template (a base model?), so its conversations cannot be rendered "
            "for training. Use the instruct/chat variant of the model, or give the data as plain text."])
    if workers and tok.backend is not None:
        from .worker import Helper

        portable = tok.portable()
        parts = workers + 1
        helpers = [Helper("measure", portable, src, fit, max_length, files, k, parts) for k in range(1, parts)]
        try:
            total = measure_share(tok, src, fit, max_length, files, 0, parts)
            for helper in helpers:
                total.add(helper.result())
        finally:
            for helper in helpers:
                helper.stop()
    else:
        total = measure_share(tok, src, fit, max_length, files, 0, 1)
    return _finish(total, tok, fit, model, max_length, first)


def measure_share_from_spec(spec: TokenizerSpec, src: Source, fit: Fit, max_length: int, files: list[str | None],
                            part: int, parts: int) -> Share:
    """measure_share in a helper process, from the tokenizer's portable spec."""
    return measure_share(tok_from_spec(spec), src, fit, max_length, files, part, parts)


def measure_share(tok: Tok, src: Source, fit: Fit, max_length: int, files: list[str | None],
                  part: int, parts: int) -> Share:
    """Measure the blocks of rows numbered part, part + parts, part + 2 * parts..."""
    share = Share(new_tallies(max_length))
    tallies = share.tallies
    renderer = Renderer(tok)
    fast = FastCounter.build(tok)
    share.fast = fast is not None
    file_ids = {name: i for i, name in enumerate(files)}
    has_spans = fit.layout.name != "prompt_only"
    pending: list[tuple[tuple[int, int], list[Seq]]] = []
    pending_seqs = 0
    seen = 0

    def account(where: tuple[int, int], seqs: list[Seq], counts: list[SeqCount]) -> None:
        share.rows += 1
        length = max(c.tokens for c in counts)
        share.hist[length] += 1
        file_index, line = where
        if length > max_length:
            tallies["too_long"].add(line, file_index)
        if any(c.double_bos for c in counts):
            tallies["double_bos"].add(line, file_index)
        if not has_spans:
            return
        share.trained += sum(c.trained or 0 for c in counts)
        if any(c.trained == 0 for c in counts):
            tallies["zero_trainable"].add(line, file_index)
        elif length <= max_length and any(s.check_eos and not c.eos_trained for s, c in zip(seqs, counts)):
            tallies["no_eos"].add(line, file_index)
        if any(s.unstable for s in seqs):
            tallies["template_prefix"].add(line, file_index)

    def flush() -> None:
        nonlocal fast, seen, pending, pending_seqs
        flat = [s for _, seqs in pending for s in seqs]
        counts: list[SeqCount | None] = [None] * len(flat)
        check: list[int] = []
        if fast is not None:
            for i, s in enumerate(flat):
                counts[i] = fast.count(s, max_length)
                seen += 1
                if counts[i] is not None and len(s.text) <= VERIFY_MAX_CHARS \
                        and (share.verified + len(check) < VERIFY_FIRST or seen % VERIFY_EVERY == 0):
                    check.append(i)
        todo = [i for i, c in enumerate(counts) if c is None] + check
        if todo:
            real = count_with_tokenizer(tok, [flat[i] for i in todo], max_length)
            mismatch = next(((counts[i], c) for i, c in zip(todo, real) if counts[i] is not None and counts[i] != c), None)
            if mismatch is not None:
                share.disagreement = f"{mismatch[0]} vs {mismatch[1]}"
                share.fast = False
                fast = None
                counts = list(count_with_tokenizer(tok, flat, max_length))
            else:
                for i, c in zip(todo, real):
                    counts[i] = c
                share.verified += len(check)
        k = 0
        for where, seqs in pending:
            account(where, seqs, counts[k: k + len(seqs)])  # type: ignore[arg-type]
            k += len(seqs)
        pending, pending_seqs = [], 0

    for item in src.records(share=(part, parts)):
        if not isinstance(item, Record):
            continue
        where = (file_ids.get(item.file, 0), item.line)
        try:
            seqs = row_sequences(item.value, fit, renderer)
        except SkipRow:
            share.skipped += 1
            continue
        except Exception as exc:  # the chat template raised (raise_exception, a type error...)
            tallies["template"].add(where[1], where[0])
            if share.template_error is None:
                share.template_error = (where, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
            continue
        pending.append((where, seqs))
        pending_seqs += len(seqs)
        if pending_seqs >= BATCH:
            flush()
    if pending:
        flush()
    return share


def _finish(total: Share, tok: Tok, fit: Fit, model: str, max_length: int, first: dict[str, Any] | None) -> Measured:
    from .validate import stats_from_histogram

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
