"""Records (a leaf package): the typed job record and spec, and the one store that owns job state.

Every layer may read and write records through `JobStore`; the detached local supervisor does too.
"""

from .job import Job, JobSpec, RunInput, UploadedFile
from .pipelines import Pipeline, PipelineStore, StageRecord
from .store import JobStore, new_job_id

__all__ = ["Job", "JobSpec", "JobStore", "Pipeline", "PipelineStore", "StageRecord", "RunInput", "UploadedFile", "new_job_id"]
