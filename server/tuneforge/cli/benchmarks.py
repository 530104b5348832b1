"""`tuneforge eval --benchmarks hellaswag,arc_easy,...`: lm-evaluation-harness on base and tuned, the change per benchmark.

The flags are added to `tuneforge eval` (cli/eval.py calls `add_benchmark_flags` and `maybe_run`).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from ..errors import TuneforgeError
from . import output

if TYPE_CHECKING:
    from ..reports.benchmarks import BenchmarkReport


def add_benchmark_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("general-ability benchmarks (EleutherAI lm-evaluation-harness; needs tuneforge[eval])")
    g.add_argument("--benchmarks", help="Comma-separated lm-eval tasks (hellaswag,arc_easy,gsm8k,...): run them on the base "
                   "and the tuned model (a job id or adapter alone brings its base) and show the change per benchmark. "
                   "--limit is then documents per benchmark.")
    g.add_argument("--benchmark-tasks", help="A folder of your own lm-eval task YAML files (--include_path).")
    g.add_argument("--num-fewshot", type=int, help="Few-shot examples per benchmark (default: each task's own).")
    g.add_argument("--batch-size", default="8", help="lm-eval batch size (a number or 'auto'; default 8).")
    g.add_argument("--device", help="lm-eval device (cpu, cuda, cuda:0, mps; default: the harness's choice).")


def maybe_run(args: argparse.Namespace) -> int | None:
    """Run the benchmarks when --benchmarks is given (an exit status); None: the held-out evaluation runs instead."""
    if not getattr(args, "benchmarks", None):
        if not getattr(args, "data", None):
            raise TuneforgeError("Nothing to evaluate on.", "Pass --data FILE (held-out prompts) or --benchmarks hellaswag,arc_easy,...",
                                 code="eval.data_required")
        return None
    from ..actions.benchmark import compare_benchmarks

    batch = int(args.batch_size) if str(args.batch_size).isdigit() else args.batch_size
    report = compare_benchmarks(args.models, args.benchmarks, limit=args.limit, task_dir=args.benchmark_tasks,
                                num_fewshot=args.num_fewshot, batch_size=batch, device=args.device,
                                progress=None if args.json else (lambda m: output.stdout.print(escape(m))))
    output.emit(args, report, render)
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def render(report: "BenchmarkReport") -> None:
    table = Table(title="Benchmarks (lm-evaluation-harness " + escape(report.lm_eval_version or "?") + ")")
    for col in ("benchmark", "metric", "base", "tuned", "change", "±"):
        table.add_column(col)
    for c in report.changes:
        metric = c.metric if c.filter == "none" else f"{c.metric} ({c.filter})"
        change = _fmt(c.change) if c.change is None else f"{c.change:+.4g}"
        style = "red" if c.worse else "green" if c.worse is False and c.change else ""
        table.add_row(escape(c.benchmark), escape(metric), _fmt(c.base), _fmt(c.tuned),
                      f"[{style}]{change}[/{style}]" if style else change, _fmt(c.stderr))
    output.stdout.print(table)
    labels = " vs ".join(m.model.label + (f" (peft={m.model.peft})" if m.model.peft else "") for m in report.models)
    output.stdout.print(escape(f"{labels}; {report.seconds:.0f} s") + "".join(f"\n{escape(n)}" for n in report.notes))
