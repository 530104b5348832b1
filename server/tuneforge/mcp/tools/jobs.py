"""The job tools: job_status, job_logs, list_jobs, cancel_job (wait_for_job is in waiting.py)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ...errors import TuneforgeError
from ...jobs.service import LOG_TAIL_MAX, JobService, JobStatus, to_status
from ...types import Stage
from ..arguments import JobId
from ..errors import tool_errors
from ..results import JobList, JobLogs, compact_status, cut_line

#: how much of a log one call returns (lines and characters); older lines come with `skip`
LOG_LINES_DEFAULT = 100
LOG_CHARS_MAX = 24_000
STATUS_TAIL_MAX = 50
#: the log lines a compact status carries, and a detailed one
STATUS_TAIL_COMPACT = 3
STATUS_TAIL_DETAIL = 20


def job_status(
    job_id: JobId,
    log_tail: Annotated[int | None, Field(ge=0, le=STATUS_TAIL_MAX, description="Log lines to include (0-50; default 3, or 20 with detail).")] = None,
    detail: Annotated[bool, Field(description="Also the plan the job runs under, the loss history and the sample answers.")] = False,
    raw: Annotated[bool, Field(description="The tail as written, event lines and terminal noise included.")] = False,
) -> JobStatus:
    """Stage (SCHEDULING, RUNNING, COMPLETED, ERROR, CANCELED), latest progress (step, loss, tokens/s,
    ETA), cost so far, outputs (adapter, merged model, eval loss before/after, warnings such as dropped rows)
    and the last few clean log lines of one job; a failed job's message is its cause. Compact by default
    (detail=true adds the plan, loss history and samples). Use when the user asks how a job is doing, or to
    read the outputs of a finished job. Any unique start of a job id works."""
    tail = log_tail if log_tail is not None else (STATUS_TAIL_DETAIL if detail else STATUS_TAIL_COMPACT)
    with tool_errors():
        return compact_status(JobService().status(job_id, log_tail=tail, raw=raw), detail=detail)


def log_window(lines: list[str], tail: int, skip: int) -> tuple[list[str], int, int]:
    """The `tail` lines before the newest `skip`, cut and kept within LOG_CHARS_MAX (newest first):
    the lines and their [start, end) in the whole log."""
    end = max(0, len(lines) - skip)
    window = [cut_line(line) for line in lines[max(0, end - tail):end]]
    chars, keep = 0, len(window)
    for i in range(len(window) - 1, -1, -1):
        chars += len(window[i]) + 1
        if chars > LOG_CHARS_MAX:
            keep = len(window) - 1 - i
            break
    window = window[len(window) - keep:]
    return window, end - len(window), end


def job_logs(
    job_id: JobId,
    tail: Annotated[int, Field(ge=1, le=LOG_TAIL_MAX, description="How many lines to return, counting back from the end (after skip).")] = LOG_LINES_DEFAULT,
    skip: Annotated[int, Field(ge=0, description="Leave out this many newest lines first: page back with skip = previous skip + tail.")] = 0,
    raw: Annotated[bool, Field(description="Every line as written: event lines, ANSI codes, progress bars and traceback frames included.")] = False,
) -> JobLogs:
    """A window of one job's log, newest lines by default, capped at 500 lines and about 24,000
    characters; `more` says how to page back. Clean by default (no event lines, terminal noise or traceback
    frames); raw=true shows every line. Use to diagnose a failed or stuck job (job_status already shows the
    last lines)."""
    with tool_errors():
        service = JobService()
        job = service.store.get(job_id)
        job_id = job.job_id  # a unique prefix works; answers name the whole id
        all_lines = service.logs(job_id, tail=None, job=job, raw=raw)
    total = len(all_lines)
    lines, start, end = log_window(all_lines, tail, skip)
    older, newer = start > 0, end < total
    if older:
        more = (f"{start} older lines: call job_logs with skip={total - start} to page back; "
                f"the whole log is {job.log_path}.")
    else:
        more = "This is the start of the log." + (" Newer lines: lower skip." if newer else "")
    return JobLogs(job_id=job_id, lines=lines, first_line=start + 1, total_lines=total,
                   truncated=older or newer, more=more)


def list_jobs(
    limit: Annotated[int, Field(ge=1, le=200, description="At most this many jobs, newest first.")] = 20,
    stage: Annotated[Stage | None, Field(description="Only jobs in this stage.")] = None,
) -> JobList:
    """Recent tuneforge jobs on every backend, newest first, with stage and step. Use when the user asks
    about their jobs or has lost a job id."""
    with tool_errors():
        jobs = JobService().list(limit=limit, stage=stage)
    return JobList(jobs=jobs, count=len(jobs), next="job_status(job_id) shows one job in detail.")


def cancel_job(job_id: JobId) -> JobStatus:
    """Stop a running or scheduled job (the whole local process group, or the cloud job); a job that already
    ended is an error (job.already_finished) and is left as it is. Partial checkpoints stay on disk. Use only
    when the user asks to stop a job."""
    with tool_errors():
        service = JobService()
        job = service.store.get(job_id)
        if job.terminal:
            raise TuneforgeError(f"Job {job.job_id} already ended ({job.stage}); there is nothing to cancel.",
                                 f"See how it ended with `tuneforge jobs status {job.job_id}`.",
                                 code="job.already_finished", details={"job_id": job.job_id, "stage": job.stage})
        return to_status(service.cancel(job.job_id), [])
