"""Pipelines for every face: plan every stage, start the detached driver, status (restarting a dead driver),
list, cancel, resume. The stages themselves advance in the driver (tuneforge.pipelines.driver).

    spec = load_spec("pipeline.yaml")
    plan = plan_pipeline(spec, backend="local")          # hardware, time, cost and timeout per stage and in total
    pipeline = run_pipeline(spec, backend="local")       # answers at once; the driver runs the stages
    status = pipeline_status(pipeline.pipeline_id)       # a driver that died is restarted from the record
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from ..errors import ConfigError, TuneforgeError
from ..jobs.service import JobService
from ..pipelines.notify import NOTIFY_ENV
from ..pipelines.spec import GGUFStage, PipelineSpec, PreferencesStage, TrainStage, dump
from ..pipelines.stages import train_config
from ..records.pipelines import (
    Pipeline,
    PipelinePlan,
    PipelineStatus,
    PipelineStore,
    StageEstimate,
    StagePlan,
    StageRecord,
    StageStatus,
    new_pipeline_id,
)
from ..types import BackendName
from .resolve import resolve_run

#: how long a stopped driver gets between SIGTERM and SIGKILL
DRIVER_GRACE_SECONDS = 10.0


def placeholder_dataset(spec: PipelineSpec, index: int) -> str | None:
    """A train stage fed by a preferences stage has no file yet: plan it on the prompts file's rows."""
    prev = spec.stages[index - 1] if index else None
    return prev.prompts if isinstance(prev, PreferencesStage) else None


def plan_stage(spec: PipelineSpec, index: int, backend: str, submit: bool) -> StagePlan:
    stage = spec.stages[index]
    warnings: list[str] = []
    est = StageEstimate()
    if isinstance(stage, TrainStage):
        generated = stage.dataset is None and placeholder_dataset(spec, index)
        config = train_config(spec, index, spec.model, backend=backend, dataset=generated or None)
        resolved = resolve_run(config, backend=backend, flavor=spec.flavor, submit=submit and not generated,
                               dataset_given=not generated)
        plan = resolved.plan
        if plan is not None:
            est = StageEstimate(flavor=plan.flavor if backend == BackendName.HF else None,
                                hardware=plan.flavor or "this machine", hours=plan.hours,
                                cost_usd=plan.cost_usd if backend == BackendName.HF else 0.0,
                                timeout_seconds=resolved.config.timeout_seconds)
        warnings = list(resolved.warnings)
        if index and spec.model != config.model:
            warnings.append("planned on the base model's architecture; it trains on the previous stage's output")
    elif isinstance(stage, GGUFStage):
        est = StageEstimate(hardware="this machine (llama.cpp)" if backend != BackendName.HF else "chosen at submit",
                            cost_usd=0.0 if backend != BackendName.HF else None,
                            notes=["merge, convert, quantize and the agreement check: minutes for a small model"])
        if backend == BackendName.HF and not stage.push_to:
            raise ConfigError(f"Stage {index} (gguf) runs on hf and pushes nowhere.", "Give the gguf stage push_to: owner/name-GGUF.",
                              code="pipeline.push_target_required", details={"stage": index})
        if backend == BackendName.HF and stage.fallback:
            raise ConfigError(f"Stage {index} (gguf): fallback works for exports on this machine only for now.",
                              "Drop fallback from the gguf stage, or list the types you accept in quants.",
                              code="pipeline.fallback_local_only", details={"stage": index})
    elif isinstance(stage, PreferencesStage):
        if backend != BackendName.LOCAL:
            raise ConfigError(f"Stage {index} (preferences) runs on this machine only for now.",
                              "Run the pipeline with --backend local, or give the DPO stage a preference file.",
                              code="pipeline.preferences_local_only", details={"stage": index})
        if stage.reward_model:  # a wrong folder or job id is refused now, not after the stages before it trained
            from ..pipelines.preferences import reward_model_path

            reward_model_path(JobService(), stage.reward_model)
        est = StageEstimate(hardware="this machine", cost_usd=0.0,
                            notes=[f"{stage.samples} sampled answers per prompt, scored with {stage.reward}"])
    else:
        est = StageEstimate(hardware="this machine" if backend == BackendName.LOCAL else "the pipeline's backend",
                            cost_usd=0.0 if backend == BackendName.LOCAL else None)
    return StagePlan(index=index, kind=stage.kind, label=stage.label, estimate=est, warnings=warnings)


