"""`tuneforge sweep run|status|wait|cancel`: many runs of one config over a search space, within a budget."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.markup import escape

from . import output


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="Search config fields (grid or random) within a trial and cost budget.")
    ssub = p.add_subparsers(dest="sweep_command", metavar="ACTION")

    rn = ssub.add_parser("run", help="Plan the trials (per-trial and total cost) and start them.")
    rn.add_argument("file", help="The sweep file (YAML): base, space, metric, budget.")
    rn.add_argument("--plan", action="store_true", help="Only show the plan; submit nothing.")
    rn.add_argument("--yes", action="store_true", help="A paid (hf) sweep: the plan's cost is agreed, do not ask.")
    rn.add_argument("--ray-address", metavar="URL", help="The Ray cluster for --backend ray: its dashboard address, e.g. http://HEAD:8265 (default: $RAY_ADDRESS).")
    output.add_json_flag(rn)
    rn.set_defaults(handler=cmd_run)

    st = ssub.add_parser("status", help="Each trial's parameters, stage, metrics, train loss, cost and minutes; the best marked.")
    st.add_argument("sweep_id")
    st.add_argument("--plot", metavar="FILE.png", help="Also draw the metric per trial and the loss curves.")
    output.add_json_flag(st)
    st.set_defaults(handler=cmd_status)

    wt = ssub.add_parser("wait", help="Wait until every trial has ended (submitting the rest as room frees up).")
    wt.add_argument("sweep_id")
    wt.add_argument("--timeout", type=float, help="Give up waiting after this many seconds (the sweep keeps running).")
    output.add_json_flag(wt)
    wt.set_defaults(handler=cmd_wait)

    cn = ssub.add_parser("cancel", help="Stop the sweep: running trials are canceled, pending ones never start.")
    cn.add_argument("sweep_id")
    output.add_json_flag(cn)
    cn.set_defaults(handler=cmd_cancel)

    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:.2f}"


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def render_plan(plan: Any) -> None:
    out = output.stdout
    where = plan.backend + (f" ({plan.flavor})" if plan.flavor else "")
    out.print(f"[bold]Sweep{' ' + escape(plan.name) if plan.name else ''}[/bold]: {plan.trial_count} trial(s) of "
              f"{plan.space_size} on {where}; metric {plan.metric.name} ({plan.metric.direction})")
    for t in plan.trials:
        params = ", ".join(f"{k}={v}" for k, v in t.params.items())
        out.print(f"  t{t.index}: {escape(params)}  steps {_num(t.steps)}  {_money(t.estimated_cost_usd)}")
    budget = plan.budget
    out.print(f"per trial up to {_money(plan.per_trial_cost_usd)}, total {_money(plan.total_cost_usd)}"
              + (f" (budget {_money(budget.max_cost_usd)})" if budget.max_cost_usd is not None else "")
              + (f"; {budget.max_parallel} at a time" if plan.backend != "local" else "; one at a time on this machine"))
    for line in plan.notes:
        out.print(f"[dim]{escape(line)}[/dim]")
    for line in plan.warnings:
        out.print(f"[yellow]warning:[/yellow] {escape(line)}")


def render_status(s: Any) -> None:
    out = output.stdout
    out.print(f"[bold]{s.sweep_id}[/bold]  {s.stage}  {escape(s.message)}  spent {_money(s.spent_usd)}")
    names = list(dict.fromkeys(k for t in s.trials for k in t.params))
    header = ["", "trial", *names, "stage", s.metric.name, "train loss", "cost", "min", "job"]
    rows = [["*" if t.best else "", f"t{t.index}", *(_num(t.params.get(n)) for n in names), t.stage, _num(t.value),
             _num(t.train_loss), _money(t.cost_usd), _num(t.minutes), t.job_id or (t.reason or "-")] for t in s.trials]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out.print("[bold]" + escape("  ".join(c.ljust(w) for c, w in zip(header, widths)).rstrip()) + "[/bold]")
    for r in rows:
        line = escape("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        out.print(f"[green]{line}[/green]" if r[0] else line)
    out.print(escape(s.next))


def _confirm(plan: Any) -> bool:
    if not sys.stdin.isatty():
        return False
    render_plan(plan)
    answer = input(f"Start {plan.trial_count} billed trial(s) for about {_money(plan.total_cost_usd)}? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def cmd_run(args: argparse.Namespace) -> int:
    from ..actions.sweep import run_sweep

    if args.plan:
        output.emit(args, run_sweep(args.file, submit=False), lambda r: render_plan(r.plan))
        return 0
    confirmed = args.yes
    if not confirmed and not args.json:
        from ..sweeps.spec import load_sweep

        if load_sweep(args.file)[0].backend == "hf":
            confirmed = _confirm(run_sweep(args.file, submit=False).plan)
    started = run_sweep(args.file, confirmed=confirmed)

    def render(r: Any) -> None:
        render_plan(r.plan)
        if r.status is not None:
            render_status(r.status)

    output.emit(args, started, render)
    return 0


def _plot(args: argparse.Namespace, status: Any) -> None:
    if getattr(args, "plot", None):
        from ..sweeps.plot import plot_sweep

        path = plot_sweep(status, args.plot)
        if not args.json:
            output.stdout.print(f"plot: {escape(str(path))}")


def cmd_status(args: argparse.Namespace) -> int:
    from ..actions.sweep import sweep_status

    status = sweep_status(args.sweep_id)
    output.emit(args, status, render_status)
    _plot(args, status)
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    from ..actions.sweep import wait_sweep

    seen: dict[str, str] = {}

    def progress(s: Any) -> None:
        if args.json:
            return
        for t in s.trials:
            if seen.get(str(t.index)) != t.stage:
                seen[str(t.index)] = t.stage
                output.stderr.print(f"t{t.index} {t.stage}" + (f" {s.metric.name} {_num(t.value)}" if t.value is not None else ""))

    output.emit(args, wait_sweep(args.sweep_id, timeout=args.timeout, on_update=progress), render_status)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from ..actions.sweep import cancel_sweep

    output.emit(args, cancel_sweep(args.sweep_id), render_status)
    return 0
