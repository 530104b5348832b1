"""`tuneforge jobs resume ID` and `tuneforge jobs retry ID [--apply-fix]`: a stopped training job continued
from its last checkpoint, or run again (with its diagnosis's fix). Registered under `jobs` (cli/jobs.py);
the logic is actions/recovery.py's."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.markup import escape

from ..config import parse_duration
from . import output

if TYPE_CHECKING:
    from ..actions.recovery import RecoveryResult

PAID_NOTE = "On Hugging Face Jobs the new job is billed: without --yes you see its plan and nothing is submitted."


def add_recovery_commands(jsub: argparse._SubParsersAction) -> None:
    rs = jsub.add_parser("resume", help="Continue a stopped training job (ERROR, CANCELED, timed out) from its last "
                         "checkpoint, as a new job.",
                         description="Continue a stopped training job from its newest complete checkpoint on the same "
                         "backend, with the same config: global step, optimizer, scheduler and RNG state continue. "
                         + PAID_NOTE)
    rs.add_argument("job_id")
    rs.add_argument("--timeout", help="A new time limit for the continuation, e.g. 2h (default: the job's own).")
    rs.add_argument("--yes", action="store_true", help="Submit a paid (Hugging Face Jobs) continuation.")
    output.add_json_flag(rs)
    rs.set_defaults(handler=cmd_resume)

    rt = jsub.add_parser("retry", help="Run a stopped training job again as a new job (with --apply-fix: with its "
                         "diagnosis's change).",
                         description="Run a stopped training job again from the start, linked to it (retry_of). With "
                         "--apply-fix the diagnosis's config change is applied (out of memory: smaller batch, then gradient "
                         "checkpointing, then QLoRA or a bigger flavor; divergence: learning rate x 0.1; timeout: a longer "
                         "limit, resuming from the last checkpoint). " + PAID_NOTE)
    rt.add_argument("job_id")
    rt.add_argument("--apply-fix", action="store_true", help="Apply the diagnosis's retry_with (see `jobs status`).")
    rt.add_argument("--yes", action="store_true", help="Submit a paid (Hugging Face Jobs) retry.")
    output.add_json_flag(rt)
    rt.set_defaults(handler=cmd_retry)


def render(r: RecoveryResult) -> None:
    out = output.stdout
    how = f"from step {r.resumed_from_step}" if r.resumed_from_step else "from the start"
    verb = "Resumed" if r.action == "resume" else "Retried"
    out.print(f"[bold green]{verb}[/bold green] job {r.previous_job_id} as [bold]{r.job_id}[/bold] ({how}) on backend "
              f"{r.backend} ({r.stage}).")
    if r.checkpoint:
        out.print(f"Checkpoint: {escape(r.checkpoint)}")
    if r.diagnosis_kind:
        out.print(f"Diagnosis: {r.diagnosis_kind}")
    for change in r.changes:
        out.print(f"  {change.field}: {escape(str(change.old))} -> {escape(str(change.new))}")
    if r.url:
        out.print(f"URL: {r.url}")
    if r.flavor:
        cost = f", about ${r.estimated_cost_usd:.2f}" if r.estimated_cost_usd is not None else ""
        hours = f", {r.estimated_hours:.2f} h" if r.estimated_hours is not None else ""
        out.print(f"Flavor: {r.flavor}{hours}{cost}")
    for w in r.warnings:
        out.print(f"[yellow]Note:[/yellow] {escape(w)}")
    out.print(f"Check it: {r.next}")


def cmd_resume(args: argparse.Namespace) -> int:
    from ..actions.recovery import resume

    timeout = parse_duration(args.timeout) if args.timeout is not None else None
    output.emit(args, resume(args.job_id, timeout_seconds=timeout, confirmed=args.yes), render)
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from ..actions.recovery import retry

    output.emit(args, retry(args.job_id, apply_fix=args.apply_fix, confirmed=args.yes), render)
    return 0
