"""`tuneforge eval`: base models, adapters, finished jobs and GGUF files on one held-out file, side by side."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from . import output
from .benchmarks import add_benchmark_flags, maybe_run  # --benchmarks (issue 12 item 4)

if TYPE_CHECKING:
    from ..actions.evaluate import EvalReport


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="Evaluate models, adapters, jobs or GGUF files on a held-out file, side by side.",
        description="Greedy answers of each model to the file's prompts, scored against its reference column with "
        "the eval block's metrics (exact_match, contains, regex, json_fields, rouge_l, perplexity, reward:<GRPO reward>). "
        "One row per model.",
    )
    p.add_argument("models", nargs="+", help="Hub ids, model or adapter folders, job ids, .gguf files.")
    p.add_argument("--data", help="Held-out .jsonl/.json/.csv file with prompts and references.")
    p.add_argument("--metrics", help="Comma-separated metric names (default exact_match,rouge_l), or a JSON list of "
                   "names and {'name': ..., options} mappings.")
    p.add_argument("--prompt-column", help="Default: prompt/question/instruction/input, or a messages column.")
    p.add_argument("--reference-column", help="Default: reference/answer/completion/output/..., or the last assistant turn.")
    p.add_argument("--limit", type=int, help="At most this many rows.")
    p.add_argument("--max-new-tokens", type=int, help="Tokens per answer (default 96).")
    p.add_argument("--system-prompt", help="A system prompt before every prompt.")
    p.add_argument("--trust-remote-code", action="store_true", help="Let the models run their own code. Read it first.")
    add_benchmark_flags(p)  # --benchmarks: issue 12 item 4, cli/benchmarks.py
    output.add_json_flag(p)
    p.set_defaults(handler=run)


def parse_metrics(text: str | None) -> list | None:
    if not text:
        return None
    text = text.strip()
    if text.startswith("["):
        return json.loads(text)
    return [m.strip() for m in text.split(",") if m.strip()]


def run(args: argparse.Namespace) -> int:
    from ..actions.evaluate import evaluate

    if (status := maybe_run(args)) is not None:  # --benchmarks: cli/benchmarks.py (refuses no --data without it)
        return status
    report = evaluate(args.models, args.data, metrics=parse_metrics(args.metrics), prompt_column=args.prompt_column,
                      reference_column=args.reference_column, limit=args.limit, max_new_tokens=args.max_new_tokens,
                      system_prompt=args.system_prompt, trust_remote_code=args.trust_remote_code)
    output.emit(args, report, render)
    return 0


def render(report: "EvalReport") -> None:
    names = list(dict.fromkeys(k for row in report.rows for k in row.scores))
    table = Table(title=f"Held-out evaluation: {escape(report.data)}")
    for col in ("model", "kind", "rows", *names):
        table.add_column(escape(col))
    for row in report.rows:
        table.add_row(escape(row.model), row.kind, str(row.rows),
                      *["-" if row.scores.get(n) is None else f"{row.scores[n]:.4g}" for n in names])
    output.stdout.print(table)
