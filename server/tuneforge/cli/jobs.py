"""`tuneforge jobs list|status|logs|cancel|wait`: the same for every backend."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from ..records import Job
from ..types import STAGES, Stage
from . import output

if TYPE_CHECKING:
    from ..jobs.service import JobStatus, JobSummary

STAGE_STYLE = {Stage.SCHEDULING: "yellow", Stage.RUNNING: "cyan", Stage.COMPLETED: "green", Stage.ERROR: "red",
               Stage.CANCELED: "magenta"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("jobs", help="List, inspect, follow and cancel jobs.")
    jsub = p.add_subparsers(dest="jobs_command", metavar="ACTION")

    ls = jsub.add_parser("list", help="Recent jobs, newest first.")
    ls.add_argument("--limit", type=int, default=20)
    ls.add_argument("--stage", choices=STAGES)
    output.add_json_flag(ls)
    ls.set_defaults(handler=cmd_list)

    st = jsub.add_parser("status", help="Stage, progress, outputs and the log tail of one job.")
    st.add_argument("job_id")
    st.add_argument("--tail", type=int, default=20, help="Log lines to include (default 20, at most 500).")
    output.add_json_flag(st)
    st.set_defaults(handler=cmd_status)

    lg = jsub.add_parser("logs", help="A job's log.")
    lg.add_argument("job_id")
    lg.add_argument("--tail", type=int, default=100, help="Last N lines (default 100, at most 500; 0 for all with --all).")
    lg.add_argument("--all", action="store_true", help="The whole log.")
    lg.add_argument("--follow", "-f", action="store_true", help="Keep printing new lines until the job ends.")
    output.add_json_flag(lg)
    lg.set_defaults(handler=cmd_logs)

    cn = jsub.add_parser("cancel", help="Stop a job (its whole process group, or the cloud job).")
    cn.add_argument("job_id")
    output.add_json_flag(cn)
    cn.set_defaults(handler=cmd_cancel)

    wt = jsub.add_parser("wait", help="Wait for a job to end, with a progress bar.")
    wt.add_argument("job_id")
    wt.add_argument("--timeout", type=float, help="Give up waiting after this many seconds (the job keeps running).")
    output.add_json_flag(wt)
    wt.set_defaults(handler=cmd_wait)

    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


def _service():
    from ..jobs.service import JobService

    return JobService()


def _when(ts: float | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _stage(stage: str) -> str:
    return f"[{STAGE_STYLE.get(stage, 'white')}]{stage}[/]"


def cmd_list(args: argparse.Namespace) -> int:
    jobs = _service().list(limit=args.limit, stage=args.stage)

    def render(rows: list[JobSummary]) -> None:
        if not rows:
            output.stdout.print("No jobs yet. Start one with `tuneforge train` or try `tuneforge demo`.")
            return
        table = Table("job id", "backend", "method", "stage", "step", "created", "message")
        for j in rows:
            step = f"{j.step}/{j.total_steps}" if j.step is not None else "-"
            table.add_row(j.job_id, j.backend, j.method or j.kind, _stage(j.stage), step, _when(j.created_at), escape(j.message[:60]))
        output.stdout.print(table)

    output.emit(args, jobs, render)
    return 0


def render_status(s: JobStatus) -> None:
    out = output.stdout
    out.print(f"[bold]{s.job_id}[/bold]  {_stage(s.stage)}  {escape(s.message)}")
    out.print(f"backend {s.backend}" + (f", flavor {s.flavor}" if s.flavor else "") + (f", {s.url}" if s.url else ""))
    if s.elapsed_seconds is not None:
        cost = f", cost so far ${s.cost_so_far_usd:.2f}" if s.cost_so_far_usd is not None else ""
        out.print(f"elapsed {s.elapsed_seconds:.0f} s{cost}")
    if s.progress:
        p = s.progress
        parts = [f"step {p.get('step')}/{p.get('total_steps')}"]
        for key, fmt in (("loss", "loss {:.4f}"), ("learning_rate", "lr {:.2e}"), ("tokens_per_second", "{:.0f} tok/s"), ("eta_seconds", "eta {:.0f} s")):
            if p.get(key) is not None:
                parts.append(fmt.format(p[key]))
        out.print("progress: " + ", ".join(parts))
    result = (s.outputs or {}).get("result")
    if result:
        out.print(f"outputs: {s.outputs.get('output_dir')}")
        if "reward_before" in result or "reward_after" in result:  # GRPO: mean reward on the held-out prompts
            out.print(f"  reward before -> after: {result.get('reward_before')} -> {result.get('reward_after')}")
        for key in ("eval_loss_before", "eval_loss_after", "train_loss", "runtime_seconds", "tokens_trained"):
            if key in result:
                out.print(f"  {key}: {result[key]}")
    if s.log_tail:
        out.print("[dim]--- log tail ---[/dim]")
        for line in s.log_tail:
            out.print(escape(line), highlight=False)


def cmd_status(args: argparse.Namespace) -> int:
    status = _service().status(args.job_id, log_tail=args.tail)
    output.emit(args, status, render_status)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    service = _service()
    if args.follow and not args.json:
        printed = [0]

        def print_new_lines(job: Job) -> None:
            lines = service.logs(args.job_id, tail=None, job=job)
            for line in lines[printed[0]:]:
                output.stdout.print(escape(line), highlight=False)
            printed[0] = len(lines)

        service.wait(args.job_id, poll_seconds=1.0, on_update=print_new_lines)
        return 0
    lines = service.logs(args.job_id, tail=None if args.all else args.tail)
    if args.json:
        output.print_json({"job_id": args.job_id, "lines": lines})
    else:
        for line in lines:
            output.stdout.print(escape(line), highlight=False)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from ..jobs.service import to_status

    job = _service().cancel(args.job_id)
    output.emit(args, to_status(job, []), render_status)
    return 0


def follow_job(job_id: str, timeout: float | None = None) -> Job:
    """Wait for a job with a rich progress bar fed by its structured progress events."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    service = _service()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=output.stderr,
        transient=False,
    ) as bar:
        task = bar.add_task(job_id, total=None, info="")

        def on_update(job: Job) -> None:
            p = job.progress or {}
            parts = [] if job.stage == "RUNNING" and p else [job.stage]
            if not p:
                parts.append(job.message)
            if p.get("loss") is not None:
                parts.append(f"loss {p['loss']:.4g}")
            if p.get("tokens_per_second"):
                parts.append(f"{p['tokens_per_second']:.0f} tok/s")
            info = " ".join(parts)[:60]
            bar.update(task, total=p.get("total_steps"), completed=p.get("step") or 0, info=escape(info))

        job = service.wait(job_id, timeout=timeout, poll_seconds=1.0, on_update=on_update)
    render_status(service.status(job_id, log_tail=10 if job.stage == "ERROR" else 0))
    return job


def cmd_wait(args: argparse.Namespace) -> int:
    if args.json:
        job = _service().wait(args.job_id, timeout=args.timeout)
        output.print_json(_service().status(args.job_id, log_tail=20 if job.stage == "ERROR" else 0))
    else:
        job = follow_job(args.job_id, timeout=args.timeout)
    return 0 if job.stage == "COMPLETED" else 1
