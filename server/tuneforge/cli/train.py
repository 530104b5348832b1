"""`tuneforge train`: build a validated config from a file and flags, submit it, return the job id at once."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import METHODS, RunConfig, load_mapping, parse_duration
from ..errors import ConfigError
from . import output
from .jobs import follow_job


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
    p.add_argument("--backend", default="local", choices=["local", "hf"], help="Where to run (default local).")
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


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    if value is None:
        return
    node = data
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"Config key {key!r} must be a mapping.", f"Write {key}: as a mapping of settings.")
    node[leaf] = value


def config_from_args(args: argparse.Namespace) -> RunConfig:
    data: dict[str, Any] = load_mapping(args.config) if args.config else {}
    if isinstance(data.get("dataset"), str):
        data["dataset"] = {"path": data["dataset"]}
    _set(data, "method", args.method)
    _set(data, "model", args.model)
    _set(data, "dataset.path", args.dataset)
    _set(data, "dataset.split", args.split)
    _set(data, "dataset.eval_path", args.eval_dataset)
    if args.column_map:
        mapping = {}
        for item in args.column_map:
            target, sep, source = item.partition("=")
            if not sep or not target or not source:
                raise ConfigError(f"--column-map {item!r} is not TARGET=SOURCE.", "Write it like --column-map prompt=question.")
            mapping[target] = source
        _set(data, "dataset.column_map", mapping)
    _set(data, "train.max_steps", args.max_steps)
    _set(data, "train.epochs", args.epochs)
    _set(data, "train.learning_rate", args.learning_rate)
    _set(data, "train.per_device_batch_size", args.batch_size)
    _set(data, "train.gradient_accumulation_steps", args.grad_accum)
    _set(data, "max_length", args.max_length)
    _set(data, "peft.kind", args.peft)
    _set(data, "peft.r", args.lora_r)
    _set(data, "peft.alpha", args.lora_alpha)
    _set(data, "merge", args.merge)
    _set(data, "push_to_hub", args.push_to)
    _set(data, "output_dir", args.output)
    _set(data, "system_prompt", args.system_prompt)
    _set(data, "seed", args.seed)
    if args.timeout is not None:
        _set(data, "timeout_seconds", parse_duration(args.timeout))
    missing = [flag for key, flag in (("model", "--model"), ("dataset", "--dataset")) if not data.get(key)]
    if missing:
        raise ConfigError(f"Missing {' and '.join(missing)}.", "Pass them as flags or put them in a --config file.")
    return RunConfig.from_dict(data, source=args.config or "command-line flags")


def run(args: argparse.Namespace) -> int:
    from ..actions.train import start_training

    config = config_from_args(args)
    result = start_training(config, backend=args.backend, flavor=args.flavor)

    def render(r: Any) -> None:
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
