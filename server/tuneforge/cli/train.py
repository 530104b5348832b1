"""`tuneforge train`: build a validated config from a file and flags, submit it, return the job id at once.

The run flags are defined here once (`add_run_flags`) and `tuneforge plan` takes the same ones, so a plan
and the job it proposes are built from the same inputs and resolved by the same function
(actions/resolve.py).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..config import RunConfig, load_mapping, parse_duration
from ..config.overrides import (
    merge_config,
    parse_column_map,
    planning_config,
    run_overrides,
)
from ..types import BACKENDS, METHODS
from . import output
from .jobs import follow_job

if TYPE_CHECKING:
    from ..jobs.service import SubmitResult

#: actions.resolve.DEFAULT_BACKEND (tests/test_planner_cli.py checks they agree; the parser stays light)
DEFAULT_BACKEND = "local"
REQUIRED = {"model": "--model", "dataset": "--dataset"}
MISSING_FIX = "Pass them as flags or put them in a --config file."


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """The flags of a run, for `train` and `plan` alike; each dest is a name of config.overrides.RUN_FIELDS."""
    p.add_argument("--config", help="YAML or JSON training config (see RunConfig); flags override its values.")
    p.add_argument("--method", choices=METHODS, help="Training method (default sft).")
    p.add_argument("--model", help="Base model: a Hub id (owner/name) or a local model directory.")
    p.add_argument("--dataset", help="Training data: a local file/dir or a Hub dataset id.")
    p.add_argument("--split", help="Dataset split (default train).")
    p.add_argument("--eval-dataset", help="A separate eval file or Hub id.")
    p.add_argument("--eval-fraction", type=float,
                   help="Share of the rows held out for eval when no --eval-dataset is given (default 0.1).")
    p.add_argument("--column-map", action="append", metavar="TARGET=SOURCE",
                   help="Rename a column, e.g. prompt=question (repeatable, or comma-separated: prompt=q,chosen=good).")
    p.add_argument("--backend", default=DEFAULT_BACKEND, choices=BACKENDS,
                   help="Where to run: local (default, this machine), hf (Hugging Face Jobs, billed) or ray (your Ray cluster).")
    p.add_argument("--ray-address", metavar="URL", help="The Ray cluster for --backend ray: its dashboard address, e.g. http://HEAD:8265 (default: $RAY_ADDRESS).")
    p.add_argument("--flavor", help="Hugging Face Jobs hardware flavor (default: the planner's choice).")
    p.add_argument("--timeout", help="Job time limit, e.g. 45m, 2h (default: the planner's estimate x 1.3 + buffer).")
    p.add_argument("--max-steps", type=int, help="Stop after this many optimizer steps.")
    p.add_argument("--epochs", type=float, help="Passes over the training data (default 1).")
    p.add_argument("--learning-rate", "--lr", type=float, dest="learning_rate",
                   help="Peak learning rate (default 2e-4 for LoRA; 2e-5 when --peft auto chooses a full fine-tune).")
    p.add_argument("--batch-size", type=int, help="Per-device batch size (default 4).")
    p.add_argument("--grad-accum", type=int, help="Gradient accumulation steps (default 1).")
    p.add_argument("--max-length", type=int, help="Maximum tokens per sequence (default 1024).")
    p.add_argument("--peft", choices=["auto", "lora", "qlora", "none"],
                   help="lora (default), qlora, none (full fine-tune), or auto: full fine-tuning up to 3B parameters "
                   "on a GPU, LoRA above or on CPU, QLoRA when LoRA does not fit.")
    p.add_argument("--lora-r", type=int, help="LoRA rank (default 16).")
    p.add_argument("--lora-alpha", type=int, help="LoRA alpha (default 32).")
    p.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"],
                   help="Training precision (default auto: bf16 where the hardware has it).")
    p.add_argument("--gradient-checkpointing", choices=["on", "off"], help="Default: on for GPUs, off on CPU.")
    p.add_argument("--reward", action="append", dest="rewards", metavar="NAME",
                   help="GRPO reward function (repeatable): accuracy, exact_match, format, length. Default: accuracy "
                   "when the data has a reference column (answer, solution, ...), else one must be named.")
    p.add_argument("--num-generations", type=int, help="GRPO completions per prompt (default 4).")
    p.add_argument("--max-completion-length", type=int, help="GRPO completion length (default 128).")
    p.add_argument("--merge", action="store_true", default=None, help="Also save the adapter merged into the base model.")
    p.add_argument("--push-to", dest="push_to_hub", help="Hub repo to push the model to (needed for --backend hf).")
    p.add_argument("--output", dest="output_dir", help="Output directory (default: the job folder's outputs/).")
    p.add_argument("--system-prompt", help="System prompt prepended to every conversation.")
    p.add_argument("--seed", type=int)
    p.add_argument("--max-cost-usd", type=float, metavar="USD",
                   help="Spending limit: refused at submit when the estimate exceeds it; a paid job stops (after a "
                   "checkpoint) when its cost reaches it. Local runs are free: recorded, never stopped.")
    p.add_argument("--max-restarts", type=int, metavar="N", help="After a timeout (or a preemption on Hugging Face "
                   "Jobs), resume from the last checkpoint automatically, at most N times (default 0).")
    p.add_argument("--no-watchdog", action="store_false", dest="watchdog", default=None,
                   help="Do not stop a run whose loss is NaN/inf or exploding (the watchdog is on by default).")


#: flags whose dest is a RUN_FIELDS name as it is (--column-map, --timeout, --gradient-checkpointing are parsed)
RUN_FLAGS = ("method", "model", "dataset", "split", "eval_dataset", "eval_fraction", "max_steps", "epochs",
             "learning_rate", "batch_size", "grad_accum", "max_length", "peft", "lora_r", "lora_alpha", "precision",
             "rewards", "num_generations", "max_completion_length", "merge", "push_to_hub", "output_dir",
             "system_prompt", "seed", "max_cost_usd", "watchdog", "max_restarts")


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The run flags as dotted config overrides (None: not given)."""
    flat: dict[str, Any] = {name: getattr(args, name) for name in RUN_FLAGS}
    flat["column_map"] = parse_column_map(args.column_map)
    flat["timeout_seconds"] = parse_duration(args.timeout) if args.timeout is not None else None
    flat["gradient_checkpointing"] = None if args.gradient_checkpointing is None else args.gradient_checkpointing == "on"
    return run_overrides(flat)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="Submit a fine-tuning job (returns the job id at once).",
        description="Submit a fine-tuning job. Values come from --config (YAML/JSON) and are overridden by flags; "
        "`tuneforge plan` with the same flags shows the plan the job runs under.",
    )
    add_run_flags(p)
    p.add_argument("--then", action="append", metavar="STAGE", help="Run as a pipeline: then this stage, on "
                   "this run's output (repeatable): METHOD:DATA (dpo:prefs.jsonl), eval:HELDOUT, gguf:QUANT[,QUANT].")
    p.add_argument("--wait", action="store_true", help="Stay until the job ends: progress for people; with --json, "
                   "the final job status as JSON (exit status 0 when COMPLETED, 1 when it ended ERROR or CANCELED).")
    p.add_argument("--notify", metavar="URL", help="POST a JSON summary (with a `text` field, so a Slack incoming "
                   "webhook shows it) to this URL when the job ends, however it ends (default: $TUNEFORGE_NOTIFY_URL). "
                   "The URL is a secret: never stored or shown.")
    output.add_json_flag(p)
    p.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return merge_config(load_mapping(args.config) if args.config else None, overrides=overrides_from_args(args),
                        source=args.config or "command-line flags", required=REQUIRED, missing_fix=MISSING_FIX)


