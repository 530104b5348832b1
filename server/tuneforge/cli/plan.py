"""`tuneforge plan`: hardware, memory, time, cost and timeout for a run, with the working shown."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from . import output
from .train import add_run_flags, plan_config_from_args

if TYPE_CHECKING:
    from ..reports.plan import Plan


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="Plan hardware, memory, time, cost and timeout for a fine-tuning run.",
        description="Plan a fine-tuning run: the same --config file and flags as `tuneforge train`, resolved the same "
        "way (the plan is the one `train` submits the job under). Model size from its config, a per-component memory "
        "breakdown, the cheapest Hugging Face Jobs flavor that fits (--backend hf) or this machine, time from FLOPs, "
        "cost and a safe timeout.",
    )
    add_run_flags(p)
    p.add_argument("--rows", type=int, help="Plan for this many rows (instead of, or without, --dataset's count).")
    p.add_argument("--budget-usd", type=float, help="Spending limit: over it, the plan proposes max_steps or a cheaper setup.")
    p.add_argument("--calibrate", action="store_true",
                   help="Also run a short local canary through the real training template and report measured "
                   "tokens/s and peak memory next to the prediction (minutes).")
    output.add_json_flag(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..actions.calibrate import plan_run

    config, dataset_given = plan_config_from_args(args)
    result = plan_run(config, backend=args.backend, flavor=args.flavor, dataset_given=dataset_given, rows=args.rows,
                      budget_usd=args.budget_usd, calibrate=args.calibrate)
    output.emit(args, result, render)
    return 0


def headline(p: Plan) -> str:
    """Model, size (marked when guessed from the name), method, peft and where."""
    where = (f"{p.flavor} ({p.gpus} GPU{'s' if p.gpus > 1 else ''}{', ' + p.distributed if p.distributed else ''}, "
             f"{p.vram_gb:g} GB)") if p.flavor else f"this machine ({p.vram_gb:g} GB)"
    size = f"{p.params_b:g}B" + (f" ({p.active_params_b:g}B active)" if p.active_params_b else "")
    if p.params_guessed:
        size = f"~{size} [bold yellow](GUESSED from the name: no config.json found)[/bold yellow]"
    return (f"[bold]{escape(p.model)}[/bold] {size}, {p.method}, peft [bold]{p.peft}[/bold], {p.precision} "
            f"on [bold]{escape(where)}[/bold]")


def rows_line(p: Plan) -> str | None:
    """Rows before and after the eval hold-out."""
    if p.rows is None:
        return None
    if p.eval_rows:
        return (f"Rows {p.rows:,}: {p.train_rows:,} train + {p.eval_rows:,} held out for eval "
                f"(--eval-fraction or --eval-dataset change it)")
    return f"Rows {p.rows:,}, all trained on (no eval hold-out)"


def budget_line(p: Plan) -> str | None:
    """The budget (--budget-usd, or the config's max_cost_usd) against the estimate."""
    if p.budget_usd is None:
        return None
    if p.within_budget is None:
        return f"Budget ${p.budget_usd:.2f}: no cost estimate to compare" + (" (local run, free)" if p.backend == "local" else "")
    if p.within_budget:
        return f"Budget ${p.budget_usd:.2f}: estimated ${p.cost_usd:.2f}, [green]within it[/green]"
    return (f"[yellow]Over the ${p.budget_usd:.2f} budget[/yellow]: estimated ${p.cost_usd:.2f}"
            + (f"; max_steps={p.max_steps} fits it" if p.max_steps else "") + " (`train` refuses it with max_cost_usd)")


def render(p: Plan) -> None:
    out = output.stdout
    out.print(headline(p))
    if (rows := rows_line(p)) is not None:
        out.print(rows)
    if p.reward_functions:
        out.print(f"Rewards: {', '.join(p.reward_functions)}")

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
    if (line := budget_line(p)) is not None:
        out.print(line)
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
