"""Resume and retry: a stopped training job continued from its last checkpoint, or run again with the fix.

`resume` (CLI `jobs resume`, MCP resume_job, api.resume): an ERROR or CANCELED train job (a timeout is an
ERROR) continues from its newest complete checkpoint on the same backend, with the same config: the
template hands the checkpoint to `trainer.train(resume_from_checkpoint=...)`, so global step, optimizer,
scheduler and RNG state continue. The new job is linked by `resumed_from`.

`retry` (CLI `jobs retry`, MCP retry_job, api.retry): the same config from the start, linked by `retry_of`;
with `apply_fix`, the diagnosis's `retry_with` applied (dotted RunConfig fields). On top of it, for an
out-of-memory failure on Hugging Face Jobs the hardware is chosen again: the planner re-plans the changed
config (actions/resolve.py, as `plan` and `train` do) and is never allowed a smaller GPU than the one
that ran out of memory; when the job already ran out at batch 1 with gradient checkpointing on, the next
bigger flavor that fits is taken instead of QLoRA. A timeout's retry resumes from the checkpoint (when
there is one) with the longer limit.

Both submit through actions/train.start_training (the checks and plan a `train` runs), and on a paid
backend only when `confirmed` (CLI --yes, MCP confirmed=true); unconfirmed, the refusal carries the plan.
"""

from __future__ import annotations

from typing import Any, Literal

from ..config import RunConfig
from ..config.overrides import set_field
from ..errors import ConfigError, TuneforgeError
from ..jobs.checkpoints import ResumePoint, continuation_config, resume_point
from ..jobs.service import JobService
from ..planner.hardware import hardware_table
from ..records import Job
from ..reports.diagnosis import Diagnosis
from ..reports.recovery import FieldChange, RecoveryResult
from ..types import BackendName, Stage
from .resolve import resolve_run
from .train import start_training


# ---- the job that stopped ---------------------------------------------------------------------------
def stopped_train_job(service: JobService, job_id: str, action: Literal["resume", "retry"]) -> Job:
    """The job (refreshed), if it is a training job that ended without completing; else a clear refusal."""
    verb = {"resume": "resumed", "retry": "retried"}[action]
    job = service.refresh(service.store.get(job_id).job_id)
    jid = job.job_id
    if job.kind != "train" or job.config is None:
        raise TuneforgeError(f"Job {jid} is a {job.kind} job; only training jobs can be {verb}.",
                             "Run the export or canary again with its own command.", code="recovery.not_train",
                             details={"job_id": jid, "kind": job.kind})
    if not job.terminal:
        raise TuneforgeError(f"Job {jid} is still {job.stage}; only a job that stopped can be {verb}.",
                             f"Wait for it with `tuneforge jobs wait {jid}`, or stop it with `tuneforge jobs cancel {jid}`.",
                             code="recovery.still_running", details={"job_id": jid, "stage": job.stage})
    if job.stage == Stage.COMPLETED:
        raise TuneforgeError(f"Job {jid} COMPLETED: there is nothing to {action}.",
                             f"Its outputs are in `tuneforge jobs status {jid}`; to train further, start a new run with "
                             "`tuneforge train`.", code="recovery.completed", details={"job_id": jid})
    if job.outputs.get("continued_by"):
        nxt = job.outputs["continued_by"]
        raise TuneforgeError(f"Job {jid} was already continued automatically as {nxt}.",
                             f"Follow that one: `tuneforge jobs status {nxt}`.", code="recovery.already_continued",
                             details={"job_id": jid, "continued_by": nxt})
    return job


def require_checkpoint(job: Job) -> ResumePoint:
    point = resume_point(job)
    if point is None:
        raise TuneforgeError(f"Nothing to resume: job {job.job_id} saved no checkpoint before it stopped.",
                             f"Retry it instead: `tuneforge jobs retry {job.job_id}` (with --apply-fix to apply its "
                             "diagnosis).", code="recovery.no_checkpoint", details={"job_id": job.job_id})
    return point


def diagnosis_of(service: JobService, job: Job) -> Diagnosis | None:
    """The job's diagnosis: the record's (the job service fills it on ERROR), else read from its log now."""
    if job.diagnosis is not None or job.stage != Stage.ERROR:
        return job.diagnosis
    try:
        from ..diagnosis import diagnose_lines
    except ImportError:
        return None
    return diagnose_lines([*service.logs(job.job_id, tail=2000, job=job), job.message], job.config)


