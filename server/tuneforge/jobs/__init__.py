"""Job records and the job service."""

from .store import STAGES, TERMINAL, Job, JobStore, new_job_id

__all__ = ["STAGES", "TERMINAL", "Job", "JobStore", "new_job_id"]
