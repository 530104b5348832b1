"""Result models the job tools add on top of the job service's, and how long lines are cut for an agent."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ..jobs.service import JobStatus, JobSummary

#: a log line longer than this is cut (an agent's context is not a log viewer)
LINE_CHARS_MAX = 600
#: a compact status's tail lines are cut shorter (the tail says what happened last; job_logs has the rest)
LINE_CHARS_COMPACT = 160


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


def cut_line(line: str, limit: int = LINE_CHARS_MAX) -> str:
    return line if len(line) <= limit else line[: limit - 1] + "…"


#: result fields that are history, samples or the run's bookkeeping, not metrics: only with detail
RESULT_DETAIL_KEYS = ("log_history", "samples", "samples_before", "reward_history", "base_model", "tuneforge_version",
                      "peak_rss_bytes", "peak_cuda_bytes", "precision", "device", "train_runtime_seconds")
#: a compact status's result keeps scalars, warnings and these small mappings
RESULT_SMALL_KEYS = ("data", "warnings", "rewards")
#: of the result's data counts, a compact status keeps these
DATA_COMPACT_KEYS = ("rows", "truncated", "no_trainable")
#: of the result's eval block (the before/after table), a compact status keeps these
EVAL_COMPACT_KEYS = ("rows", "source", "before", "after")


def compact_outputs(outputs: dict, job_id: str) -> dict:
    """The outputs with the result's metrics (scalars, warnings, data counts) and without its history and samples."""
    result = outputs.get("result")
    if not isinstance(result, dict):
        return outputs
    kept = {k: v for k, v in result.items()  # an empty value says nothing: left out
            if k not in RESULT_DETAIL_KEYS and v is not None and (not isinstance(v, (dict, list)) or k in RESULT_SMALL_KEYS)}
    if isinstance(kept.get("data"), dict):
        kept["data"] = {k: v for k, v in kept["data"].items() if k in DATA_COMPACT_KEYS}
    if isinstance(result.get("eval"), dict):  # the eval block's before/after table, without its samples
        kept["eval"] = {k: v for k, v in result["eval"].items() if k in EVAL_COMPACT_KEYS}
    left_out = sorted(k for k in set(result) - set(kept) if k in ("log_history", "samples", "reward_history"))
    out = {**outputs, "result": kept}
    if left_out:
        out["more"] = f"detail=true adds {', '.join(left_out)}, the plan and the run's bookkeeping."
    return out


def compact_status(status: JobStatus, *, detail: bool = False) -> JobStatus:
    """The status for an agent: log lines cut at LINE_CHARS_MAX; unless `detail`, no plan and a result of
    metrics only (the loss history and sample answers are what made a 2-step job's status 10k characters)."""
    limit = LINE_CHARS_MAX if detail else LINE_CHARS_COMPACT
    update: dict = {"log_tail": [cut_line(line, limit) for line in status.log_tail]}
    if status.diagnosis is not None:  # the evidence lines, cut like the tail (a little longer: they are the cause)
        evidence = [cut_line(line, limit + LINE_CHARS_COMPACT) for line in status.diagnosis.evidence]
        update["diagnosis"] = status.diagnosis.model_copy(update={"evidence": evidence})
    if not detail:
        update |= {"plan": None, "outputs": compact_outputs(status.outputs or {}, status.job_id)}
    return status.model_copy(update=update)


__all__ = ["JobList", "JobLogs", "JobWait", "cut_line", "compact_status", "compact_outputs", "LINE_CHARS_MAX"]
