"""A remote job's record changes from the template's event lines in its log (hf and ray alike)."""

from __future__ import annotations

from typing import Any

from ..log_lines import failure_cause, failure_message
from ..progress import last_events
from ..records import Job


def changes_from_events(job: Job, lines: list[str], stage: str, *, failed_on: str,
                        keep_timeout_message: bool = False) -> dict[str, Any]:
    """Progress, the running status line, an ERROR job's cause from its log (unless `keep_timeout_message` and the
    record already says why: a timeout), and the result event, as changes for the record."""
    progress, message, result = last_events(lines)
    changes: dict[str, Any] = {}
    if progress is not None:
        changes["progress"] = progress
    if message and stage == "RUNNING":
        changes["message"] = message
    if stage == "ERROR" and failure_cause(lines) and not (keep_timeout_message and str(job.message).startswith("timeout")):
        changes["message"] = failure_message(lines, f"the job failed on {failed_on}", job.job_id)
    if result is not None:
        changes["outputs"] = {**job.outputs, "result": result}
    return changes
