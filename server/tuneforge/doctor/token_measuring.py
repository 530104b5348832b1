"""Token lengths and trained spans as training will see them: every row rendered with the model's own
tokenizer and chat template (sequences.py), counted exactly (token_counting.py), tallied per row.

Per row: its length, truncation at max_length, zero trainable tokens, whether the end-of-turn / EOS
token lies inside the trained span (a model that never learns to stop), double BOS, and rows the chat
template rejects; token_stats.py turns the tallies into the report's TokenStats. Large inputs are split
into blocks of rows shared with helper processes (worker_pool.py) that rebuild the tokenizer from its
serialised form (no transformers, no torch there).
"""

from __future__ import annotations

from ..reports.dataset import TokenStats
from .chat_tokenizer import Tok, TokenizerSpec, load_tokenizer, tok_from_spec
from .method_fit import Fit
from .row_records import Record
from .sequences import Renderer, Seq, SkipRow, needs_template, row_sequences
from .sources import Source
from .token_counting import FastCounter, SeqCount, count_with_tokenizer
from .token_stats import Measured, Share, measured_result, new_tallies
from .worker_pool import Helper, task_name

BATCH = 512  # sequences counted together
VERIFY_FIRST = 256  # sequences checked against the real tokenizer before trusting the fast counter
VERIFY_EVERY = 499  # ... and one in this many after that
VERIFY_MAX_CHARS = 100_000  # longer texts are not re-counted (the check would cost more than it tells)


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
        portable = tok.portable()
        parts = workers + 1
        helpers = [Helper(MEASURE_TASK, portable, src, fit, max_length, files, k, parts) for k in range(1, parts)]
        try:
            total = measure_share(tok, src, fit, max_length, files, 0, parts)
            for helper in helpers:
                total.add(helper.result())
        finally:
            for helper in helpers:
                helper.stop()
    else:
        total = measure_share(tok, src, fit, max_length, files, 0, 1)
    return measured_result(total, tok, fit, model, max_length, first)


def measure_share_from_spec(spec: TokenizerSpec, src: Source, fit: Fit, max_length: int, files: list[str | None],
                            part: int, parts: int) -> Share:
    """measure_share in a helper process, from the tokenizer's portable spec."""
    return measure_share(tok_from_spec(spec), src, fit, max_length, files, part, parts)


#: the helper-process task that measures one share of the rows
MEASURE_TASK = task_name(measure_share_from_spec)


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
