"""`tuneforge jobs list|status|logs|cancel|wait` (and resume|retry, cli/recovery.py): the same for every backend."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from ..errors import TuneforgeError
from ..records import Job
from ..types import STAGES, Stage
from . import output
from .recovery import add_recovery_commands

if TYPE_CHECKING:
    from ..jobs.service import JobService, JobStatus, JobSummary

STAGE_STYLE = {Stage.SCHEDULING: "yellow", Stage.RUNNING: "cyan", Stage.COMPLETED: "green", Stage.ERROR: "red",
               Stage.CANCELED: "magenta"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("jobs", help="List, inspect, follow and cancel jobs.")
    jsub = p.add_subparsers(dest="jobs_command", metavar="ACTION")

    ls = jsub.add_parser("list", help="Recent jobs, newest first.")
    ls.add_argument("--limit", type=int, default=20)
    ls.add_argument("--stage", type=stage_name, choices=STAGES, help="Only jobs in this stage (any case, e.g. running).")
    ls.add_argument("--json", action="store_true", help='Print one JSON object on stdout: {"jobs": [...], "count": N}.')
    ls.set_defaults(handler=cmd_list)

    st = jsub.add_parser("status", help="Stage, progress, outputs and the log tail of one job.")
    st.add_argument("job_id")
    st.add_argument("--tail", type=int, default=20, help="Log lines to include (default 20, at most 500).")
    st.add_argument("--raw", action="store_true", help="The tail as written, event lines and terminal noise included.")
    output.add_json_flag(st)
    st.set_defaults(handler=cmd_status)

    lg = jsub.add_parser("logs", help="A job's log.")
    lg.add_argument("job_id")
    lg.add_argument("--tail", type=int, default=100, help="Last N lines (default 100, at most 500; 0 for all with --all).")
    lg.add_argument("--all", action="store_true", help="The whole log.")
    lg.add_argument("--follow", "-f", action="store_true",
                    help="Print the last --tail lines, then new lines as they come, until the job ends.")
    lg.add_argument("--raw", action="store_true",
                    help="Every line as written: event lines, ANSI codes, progress bars and tracebacks included.")
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

    add_recovery_commands(jsub)  # resume, retry (cli/recovery.py)

    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


def stage_name(value: str) -> str:
    """--stage in any case: running -> RUNNING."""
    return value.strip().upper()


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
        output.stdout.print(list_table(rows), highlight=False)

    output.emit(args, {"jobs": jobs, "count": len(jobs)}, lambda data: render(data["jobs"]))
    return 0


def list_table(rows: list[JobSummary]) -> str:
    """One line per job (the whole id first: it is what every other command takes), its message under it,
    cut to the terminal's width."""
    header = ("job id", "stage", "step", "method", "backend", "created")
    cells = [(j.job_id, j.stage, f"{j.step}/{j.total_steps}" if j.step is not None else "-", j.method or j.kind,
              j.backend, _when(j.created_at)[:16]) for j in rows]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    width = max(40, output.stdout.width)

    def line(row: tuple[str, ...], stage_style: str | None = None) -> str:
        padded = [escape(cell.ljust(w)) for cell, w in zip(row, widths)]
        if stage_style:
            padded[1] = f"[{stage_style}]{padded[1]}[/]"
        return "  ".join(padded).rstrip()

    out = [f"[bold]{line(header)}[/bold]"]
    for j, row in zip(rows, cells):
        out.append(line(row, STAGE_STYLE.get(j.stage, "white")))
        if j.message:
            message = " ".join(j.message.split())
            cut = message if len(message) <= width - 2 else message[: width - 3] + "…"
            out.append(f"[dim]  {escape(cut)}[/dim]")
    return "\n".join(out)


def render_status(s: JobStatus) -> None:
    out = output.stdout
    out.print(f"[bold]{s.job_id}[/bold]  {_stage(s.stage)}  {escape(s.message)}")
    out.print(f"backend {s.backend}" + (f", flavor {s.flavor}" if s.flavor else "") + (f", {s.url}" if s.url else ""))
    links = [f"{what} {job}" for what, job in (("resumed from", s.resumed_from), ("retry of", s.retry_of)) if job]
    if s.max_restarts:
        links.append(f"restarts {s.restarts} of {s.max_restarts}")
    if links:
        out.print(", ".join(links))
    if s.elapsed_seconds is not None:
        cost = f", cost so far ${s.cost_so_far_usd:.2f}" if s.cost_so_far_usd is not None else ""
        if s.max_cost_usd is not None:
            cost += f" of the ${s.max_cost_usd:.2f} budget" if s.cost_so_far_usd is not None else \
                f", budget ${s.max_cost_usd:.2f} (free here: never enforced)"
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
        if isinstance(result.get("eval"), dict):
            render_eval(result["eval"])
    for warning in ((s.outputs or {}).get("result") or {}).get("warnings") or []:
        out.print(f"[yellow]Warning:[/yellow] {escape(str(warning))}")
    render_diagnosis(s)
    if s.log_tail:
        out.print("[dim]--- log tail ---[/dim]")
        for line in s.log_tail:
            out.print(escape(line), highlight=False)