def plan_config_from_args(args: argparse.Namespace) -> tuple[RunConfig, bool]:
    """The same config for `plan`, where the dataset is optional: (config, whether a dataset was given)."""
    return planning_config(load_mapping(args.config) if args.config else None, overrides=overrides_from_args(args),
                           source=args.config or "command-line flags", required={"model": "--model"},
                           missing_fix="Pass --model, or put model in a --config file.")


def run(args: argparse.Namespace) -> int:
    from ..actions.train import start_training

    config = config_from_args(args)
    if getattr(args, "then", None):  # a pipeline: this run, then each stage on the one before
        from .pipeline import run_short_form

        return run_short_form(args, config)
    result = start_training(config, backend=args.backend, flavor=args.flavor, notify=args.notify)

    def render(r: SubmitResult) -> None:
        output.stdout.print(f"[bold green]Submitted[/bold green] job [bold]{r.job_id}[/bold] on backend {r.backend} ({r.stage}).")
        if r.url:
            output.stdout.print(f"URL: {r.url}")
        if r.flavor:
            output.stdout.print(f"Flavor: {r.flavor}")
        if r.estimated_hours is not None:
            cost = f", about ${r.estimated_cost_usd:.2f}" if r.estimated_cost_usd is not None else ""
            output.stdout.print(f"Estimated time: {r.estimated_hours:.2f} h{cost}")
        for w in r.warnings:
            output.stdout.print(f"[yellow]Warning:[/yellow] {w}")
        output.stdout.print(f"Outputs: {r.output_dir}")
        output.stdout.print(f"Check it: {r.next}")

    if args.wait and args.json:
        return wait_json(result.job_id)
    if args.wait:
        render(result)
        job = follow_job(result.job_id)
        return 0 if job.stage == "COMPLETED" else 1
    output.emit(args, result, render)
    return 0


def wait_json(job_id: str) -> int:
    """`train --wait --json`: wait (JobService.wait), print the final JobStatus as JSON; 0 only when COMPLETED."""
    from ..jobs.service import JobService
    from .jobs import say_it_keeps_running

    service = JobService()
    try:
        job = service.wait(job_id)
    except KeyboardInterrupt:
        say_it_keeps_running(job_id)
        raise
    output.print_json(service.status(job_id, log_tail=20 if job.stage == "ERROR" else 0))
    return 0 if job.stage == "COMPLETED" else 1