def plan_pipeline(spec: PipelineSpec, *, backend: str = BackendName.LOCAL, submit: bool = False) -> PipelinePlan:
    """Plan every stage; with `submit`, what would stop a stage with its data raises now, before anything runs."""
    stages = [plan_stage(spec, i, backend, submit) for i in range(len(spec.stages))]

    def total(key: str) -> Any:
        values = [getattr(s.estimate, key) for s in stages]
        known = [v for v in values if v is not None]
        return round(sum(known), 4) if known else None

    return PipelinePlan(name=spec.name, backend=backend, model=spec.model, stages=stages, total_hours=total("hours"),
                        total_cost_usd=total("cost_usd"), total_timeout_seconds=total("timeout_seconds"))


def start_driver(pipeline: Pipeline, notify_url: str | None = None) -> Pipeline:
    """The detached driver, in a session of its own (it outlives the CLI and MCP server)."""
    import psutil

    from .. import paths

    env = dict(os.environ)
    env.setdefault("TUNEFORGE_HOME", str(paths.home()))
    if notify_url:
        env[NOTIFY_ENV] = notify_url  # the secret travels in the environment only
    log_dir = paths.home() / "pipelines"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{pipeline.pipeline_id}.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tuneforge.pipelines.driver", pipeline.pipeline_id],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True,
                                close_fds=True)
    try:
        started = psutil.Process(proc.pid).create_time()
    except psutil.NoSuchProcess:
        started = None
    return PipelineStore().update(pipeline.pipeline_id, driver_pid=proc.pid, driver_started=started)


def run_pipeline(spec: PipelineSpec, *, backend: str = BackendName.LOCAL, confirmed: bool = True,
                 notify_url: str | None = None, source: str | None = None) -> tuple[Pipeline, PipelinePlan]:
    """Plan every stage (refusing what would fail), record the pipeline, start its driver; answers at once.
    A paid pipeline (hf) needs `confirmed` once, for the total."""
    if backend == BackendName.LOCAL:
        from .train import check_local_training_deps

        check_local_training_deps()
    plan = plan_pipeline(spec, backend=backend, submit=True)
    if backend == BackendName.HF and not confirmed:
        cost = f"about ${plan.total_cost_usd:.2f}" if plan.total_cost_usd is not None else "an unknown amount"
        raise TuneforgeError(f"This pipeline runs {len(spec.stages)} stages on Hugging Face Jobs and costs {cost} in total.",
                             "Show the user the plan's total and ask; then call run_pipeline again with confirmed=true.",
                             code="pipeline.not_confirmed", details={"total_cost_usd": plan.total_cost_usd})
    url = checked_url(notify_url)
    records = [StageRecord(index=s.index, kind=s.kind, label=s.label, estimate=s.estimate) for s in plan.stages]
    pipeline = PipelineStore().create(Pipeline(
        pipeline_id=new_pipeline_id(), name=spec.name, backend=backend, spec=dump(spec), source=source, stages=records,
        created_at=time.time(), notify=bool(url), message="starting",
        estimate=StageEstimate(hours=plan.total_hours, cost_usd=plan.total_cost_usd,
                               timeout_seconds=plan.total_timeout_seconds)))
    return start_driver(pipeline, url), plan


def checked_url(given: str | None) -> str | None:
    """The notification URL given, else $TUNEFORGE_NOTIFY_URL: checked and registered as a secret."""
    try:
        from ..secrets import notify_url
    except ImportError:  # the notify engineer's check is not there: take it as given
        return given or os.environ.get(NOTIFY_ENV) or None
    return notify_url(given)


def driver_alive(pipeline: Pipeline) -> bool:
    from ..backends.local.processes import process_alive

    return process_alive(pipeline.driver_pid, pipeline.driver_started)


def pipeline_status(pipeline_id: str, *, restart: bool = True) -> PipelineStatus:
    """The record with each stage's job; a running pipeline whose driver died is restarted from the record."""
    store = PipelineStore()
    pipeline = store.get(pipeline_id)
    restarted = False
    if restart and not pipeline.ended and pipeline.driver_pid and not driver_alive(pipeline):
        pipeline = start_driver(store.update(pipeline.pipeline_id, driver_restarts=pipeline.driver_restarts + 1))
        restarted = True
    return to_status(pipeline, restarted)