def render_diagnosis(s: JobStatus) -> None:
    """An ERROR job's diagnosis: the kind, the log lines it was read from, the fix and the retry command."""
    d = s.diagnosis
    if d is None:
        return
    out = output.stdout
    out.print(f"[bold red]diagnosis:[/bold red] {d.kind}")
    for line in d.evidence:
        out.print(f"  [dim]{escape(line)}[/dim]", highlight=False)
    out.print(f"[bold]fix:[/bold] {escape(d.fix)}")
    if d.retry_with:
        change = ", ".join(f"{k}={v}" for k, v in d.retry_with.items())
        out.print(f"retry with the fix ({escape(change)}): `tuneforge jobs retry {s.job_id} --apply-fix`")


def render_eval(block: dict) -> None:
    """The eval block's before/after table and its first samples."""
    from ..templates._shared.metrics import before_after_rows

    rows = before_after_rows(block)
    if not rows:
        return
    table = Table(title=f"held-out eval ({block.get('rows')} rows, greedy)", title_justify="left")
    for col in ("metric", "before", "after"):
        table.add_column(col)
    for name, before, after in rows:
        table.add_row(escape(name), before, after)
    output.stdout.print(table)
    for sample in (block.get("samples") or [])[:3]:
        output.stdout.print(f"  [dim]prompt:[/dim] {escape(str(sample.get('prompt'))[:200])}")
        for key in ("reference", "before", "after"):
            output.stdout.print(f"    {key}: {escape(str(sample.get(key))[:200])}")


def cmd_status(args: argparse.Namespace) -> int:
    status = _service().status(args.job_id, log_tail=args.tail, raw=args.raw)
    output.emit(args, status, render_status)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    service = _service()
    job_id = service.store.get(args.job_id).job_id  # a unique prefix works; the rest uses the whole id
    if args.follow and not args.json:
        follow_logs(service, job_id, tail=None if args.all else args.tail, raw=args.raw)
        return 0
    lines = service.logs(job_id, tail=None if args.all else args.tail, raw=args.raw)
    if args.json:
        output.print_json({"job_id": job_id, "lines": lines})
    else:
        for line in lines:
            output.stdout.print(escape(line), highlight=False)
    return 0


def follow_logs(service: JobService, job_id: str, *, tail: int | None, raw: bool) -> None:
    """`logs -f`: the last `tail` lines first (all with --all), then each new line until the job ends."""
    printed: list[int | None] = [None]  # how many lines of the whole log are on the screen

    def print_new_lines(job: Job) -> None:
        lines = service.logs(job_id, tail=None, job=job, raw=raw)
        start = printed[0] if printed[0] is not None else (0 if tail is None else max(0, len(lines) - tail))
        for line in lines[start:]:
            output.stdout.print(escape(line), highlight=False)
        printed[0] = len(lines)

    try:
        service.wait(job_id, poll_seconds=1.0, on_update=print_new_lines)
    except KeyboardInterrupt:
        say_it_keeps_running(job_id)
        raise


def say_it_keeps_running(job_id: str) -> None:
    """Ctrl-C while waiting stops the waiting, not the job."""
    output.stderr.print(f"[yellow]Stopped waiting; job {job_id} keeps running.[/yellow] "
                        f"Check it with `tuneforge jobs status {job_id}`, cancel it with `tuneforge jobs cancel {job_id}`.")


def cmd_cancel(args: argparse.Namespace) -> int:
    from ..jobs.service import to_status

    service = _service()
    before = service.store.get(args.job_id)
    if before.terminal:  # the service leaves a finished job as it is; here that is an error
        raise TuneforgeError(
            f"Job {before.job_id} already ended ({before.stage}); there is nothing to cancel.",
            f"See how it ended with `tuneforge jobs status {before.job_id}`.",
            code="job.already_finished", details={"job_id": before.job_id, "stage": before.stage})
    job = service.cancel(before.job_id)
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

        try:
            job = service.wait(job_id, timeout=timeout, poll_seconds=1.0, on_update=on_update)
        except KeyboardInterrupt:
            bar.stop()
            say_it_keeps_running(job_id)
            raise
    render_status(service.status(job_id, log_tail=10 if job.stage == "ERROR" else 0))
    return job


def cmd_wait(args: argparse.Namespace) -> int:
    job_id = _service().store.get(args.job_id).job_id
    if args.json:
        try:
            job = _service().wait(job_id, timeout=args.timeout)
        except KeyboardInterrupt:
            say_it_keeps_running(job_id)
            raise
        output.print_json(_service().status(job_id, log_tail=20 if job.stage == "ERROR" else 0))
    else:
        job = follow_job(job_id, timeout=args.timeout)
    return 0 if job.stage == "COMPLETED" else 1
