"""wait_for_job: the job service's wait, in a worker thread, with MCP progress notifications."""

from __future__ import annotations

import time
from typing import Annotated

import anyio
from mcp.server.mcpserver import Context
from pydantic import Field

from ...errors import TuneforgeError
from ...jobs.service import JobService
from ...records import Job
from ...types import Stage
from ..arguments import JobId
from ..errors import tool_errors
from ..results import JobWait, compact_status

WAIT_TIMEOUT = "job.wait_timeout"


def progress_note(job: Job) -> tuple[float, float | None, str]:
    """(step, total steps, message) of a job's latest progress, as a progress notification carries it."""
    p = job.progress or {}
    step, total = p.get("step"), p.get("total_steps")
    if not p:
        return 0.0, None, f"{job.stage}: {job.message}"
    loss = f", loss {p['loss']:.4f}" if isinstance(p.get("loss"), (int, float)) else ""
    return float(step or 0), float(total) if total else None, f"{job.stage} step {step}/{total}{loss}"


def wait_in_thread(service: JobService, job_id: str, ctx: Context, timeout: float, poll: float) -> Job:
    """Runs in a worker thread: the service's wait loop; each new note goes out as a progress notification."""
    seen: list[Job] = []
    sent: list[tuple[float, float | None, str]] = []

    def on_update(job: Job) -> None:
        anyio.from_thread.check_cancelled()  # the client gave up: stop polling
        seen.append(job)
        note = progress_note(job)
        if not sent or note != sent[-1]:
            anyio.from_thread.run(ctx.report_progress, *note)
            sent.append(note)

    try:
        return service.wait(job_id, timeout=timeout, poll_seconds=poll, on_update=on_update)
    except TuneforgeError as exc:
        if exc.code != WAIT_TIMEOUT or not seen:
            raise
        return seen[-1]


async def wait_for_job(
    job_id: JobId,
    ctx: Context,
    timeout_seconds: Annotated[float, Field(gt=0, le=3600, description="Stop waiting after this long; the job keeps running.")] = 600,
    poll_seconds: Annotated[float, Field(ge=0.2, le=60, description="How often to check.")] = 2.0,
) -> JobWait:
    """Wait until a job ends (or the timeout passes), sending progress notifications (step of total
    steps, loss) meanwhile. Use only when the user wants to wait for the result now, e.g. before an
    export; otherwise report the job id and let them ask for status later."""
    service = JobService()
    started = time.monotonic()
    with tool_errors():
        job = await anyio.to_thread.run_sync(wait_in_thread, service, job_id, ctx, timeout_seconds, poll_seconds)
        waited = time.monotonic() - started
        status = await anyio.to_thread.run_sync(
            lambda: service.status(job_id, log_tail=10 if job.stage == Stage.ERROR else 0))
    if not job.terminal:
        nxt = f"Still {job.stage} after {waited:.0f} s; it keeps running. Call wait_for_job again or job_status later."
    elif job.stage == Stage.COMPLETED:
        nxt = (f"Finished: report the outputs (eval loss before/after in outputs.result); "
               f"export_gguf(job_id='{job_id}') makes verified GGUF files.")
    else:
        nxt = "The job's message is the cause of the failure; log_tail and job_logs show more."
    return JobWait(job=compact_status(status), finished=job.terminal, waited_seconds=round(waited, 1), next=nxt)