# ---- config changes ---------------------------------------------------------------------------------
def _get(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


def apply_changes(config: RunConfig, retry_with: dict[str, Any], source: str) -> tuple[RunConfig, list[FieldChange]]:
    """retry_with (dotted field -> value) applied and validated as one RunConfig; the changes, old -> new."""
    data = config.model_dump(mode="json")
    changes = []
    for dotted, value in retry_with.items():
        old = _get(data, dotted)
        if old != value:
            changes.append(FieldChange(field=dotted, old=old, new=value))
        set_field(data, dotted, value)
    return RunConfig.from_dict(data, source=source), changes


def checkpointing_on(config: RunConfig) -> bool:
    return bool(config.train.gradient_checkpointing) or config.train.gradient_checkpointing is None  # None: on for GPUs


def vram_per_gpu(flavor: str | None) -> float:
    known = hardware_table().get(flavor) if flavor else None
    return known.vram_gb_per_gpu if known is not None else 0.0


def bigger_flavor(config: RunConfig, old: str | None) -> str | None:
    """The cheapest flavor the planner finds fitting with more memory per GPU than OLD: its own choice or one of
    its alternatives for the same PEFT, else the cheapest bigger one in the hardware table it accepts."""
    floor = vram_per_gpu(old)
    plan = resolve_run(config, backend=BackendName.HF, submit=False).plan
    options = [] if plan is None else [(plan.cost_usd or 0.0, plan.flavor)] + [
        (a.cost_usd or 0.0, a.flavor) for a in plan.alternatives if a.fits and a.peft == config.peft.kind]
    for _cost, name in sorted((c, n) for c, n in options if n and vram_per_gpu(n) > floor):
        return name
    for flavor in sorted((f for f in hardware_table().gpu_flavors() if f.vram_gb_per_gpu > floor),
                         key=lambda f: f.price_per_hour):
        try:
            resolve_run(config, backend=BackendName.HF, flavor=flavor.name, submit=False)
        except TuneforgeError:
            continue
        return flavor.name
    return None


def oom_hardware(job: Job, config: RunConfig, fix: dict[str, Any], notes: list[str]) -> tuple[dict[str, Any], str | None]:
    """(the config change, the flavor) of an out-of-memory retry on Hugging Face Jobs."""
    old = job.config
    assert old is not None
    if old.train.per_device_batch_size == 1 and checkpointing_on(old) or not fix:
        bigger = bigger_flavor(config, job.flavor)
        if bigger is not None:
            notes.append(f"out of memory at batch 1 with gradient checkpointing on {job.flavor}: the next bigger flavor "
                         f"that fits, {bigger}, instead of {'QLoRA' if fix else 'nothing left to change'}")
            return {}, bigger
        if not fix:
            return {}, job.flavor
    changed, _ = apply_changes(config, fix, f"job {job.job_id}'s config with the fix")
    planned = resolve_run(changed, backend=BackendName.HF, submit=False).flavor
    if planned and vram_per_gpu(planned) >= vram_per_gpu(job.flavor):
        if planned != job.flavor:
            notes.append(f"re-planned for the changed config: {planned}")
        return fix, planned
    return fix, job.flavor  # never less memory than the flavor that ran out


# ---- submitting -------------------------------------------------------------------------------------
def submit(action: Literal["resume", "retry"], job: Job, config: RunConfig, changes: list[FieldChange], *,
           flavor: str | None, confirmed: bool, links: dict[str, Any], service: JobService,
           point: ResumePoint | None = None, diagnosis: Diagnosis | None = None, notes: list[str] | None = None) -> RecoveryResult:
    backend = job.backend
    if flavor != job.flavor:
        changes = [*changes, FieldChange(field="flavor", old=job.flavor, new=flavor)]
    if backend == BackendName.HF and not confirmed:
        plan = resolve_run(config, backend=backend, flavor=flavor, submit=False).plan
        what = "; ".join(f"{c.field}: {c.old} -> {c.new}" for c in changes) or "no config change"
        cost = f", about {plan.hours:.2f} h and ${plan.cost_usd:.2f}" if plan and plan.hours and plan.cost_usd else ""
        raise ConfigError(
            f"The {action} of job {job.job_id} runs on Hugging Face Jobs and is billed: {plan.flavor if plan else flavor}"
            f"{cost} ({what}).",
            f"Show this to the user; with their go-ahead run `tuneforge jobs {action} {job.job_id}` again with --yes.",
            code="recovery.not_confirmed",
            details={"flavor": plan.flavor if plan else flavor, "hours": plan.hours if plan else None,
                     "cost_usd": plan.cost_usd if plan else None, "changes": [c.model_dump() for c in changes]})
    if backend == BackendName.RAY and job.outputs.get("ray_address"):  # on the cluster the stopped job ran on
        from ..backends.ray.connection import set_address

        set_address(job.outputs["ray_address"])
    result = start_training(config, backend=backend, flavor=flavor, service=service)
    service.store.update(result.job_id, **links)
    return RecoveryResult(
        action=action, job_id=result.job_id, previous_job_id=job.job_id, backend=result.backend, stage=result.stage,
        url=result.url, flavor=result.flavor, job_dir=result.job_dir, output_dir=result.output_dir,
        checkpoint=point.location if point else None, resumed_from_step=point.step if point else None,
        diagnosis_kind=diagnosis.kind if diagnosis else None, changes=changes, timeout_seconds=result.timeout_seconds,
        estimated_hours=result.estimated_hours, estimated_cost_usd=result.estimated_cost_usd,
        warnings=[*(notes or []), *result.warnings],
        next=f"tuneforge jobs status {result.job_id}  (or: tuneforge jobs wait {result.job_id})")


def resume(job_id: str, *, timeout_seconds: int | None = None, confirmed: bool = False,
           service: JobService | None = None) -> RecoveryResult:
    """Continue a stopped training job from its last checkpoint, as a new job linked by `resumed_from`."""
    service = service or JobService()
    job = stopped_train_job(service, job_id, "resume")
    point = require_checkpoint(job)
    config = continuation_config(job, point)
    changes = [FieldChange(field="resume_from_checkpoint", old=job.config.resume_from_checkpoint, new=point.location)]
    if timeout_seconds is not None and timeout_seconds != config.timeout_seconds:
        config, more = apply_changes(config, {"timeout_seconds": timeout_seconds}, f"job {job.job_id}'s config")
        changes += more
    return submit("resume", job, config, changes, flavor=job.flavor, confirmed=confirmed,
                  links={"resumed_from": job.job_id}, service=service, point=point)


def retry(job_id: str, *, apply_fix: bool = False, confirmed: bool = False,
          service: JobService | None = None) -> RecoveryResult:
    """Run a stopped training job again as a new job linked by `retry_of`; with apply_fix, with its diagnosis's
    change (and, on Hugging Face Jobs after running out of memory, hardware chosen again)."""
    service = service or JobService()
    job = stopped_train_job(service, job_id, "retry")
    config = continuation_config(job, None)  # from the start, in its own output folder
    changes: list[FieldChange] = []
    notes: list[str] = []
    links: dict[str, Any] = {"retry_of": job.job_id}
    flavor, point, diagnosis = job.flavor, None, None
    if apply_fix:
        diagnosis = diagnosis_of(service, job)
        if diagnosis is None:
            raise TuneforgeError(f"Job {job.job_id} has no diagnosis to apply ({job.stage}: {job.message}).",
                                 f"Retry it as it was with `tuneforge jobs retry {job.job_id}`, or change the config "
                                 "and start it with `tuneforge train`.", code="recovery.no_diagnosis",
                                 details={"job_id": job.job_id})
        fix = dict(diagnosis.retry_with)
        if diagnosis.kind == "timeout" and (point := resume_point(job)) is not None:
            config = continuation_config(job, point)  # a timeout's retry continues, with the longer limit
            changes.append(FieldChange(field="resume_from_checkpoint", old=None, new=point.location))
            links["resumed_from"] = job.job_id
        if diagnosis.kind == "out_of_memory" and job.backend == BackendName.HF:
            fix, flavor = oom_hardware(job, config, fix, notes)
        if not fix and flavor == job.flavor:
            raise TuneforgeError(f"The diagnosis of job {job.job_id} ({diagnosis.kind}) has no config change to apply: "
                                 f"{diagnosis.fix}", f"Do what it says, then `tuneforge jobs retry {job.job_id}` "
                                 "(without --apply-fix) or `tuneforge train` with the change.", code="recovery.no_fix",
                                 details={"job_id": job.job_id, "kind": diagnosis.kind})
        config, more = apply_changes(config, fix, f"job {job.job_id}'s config with the fix")
        changes += more
    return submit("retry", job, config, changes, flavor=flavor, confirmed=confirmed, links=links, service=service,
                  point=point, diagnosis=diagnosis, notes=notes)


__all__ = ["resume", "retry", "RecoveryResult", "FieldChange", "apply_changes", "stopped_train_job"]