def to_status(pipeline: Pipeline, restarted: bool = False) -> PipelineStatus:
    service = JobService()
    stages = []
    for rec in pipeline.stages:
        job = None
        if rec.job_id:
            try:
                job = service.store.get(rec.job_id)
            except TuneforgeError:
                job = None
        stages.append(StageStatus(index=rec.index, kind=rec.kind, label=rec.label, state=rec.state, message=rec.message,
                                  job_id=rec.job_id, job_stage=job.stage if job else None, attempts=len(rec.job_ids),
                                  progress=job.progress if job else None, model=rec.model, output=rec.output,
                                  estimate=rec.estimate))
    nxt = "" if pipeline.ended else f"tuneforge pipeline status {pipeline.pipeline_id}"
    if pipeline.state in ("ERROR", "CANCELED"):
        nxt = f"tuneforge pipeline resume {pipeline.pipeline_id}  (completed stages are kept)"
    return PipelineStatus(pipeline_id=pipeline.pipeline_id, name=pipeline.name, backend=pipeline.backend,
                          state=pipeline.state, message=pipeline.message, ended=pipeline.ended, stages=stages,
                          created_at=pipeline.created_at, finished_at=pipeline.finished_at,
                          driver_restarts=pipeline.driver_restarts, restarted_driver=restarted,
                          estimate=pipeline.estimate, next=nxt)


def list_pipelines(limit: int = 20) -> list[PipelineStatus]:
    return [to_status(p) for p in PipelineStore().list(limit=limit)]


def stop_driver(pipeline: Pipeline) -> None:
    if not driver_alive(pipeline):
        return
    assert pipeline.driver_pid is not None
    try:
        os.kill(pipeline.driver_pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + DRIVER_GRACE_SECONDS
    while time.monotonic() < deadline and driver_alive(pipeline):
        time.sleep(0.1)
    if driver_alive(pipeline):  # busy in a stage that runs in the driver (an export): its whole group goes
        try:
            os.killpg(pipeline.driver_pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def cancel_pipeline(pipeline_id: str) -> PipelineStatus:
    """Stop the driver and the running stage's job; the stages not done are CANCELED."""
    store = PipelineStore()
    pipeline = store.get(pipeline_id)
    if pipeline.ended:
        raise TuneforgeError(f"Pipeline {pipeline.pipeline_id} already ended {pipeline.state}.",
                             "Nothing to cancel; `tuneforge pipeline resume ID` runs its stages not done.",
                             code="pipeline.already_finished")
    stop_driver(pipeline)  # first: a driver that saw its stage's job canceled would end the pipeline ERROR
    service = JobService()
    for rec in pipeline.stages:
        if rec.job_id and rec.state not in ("COMPLETED",):
            try:
                service.cancel(rec.job_id)
            except TuneforgeError:
                pass
    pipeline = store.get(pipeline.pipeline_id)
    stages = [s.model_copy(update={"state": "CANCELED", "message": "canceled by request"})
              if s.state in ("PENDING", "RUNNING") else s for s in pipeline.stages]
    pipeline = store.update(pipeline.pipeline_id, state="CANCELED", message="canceled by request",
                            stages=[s.model_dump() for s in stages], finished_at=time.time())
    return to_status(pipeline)


def resume_pipeline(pipeline_id: str, *, notify_url: str | None = None) -> PipelineStatus:
    """Carry on from the record: completed stages are kept, a failed or canceled stage gets a new job."""
    store = PipelineStore()
    pipeline = store.get(pipeline_id)
    if pipeline.state == "COMPLETED":
        raise TuneforgeError(f"Pipeline {pipeline.pipeline_id} already completed.", "Nothing to resume.",
                             code="pipeline.already_completed")
    if not pipeline.ended and driver_alive(pipeline):
        return to_status(pipeline)
    stages = [s.model_copy(update={"state": "PENDING", "message": ""}) if s.state != "COMPLETED" else s
              for s in pipeline.stages]
    pipeline = store.update(pipeline.pipeline_id, state="PENDING", message="resuming", finished_at=None, notified=False,
                            stages=[s.model_dump() for s in stages], driver_restarts=pipeline.driver_restarts + 1)
    return to_status(start_driver(pipeline, checked_url(notify_url)), restarted=True)


__all__ = [
    "PipelinePlan",
    "PipelineStatus",
    "StageStatus",
    "cancel_pipeline",
    "list_pipelines",
    "pipeline_status",
    "plan_pipeline",
    "resume_pipeline",
    "run_pipeline",
]
