"""`tuneforge train`: build a validated config from a file and flags, submit it, return the job id at once."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..config import RunConfig, load_mapping, parse_duration
from ..config.overrides import merge_config
from ..errors import ConfigError
from ..types import BACKENDS, METHODS
from . import output
from .jobs import follow_job

if TYPE_CHECKING:
    from ..jobs.service import SubmitResult


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="Submit a fine-tuning job (returns the job id at once).",
        description="Submit a fine-tuning job. Values come from --config (YAML/JSON) and are overridden by flags.",
    )
    p.add_argument("--config", help="YAML or JSON training config (see RunConfig); flags override its values.")
    p.add_argument("--method", choices=METHODS, help="Training method (default sft).")
    p.add_argument("--model", help="Base model: a Hub id or a local model directory.")
    p.add_argument("--dataset", help="Training data: a local file/dir or a Hub dataset id.")
    p.add_argument("--split", help="Dataset split (default train).")
    p.add_argument("--eval-dataset", help="A separate eval file or Hub id.")
    p.add_argument("--column-map", action="append", metavar="TARGET=SOURCE", help="Rename a column, e.g. prompt=question (repeatable).")
    p.add_argument("--backend", default="local", choices=BACKENDS, help="Where to run (default local).")
    p.add_argument("--flavor", help="Hugging Face Jobs hardware flavor (default: the planner's choice).")
    p.add_argument("--timeout", help="Job time limit, e.g. 45m, 2h (default: the planner's estimate x 1.3 + buffer).")
    p.add_argument("--max-steps", type=int, help="Stop after this many optimizer steps.")
    p.add_argument("--epochs", type=float)
    p.add_argument("--learning-rate", "--lr", type=float, dest="learning_rate")
    p.add_argument("--batch-size", type=int, help="Per-device batch size.")
    p.add_argument("--grad-accum", type=int, help="Gradient accumulation steps.")
    p.add_argument("--max-length", type=int)
    p.add_argument("--peft", choices=["lora", "qlora", "none"])
    p.add_argument("--lora-r", type=int)
    p.add_argument("--lora-alpha", type=int)
    p.add_argument("--merge", action="store_true", default=None, help="Also save the adapter merged into the base model.")
    p.add_argument("--push-to", help="Hub repo to push the model to (needed for --backend hf).")
    p.add_argument("--output", help="Output directory (default: the job folder's outputs/).")
    p.add_argument("--system-prompt", help="System prompt prepended to every conversation.")
    p.add_argument("--seed", type=int)
    p.add_argument("--wait", action="store_true", help="Stay and show progress until the job ends.")
    output.add_json_flag(p)
    p.set_defaults(handler=run)


#: flag (argparse dest) -> the config field it sets
FLAG_FIELDS = {
    "method": "method", "model": "model", "dataset": "dataset.path", "split": "dataset.split",
    "eval_dataset": "dataset.eval_path", "max_steps": "train.max_steps", "epochs": "train.epochs",
    "learning_rate": "train.learning_rate", "batch_size": "train.per_device_batch_size",
    "grad_accum": "train.gradient_accumulation_steps", "max_length": "max_length", "peft": "peft.kind",
    "lora_r": "peft.r", "lora_alpha": "peft.alpha", "merge": "merge", "push_to": "push_to_hub",
    "output": "output_dir", "system_prompt": "system_prompt", "seed": "seed",
}


def column_map_from_flags(items: list[str] | None) -> dict[str, str] | None:
    if not items:
        return None
    mapping = {}
    for item in items:
        target, sep, source = item.partition("=")
        if not sep or not target or not source:
            raise ConfigError(f"--column-map {item!r} is not TARGET=SOURCE.", "Write it like --column-map prompt=question.",
                              code="config.bad_column_map")
        mapping[target] = source
    return mapping


def config_from_args(args: argparse.Namespace) -> RunConfig:
    overrides = {field: getattr(args, dest) for dest, field in FLAG_FIELDS.items()}
    overrides["dataset.column_map"] = column_map_from_flags(args.column_map)
    overrides["timeout_seconds"] = parse_duration(args.timeout) if args.timeout is not None else None
    return merge_config(load_mapping(args.config) if args.config else None, overrides=overrides,
                        source=args.config or "command-line flags", required={"model": "--model", "dataset": "--dataset"},
                        missing_fix="Pass them as flags or put them in a --config file.")


def run(args: argparse.Namespace) -> int:
    from ..actions.train import start_training

    config = config_from_args(args)
    result = start_training(config, backend=args.backend, flavor=args.flavor)

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

    if args.wait and not args.json:
        render(result)
        job = follow_job(result.job_id)
        return 0 if job.stage == "COMPLETED" else 1
    output.emit(args, result, render)
    return 0
