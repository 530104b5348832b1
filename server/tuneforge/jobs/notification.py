"""The notification of a local job that ended: `python -m tuneforge.jobs.notification JOB_ID`.

The local supervisor starts this in a session of its own once the job's stage is final (so `jobs cancel`,
which stops the supervisor's process group, does not stop the notification either). It reads the
final status through the job service (the diagnosis of a failed job, the cost, the outputs), builds the
summary with `templates/_shared/notify.py` and POSTs it to $TUNEFORGE_NOTIFY_URL with bounded retries.
The URL reaches it only through the environment and is never printed; cloud jobs send their own
notification from the job (templates/_notify_after.py).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ..secrets import secret_values
from ..templates._shared.notify import NOTIFY_ENV, send, summary
from .service import JobService, JobStatus

#: lines of a failed job's log in its notification
ERROR_LINES = 10


def payload(status: JobStatus, job_model: str | None = None, diagnosis: dict[str, Any] | None = None) -> dict[str, Any]:
    """The summary of a job's final status, as `_shared.notify.summary` words it."""
    outputs = dict(status.outputs or {})
    result = outputs.pop("result", None)
    error = "\n".join((status.error or "").splitlines()[-ERROR_LINES:]) or None
    return summary(
        job_id=status.job_id, stage=status.stage, kind=status.kind, method=status.method, backend=status.backend,
        model=job_model, message=status.message, error=error if status.stage == "ERROR" else None,
        result=result if isinstance(result, dict) else None, outputs=outputs, diagnosis=diagnosis,
        cost_usd=status.cost_so_far_usd, elapsed_seconds=status.elapsed_seconds, url=status.url,
    )


def job_payload(job_id: str, service: JobService | None = None) -> dict[str, Any]:
    """The summary of a job as the service reads it now (a failed job's diagnosis included when there is one)."""
    service = service or JobService()
    status = service.status(job_id, log_tail=0)
    job = service.store.get(status.job_id)
    found = getattr(status, "diagnosis", None) or job.diagnosis
    diagnosis = found.model_dump() if hasattr(found, "model_dump") else found
    model = job.config.model if job.config else (job.export.model if job.export else None)
    return payload(status, model, diagnosis)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    url = os.environ.get(NOTIFY_ENV)
    if len(argv) != 1 or not url:
        print(f"usage: {NOTIFY_ENV}=URL python -m tuneforge.jobs.notification JOB_ID", file=sys.stderr)
        return 2
    try:
        body = job_payload(argv[0])
    except Exception as exc:  # noqa: BLE001 - a broken record must not stop the message going out
        body = summary(job_id=argv[0], stage="UNKNOWN", message=f"the job's status could not be read ({type(exc).__name__})")
    return 0 if send(url, body, secrets=secret_values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
