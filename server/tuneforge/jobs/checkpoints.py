"""Where a stopped training job can continue from, and the automatic continuation of a cloud job.

A local job's checkpoints are in its output folder (`<output_dir>/checkpoints/checkpoint-N`; the newest
complete one, templates/_shared/checkpoints.py), or, when it stopped before saving its own, the checkpoint
it was itself resumed from. An hf job's is `last-checkpoint` in its push target (backends/hf/checkpoints.py).

`--max-restarts N`: a local job is restarted in place by its supervisor (backends/local/runner.py); a cloud
job that ended by a timeout or a preemption is continued here, as a new job linked by `resumed_from`, when
a status, wait or list call first sees it ended (`continue_if_due`, from JobService.refresh): nothing
runs on the user's machine in between, so the continuation starts at the next such call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import TuneforgeError
from ..records import Job
from ..templates._shared.checkpoints import local_resume_point
from ..types import BackendName, Stage


@dataclass
class ResumePoint:
    """A checkpoint a job can continue from: a local folder or hf://repo/last-checkpoint, and its step."""

    location: str
    step: int


def local_checkpoint(config: RunConfig) -> ResumePoint | None:
    """The newest complete checkpoint in the run's output folder, else the one the run itself resumed from."""
    found = local_resume_point(config.output_dir, config.resume_from_checkpoint)
    return ResumePoint(*found) if found else None


def resume_point(job: Job) -> ResumePoint | None:
    """Where JOB can continue from; None when it saved no checkpoint (a Hub problem raises HubError)."""
    if job.config is None:
        return None
    if job.backend != BackendName.HF:  # local, and ray: the output folder the cluster shares (docs/ray.md)
        found_here = local_checkpoint(job.config)
        if found_here is not None or job.backend == BackendName.LOCAL or not job.config.push_to_hub:
            return found_here
    if not job.config.push_to_hub:
        return None
    from ..backends.hf.checkpoints import hub_checkpoint

    found = hub_checkpoint(job.config.push_to_hub)
    return ResumePoint(*found) if found else None


def continuation_config(job: Job, point: ResumePoint | None) -> RunConfig:
    """JOB's config, continuing from POINT (None: from the start). An output folder inside the old job's folder
    becomes relative again, so the new job writes into its own folder (the checkpoint it reads stays where it is)."""
    assert job.config is not None
    update: dict[str, Any] = {"resume_from_checkpoint": point.location if point is not None else None}
    out = Path(job.config.output_dir)
    if out.is_absolute() and out.is_relative_to(Path(job.job_dir)) and out != Path(job.job_dir):
        update["output_dir"] = out.relative_to(job.job_dir).as_posix()
    return job.config.model_copy(update=update)


def restartable(job: Job) -> bool:
    """Whether JOB ended by its time limit or a preemption (what --max-restarts continues)."""
    message = (job.message or "").lower()
    kind = job.diagnosis.kind if job.diagnosis is not None else None
    return job.stage == Stage.ERROR and (message.startswith("timeout") or "preempt" in message or kind == "timeout")


def continue_if_due(service: Any, job: Job) -> Job | None:
    """A cloud train job that just ended by a timeout or preemption with restarts left: submit its continuation
    from its last checkpoint under the same plan and flavor (SERVICE: the JobService). The old job records
    `outputs.continued_by`; `jobs wait` follows it."""
    if (job.backend == BackendName.LOCAL or job.kind != "train" or job.config is None
            or job.restarts >= job.max_restarts or not restartable(job) or job.outputs.get("continued_by")):
        return None
    try:
        point = resume_point(job)
    except TuneforgeError as exc:
        service.store.update(job.job_id, message=f"{job.message}; not continued automatically: {exc.message}")
        return None
    if point is None:
        service.store.update(job.job_id, message=f"{job.message}; not continued automatically: it saved no checkpoint")
        return None
    config = continuation_config(job, point)
    try:
        new = service.submit_training(config, backend=job.backend, plan=job.plan, flavor=job.flavor,
                                      price_per_hour=job.price_per_hour, gpus=config.launch.gpus,
                                      distributed=job.plan.distributed if job.plan is not None else None)
    except TuneforgeError as exc:  # a status call still answers; `jobs resume` can try again
        service.store.update(job.job_id, message=f"{job.message}; the automatic continuation failed: {exc.message}")
        return None
    new = service.store.update(new.job_id, resumed_from=job.job_id, restarts=job.restarts + 1,
                               max_restarts=job.max_restarts) or new
    service.store.update(job.job_id, outputs={**job.outputs, "continued_by": new.job_id},
                         message=f"{job.message}; continued automatically from step {point.step} as {new.job_id} "
                                 f"(restart {job.restarts + 1} of {job.max_restarts})")
    return new


__all__ = ["ResumePoint", "continuation_config", "continue_if_due", "local_checkpoint", "restartable", "resume_point"]
