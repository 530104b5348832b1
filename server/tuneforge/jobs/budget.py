"""The spending budget seen from the job service: cost so far, and the stop of a paid job that overran it.

The template stops a budgeted job itself when its cost reaches max_cost_usd (templates/_guards.py, after a
checkpoint is saved and pushed), and the hf backend caps the job's timeout at the budget plus
config.guards.BUDGET_GRACE_SECONDS. This is the third line: a status refresh that finds a running paid job's
cost so far past the budget by more than that grace cancels it on the backend and records it ERROR with a
message starting "budget:". A local job has no price: its budget is recorded and never stops anything.
"""

from __future__ import annotations

import time

from ..backends.base import Backend
from ..config import format_duration
from ..config.guards import BUDGET_GRACE_SECONDS, over_budget
from ..errors import TuneforgeError
from ..records import Job, JobStore


def cost_so_far(job: Job, now: float | None = None) -> float | None:
    """Time since the job started (to its end) x its price per hour; None without a price or a start."""
    return job.cost_usd(now)


def max_cost(job: Job) -> float | None:
    return job.config.max_cost_usd if job.config is not None else None


def enforce_budget(store: JobStore, backend: Backend, job: Job) -> Job:
    """A running paid job past its budget (plus the grace): canceled on its backend, recorded ERROR "budget: ..."."""
    cost, budget = cost_so_far(job), max_cost(job)
    if job.terminal or not over_budget(cost, budget, job.price_per_hour):
        return job
    assert cost is not None and budget is not None and job.price_per_hour is not None
    where = f"; checkpoints pushed so far are in {job.push_target}" if job.push_target else ""
    message = (f"budget: ${cost:.2f} spent passed the max_cost_usd budget of ${budget:.2f} by more than "
               f"{format_duration(BUDGET_GRACE_SECONDS)} at ${job.price_per_hour:.2f}/h and the job had not stopped itself, "
               f"so tuneforge canceled it{where}. Raise the budget (--max-cost-usd) or train fewer steps "
               f"(--max-steps); `tuneforge jobs resume {job.job_id}` continues from the last checkpoint.")
    try:
        changes = backend.cancel(job)
    except TuneforgeError as exc:  # stays RUNNING (and billed): say so, and try again on the next refresh
        return store.update(job.job_id, only_if_active=True,
                                    message=f"over budget (${cost:.2f} of ${budget:.2f}) and the cancel failed: "
                                            f"{exc.message}; cancel it: `tuneforge jobs cancel {job.job_id}`") or job
    changes.pop("message", None)
    return store.update(job.job_id, only_if_active=True, **changes, stage="ERROR", message=message,
                                finished_at=time.time()) or store.get(job.job_id)
