"""`tuneforge plan`: hardware, memory, time, cost and timeout for a run, with the working shown."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from ..types import BACKENDS, METHODS
from . import output

if TYPE_CHECKING:
    from ..reports.plan import Plan


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="Plan hardware, memory, time, cost and timeout for a fine-tuning run.",
        description="Plan a fine-tuning run: model size from its config, a per-component memory breakdown, the "
        "cheapest Hugging Face Jobs flavor that fits (or this machine), time from FLOPs, cost and a safe timeout.",
    )
    p.add_argument("--model", required=True, help="Hub model id or local model directory.")
    p.add_argument("--method", choices=METHODS, default="sft", help="Training method (default sft).")
    p.add_argument("--dataset", help="Training data (local file/folder or Hub dataset id): rows and tokens per row.")
    p.add_argument("--rows", type=int, help="Number of training rows (overrides the count from --dataset).")
    p.add_argument("--max-length", type=int, help="Maximum tokens per sequence (default 1024).")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, help="Per-device batch size (default 4).")
    p.add_argument("--grad-accum", type=int, help="Gradient accumulation steps (default 1).")
    p.add_argument("--max-steps", type=int, help="Stop after this many optimizer steps.")
    p.add_argument("--peft", choices=["auto", "lora", "qlora", "none"], default="auto",
                   help="auto: full fine-tuning up to 3B parameters, LoRA above, QLoRA when LoRA does not fit.")
    p.add_argument("--lora-r", type=int)
    p.add_argument("--backend", choices=BACKENDS, default="hf", help="Plan for Hugging Face Jobs (default) or this machine.")
    p.add_argument("--flavor", help="Plan on this Hugging Face Jobs flavor only (e.g. a10g-large).")
    p.add_argument("--budget-usd", type=float, help="Spending limit: over it, the plan proposes max_steps or a cheaper setup.")
    p.add_argument("--num-generations", type=int, help="GRPO completions per prompt (default 4).")
    p.add_argument("--max-completion-length", type=int, help="GRPO completion length (default 128).")
    p.add_argument("--gradient-checkpointing", choices=["on", "off"], help="Default: on for GPUs, off on CPU.")
    p.add_argument("--calibrate", action="store_true",
                   help="Also run a short local canary through the real training template and report measured "
                   "tokens/s and peak memory next to the prediction (minutes).")
    output.add_json_flag(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..actions.calibrate import plan

    extra: dict[str, Any] = {}
    for key, dest in (("grad_accum", "grad_accum"), ("max_steps", "max_steps"), ("lora_r", "lora_r"),
                      ("num_generations", "num_generations"), ("max_completion_length", "max_completion_length")):
        value = getattr(args, key)
        if value is not None:
            extra[dest] = value
    if args.gradient_checkpointing:
        extra["gradient_checkpointing"] = args.gradient_checkpointing == "on"
    result = plan(
        args.model, method=args.method, dataset=args.dataset, max_length=args.max_length, epochs=args.epochs,
        batch_size=args.batch_size, peft=args.peft, backend=args.backend, flavor=args.flavor,
        budget_usd=args.budget_usd, rows=args.rows, calibrate=args.calibrate, **extra,
    )
    output.emit(args, result, render)
    return 0


def render(p: Plan) -> None:
    out = output.stdout
    where = (f"{p.flavor} ({p.gpus} GPU{'s' if p.gpus > 1 else ''}{', ' + p.distributed if p.distributed else ''}, "
             f"{p.vram_gb:g} GB)") if p.flavor else f"this machine ({p.vram_gb:g} GB)"
    size = f"{p.params_b:g}B" + (f" ({p.active_params_b:g}B active)" if p.active_params_b else "")
    out.print(f"[bold]{escape(p.model)}[/bold] {size}, {p.method}, peft [bold]{p.peft}[/bold] on [bold]{escape(where)}[/bold]")

    mem = Table(title="Peak memory per device (GiB)", show_header=True, title_justify="left")
    mem.add_column("component")
    mem.add_column("GiB", justify="right")
    for key, value in p.memory_gb.model_dump().items():
        if key != "total" and value > 0.0005:
            mem.add_row(key.replace("_", " "), f"{value:.2f}")
    mem.add_row("[bold]total[/bold]", f"[bold]{p.memory_gb.total:.2f}[/bold]")
    out.print(mem)

    if p.hours is not None:
        cost = f"  cost ${p.cost_usd:.2f} (${p.price_per_hour:.2f}/h)" if p.cost_usd is not None else ""
        out.print(f"Tokens {p.tokens:,} at {p.tokens_per_second:,.0f} tokens/s: [bold]{p.hours:.2f} h[/bold]{cost}  "
                  f"timeout [bold]{p.timeout}[/bold] ({p.timeout_seconds} s)")
    if p.budget_usd is not None and p.within_budget is False:
        out.print(f"[yellow]Over the ${p.budget_usd:.2f} budget[/yellow]" + (f": max_steps={p.max_steps} fits it" if p.max_steps else ""))
    if p.calibration:
        c = p.calibration
        out.print(f"Calibration ({c.steps} steps, {c.device}): peak {c.measured_peak_gb} GiB measured vs "
                  f"{c.predicted_peak_gb} GiB predicted ({c.peak_error_pct:+.1f}%); tokens/s {c.measured_tokens_per_second} "
                  f"measured vs {c.predicted_tokens_per_second} predicted" if c.measured_peak_gb is not None else
                  f"Calibration job {c.job_id} reported no peak memory.")
    if p.alternatives:
        alt = Table(title="Alternatives", title_justify="left")
        for col in ("flavor", "peft", "GiB", "hours", "cost", "why"):
            alt.add_column(col)
        for a in p.alternatives:
            alt.add_row(a.flavor or "local", a.peft, f"{a.memory_gb:.1f}", "" if a.hours is None else f"{a.hours:.2f}",
                        "" if a.cost_usd is None else f"${a.cost_usd:.2f}", escape(a.why))
        out.print(alt)
    for note in p.notes:
        out.print(f"- {escape(note)}")
    for w in p.warnings:
        out.print(f"[yellow]Warning:[/yellow] {escape(w)}")
