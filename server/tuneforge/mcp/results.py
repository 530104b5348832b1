"""Result models the job tools add on top of the job service's, and how long lines are cut for an agent."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ..jobs.service import JobStatus, JobSummary

#: a log line longer than this is cut (an agent's context is not a log viewer)
LINE_CHARS_MAX = 600


class JobList(BaseModel):
    jobs: list[JobSummary]
    count: int
    next: str = Field(description="How to look closer at one job.")


class JobLogs(BaseModel):
    job_id: str
    lines: list[str] = Field(description="Log lines, oldest first (long lines are cut at 600 characters).")
    first_line: int = Field(description="1-based number of the first returned line in the whole log.")
    total_lines: int
    truncated: bool = Field(description="Older (or newer, with skip) lines exist that were not returned.")
    more: str = Field(description="How to get the lines not returned.")


class JobWait(BaseModel):
    job: JobStatus
    finished: bool = Field(description="The job reached a terminal stage (COMPLETED, ERROR or CANCELED).")
    waited_seconds: float
    next: str


def cut_line(line: str) -> str:
    return line if len(line) <= LINE_CHARS_MAX else line[: LINE_CHARS_MAX - 1] + "…"


def compact_status(status: JobStatus) -> JobStatus:
    """The status with its log tail's long lines cut."""
    return status.model_copy(update={"log_tail": [cut_line(line) for line in status.log_tail]})


__all__ = ["JobList", "JobLogs", "JobWait", "cut_line", "compact_status", "LINE_CHARS_MAX"]
