"""A failed training job's diagnosis, computed once from its log and kept on the record.

The job service calls `with_diagnosis` on every read: a train or canary job that is ERROR and has none
gets one (`diagnosis.diagnose_lines` over the last DIAGNOSIS_LOG_LINES lines of its log, and the job's own
message, where the runners write a timeout, a kill by SIGKILL or the cause in one line), stored with
the record. When the log cannot be read (a cloud log service that does not answer), the diagnosis is made
from the message and the stored tail and not stored, so a later read tries again with the whole log.
"""

from __future__ import annotations

import re

from ..backends.base import Backend
from ..diagnosis import diagnose_lines
from ..records import Job, JobStore
from ..types import Stage

#: how much of the end of a job's log the diagnosis reads (bounded: a log may be huge)
DIAGNOSIS_LOG_LINES = 5000
#: the end of a failure message (log_lines.failure_message) that points at the whole log
LOG_POINTER = re.compile(r";? ?the full log: `[^`]*`")
#: the job kinds that train (a GGUF export's failures are its own report's)
DIAGNOSED_KINDS = ("train", "canary")


def verdict(message: str) -> str:
    """A failed job's message without its pointer to the whole log (a command, not evidence)."""
    return LOG_POINTER.sub("", message)


def needs_diagnosis(job: Job) -> bool:
    return job.stage == Stage.ERROR and job.diagnosis is None and job.kind in DIAGNOSED_KINDS


def with_diagnosis(store: JobStore, backend: Backend, job: Job) -> Job:
    """The job with its diagnosis (computed and stored when it has none yet)."""
    if not needs_diagnosis(job):
        return job
    try:
        lines, complete = backend.logs(job, DIAGNOSIS_LOG_LINES), True
    except Exception:  # noqa: BLE001 - an unreadable log never stops a status call: diagnose what the record holds
        lines, complete = (job.error or "").splitlines(), False
    diagnosis = diagnose_lines([*lines, verdict(job.message)], job.config)
    if not complete:
        return job.model_copy(update={"diagnosis": diagnosis})
    return store.update(job.job_id, diagnosis=diagnosis) or job.model_copy(update={"diagnosis": diagnosis})


__all__ = ["with_diagnosis", "needs_diagnosis", "DIAGNOSIS_LOG_LINES"]
