"""The job service: submit, status, logs, cancel, wait, list. Every face goes through here.

It pairs the job store (state) with a backend (where the work runs). Status calls first let the
backend refresh the record, so a dead local process or a finished cloud job shows up on the next read.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, Field

from .. import paths
from ..backends.base import Backend, get_backend
from ..config import RunConfig
from ..config.export import ExportConfig
from ..errors import TuneforgeError
from ..flavors import check_launch
from ..log_lines import clean_lines
from ..planner.hardware import hardware_table
from ..records import Job, JobSpec, JobStore, UploadedFile, new_job_id
from ..reports.diagnosis import Diagnosis
from ..reports.plan import Plan
from ..types import TERMINAL, BackendName, Method
from .budget import cost_so_far, enforce_budget, max_cost
from .checkpoints import continue_if_due
from .diagnosis import needs_diagnosis, with_diagnosis
from .hub_access import needs_hub_token
from .inputs import run_inputs
from .workspace import job_folder, stage_template

LOG_TAIL_DEFAULT = 20
LOG_TAIL_MAX = 500
#: a clean tail of N lines reads this many times N raw lines (event lines and noise are left out)
CLEAN_READ_FACTOR = 8


class JobStatus(BaseModel):
    """What `jobs status` answers, for every backend."""

    job_id: str
    backend: str
    kind: str
    method: str | None
    stage: str
    message: str
    terminal: bool
    url: str | None = None
    backend_job_id: str | None = None
    flavor: str | None = None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    elapsed_seconds: float | None = None
    cost_so_far_usd: float | None = None
    max_cost_usd: float | None = Field(default=None, description="The budget (config max_cost_usd); local runs: never enforced.")
    progress: dict[str, Any] | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    log_tail: list[str] = Field(default_factory=list)
    plan: Plan | None = None
    diagnosis: Diagnosis | None = Field(default=None, description="Why an ERROR job failed: kind, evidence (log "
                                        "lines), fix, and retry_with (the config change `jobs retry --apply-fix` applies).")
    resumed_from: str | None = Field(default=None, description="The job whose checkpoint this one continues.")
    retry_of: str | None = Field(default=None, description="The job this one retries.")
    restarts: int = Field(default=0, description="Automatic resumes so far, of max_restarts.")
    max_restarts: int = 0


class JobSummary(BaseModel):
    job_id: str
    backend: str
    kind: str
    method: str | None
    stage: str
    message: str
    created_at: float
    model: str | None = None
    step: int | None = None
    total_steps: int | None = None


class SubmitResult(BaseModel):
    """What `train` answers at once."""

    job_id: str
    backend: str
    stage: str
    url: str | None = None
    backend_job_id: str | None = None
    job_dir: str
    output_dir: str | None = None
    flavor: str | None = None
    timeout_seconds: int | None = None
    estimated_hours: float | None = None
    estimated_cost_usd: float | None = None
    warnings: list[str] = Field(default_factory=list)
    uploads: list[UploadedFile] = Field(default_factory=list, description="What a cloud backend uploaded for the run, with bytes.")
    notify: bool = Field(default=False, description="A summary is POSTed to the notification URL when the job ends.")
    next: str = ""


class JobService:
    def __init__(self, store: JobStore | None = None):
        self.store = store or JobStore()
        self._backends: dict[str, Backend] = {}

    def backend(self, name: str) -> Backend:
        """The backend of that name, one instance per service (a status call's refresh and log read share it)."""
        if name not in self._backends:
            self._backends[name] = get_backend(name)
        return self._backends[name]

    # ---- submit -----------------------------------------------------------------------------------
    def submit(
        self,
        spec: JobSpec,
        *,
        backend: str = "local",
        kind: str = "train",
        method: Method | None = None,
        config: RunConfig | None = None,
        export: ExportConfig | None = None,
        plan: Plan | None = None,
        price_per_hour: float | None = None,
        job_id: str | None = None,
        job_dir: Path | None = None,
    ) -> Job:
        """Create the record, hand the spec to the backend, record what it answered."""
        impl = self.backend(backend)
        job_id = job_id or new_job_id()
        job_dir = job_dir or job_folder(job_id)
        job = Job(
            job_id=job_id,
            backend=backend,
            kind=kind,
            method=method,
            job_dir=str(job_dir),
            config=config,
            export=export,
            plan=plan,
            labels=dict(spec.labels),
            flavor=spec.flavor,
            price_per_hour=price_per_hour,
            timeout_seconds=spec.timeout_seconds,
            created_at=time.time(),
            message="submitting",
            notify=spec.notify_url is not None,
            max_restarts=config.max_restarts if config is not None else 0,
        )
        self.store.create(job)
        try:
            changes = impl.submit(job, spec)
        except TuneforgeError as exc:
            self.store.update(job_id, stage="ERROR", message=f"submission failed: {exc.message}", finished_at=time.time())
            raise
        except Exception as exc:  # a bug or an unexpected backend failure: keep the record honest
            self.store.update(job_id, stage="ERROR", message=f"submission failed: {type(exc).__name__}: {exc}", finished_at=time.time())
            raise
        return self.store.update(job_id, **changes) or self.store.get(job_id)

    def submit_training(
        self,
        config: RunConfig,
        *,
        backend: str = "local",
        plan: Plan | None = None,
        flavor: str | None = None,
        price_per_hour: float | None = None,
        gpus: int = 1,
        distributed: str | None = None,
        labels: dict[str, str] | None = None,
        notify_url: str | None = None,
    ) -> Job:
        """Write the config next to the job and submit the method's static template with it.

        On hf, the flavor's GPUs must match the config's launch (refused before anything is uploaded), and
        a job submitted without a price gets the flavor's from the hardware table (live when reachable)."""
        if backend == BackendName.HF and flavor:
            known = hardware_table().get(flavor)
            if known is not None:
                check_launch(config.launch, flavor, known.gpus, distributed)
                if price_per_hour is None:
                    price_per_hour = known.price_per_hour
        job_id = new_job_id()
        job_dir = job_folder(job_id)
        # local, and ray (whose cluster writes where this machine reads: a shared filesystem, docs/ray.md)
        if backend in (BackendName.LOCAL, BackendName.RAY) and not Path(config.output_dir).is_absolute():
            config = config.model_copy(update={"output_dir": str(job_dir / config.output_dir)})
        config_path = config.write(job_dir / "config.json")
        script, helpers = stage_template(paths.template_path(config.method), job_dir)
        spec = JobSpec(
            script=script,
            args=["--config", str(config_path)],
            files=[config_path, *helpers],
            flavor=flavor,
            timeout_seconds=config.timeout_seconds,
            gpus=gpus,
            distributed=distributed,
            hub_token=backend == BackendName.HF or needs_hub_token(config),
            inputs=run_inputs(config) if backend == BackendName.HF else [],
            labels={"tuneforge-job": job_id, "tuneforge-method": config.method, **(labels or {})},
            notify_url=notify_url,
        )
        return self.submit(
            spec,
            backend=backend,
            kind="train",
            method=config.method,
            config=config,
            plan=plan,
            price_per_hour=price_per_hour,
            job_id=job_id,
            job_dir=job_dir,
        )

    # ---- read -------------------------------------------------------------------------------------
    def refresh(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        ended = False
        if not job.terminal:
            changes = self.backend(job.backend).refresh(job)
            if changes:
                updated = self.store.update(job.job_id, only_if_active=True, **changes)
                ended = updated is not None and updated.terminal  # this call saw it end: --max-restarts acts once
                job = updated or self.store.get(job.job_id)
            job = enforce_budget(self.store, self.backend(job.backend), job)  # past max_cost_usd: canceled, ERROR
        job = with_diagnosis(self.store, self.backend(job.backend), job) if needs_diagnosis(job) else job
        if ended and continue_if_due(self, job) is not None:  # a cloud job's --max-restarts (jobs/checkpoints.py)
            job = self.store.get(job.job_id)
        if job.terminal:  # the ledger keeps every ended run; it never stops a status call
            try:
                from ..ledger import Ledger

                Ledger(self.store.db_path).record_job(job, only_if_missing=True)
            except Exception:  # noqa: BLE001 - a ledger problem is not the job's
                pass
        return job

    def status(self, job_id: str, *, log_tail: int = LOG_TAIL_DEFAULT, raw: bool = False) -> JobStatus:
        job = self.refresh(job_id)
        tail = self.logs(job.job_id, tail=log_tail, job=job, raw=raw) if log_tail else []
        return to_status(job, tail)

    def logs(self, job_id: str, *, tail: int | None = LOG_TAIL_DEFAULT, job: Job | None = None, raw: bool = True) -> list[str]:
        """The job's log lines (the last `tail` of them); raw=False leaves out event lines and terminal
        noise (ANSI codes, progress bars, traceback frames), counting `tail` after the cleaning."""
        job = job or self.store.get(job_id)
        if tail is not None:
            tail = max(0, min(int(tail), LOG_TAIL_MAX))
        backend = self.backend(job.backend)
        if raw:
            return backend.logs(job, tail)
        if tail == 0:
            return []
        lines = clean_lines(backend.logs(job, None if tail is None else tail * CLEAN_READ_FACTOR))
        return lines if tail is None else lines[-tail:]

    def list(self, *, limit: int = 20, stage: str | None = None, refresh: bool = True) -> list[JobSummary]:
        jobs = self.store.list(limit=limit, stage=stage)
        if refresh:
            jobs = [self.refresh(j.job_id) if not j.terminal else j for j in jobs]
        return [to_summary(j) for j in jobs]

    # ---- control ----------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job.terminal:
            return job
        job_id = job.job_id
        canceled = self.store.update(job_id, only_if_active=True, stage="CANCELED", message="canceled by request", finished_at=time.time())
        if canceled is None:  # it ended meanwhile
            return self.store.get(job_id)
        try:
            changes = self.backend(job.backend).cancel(canceled)
        except TuneforgeError:
            # The backend refused (e.g. the Hub said no): put the record back so the cancel can be retried,
            # rather than claim CANCELED while the work goes on running (and billing).
            self.store.update(job_id, stage=job.stage, message=job.message, finished_at=job.finished_at)
            raise
        if changes:
            self.store.update(job_id, **changes)
        return self.store.get(job_id)

    def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        poll_seconds: float = 1.0,
        on_update: Callable[[Job], None] | None = None,
    ) -> Job:
        """Block until the job reaches a terminal stage (a failed job is returned, not raised); a job continued
        automatically (--max-restarts on a cloud backend) is followed into its continuation."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.refresh(job_id)
            if on_update:
                on_update(job)
            if job.stage in TERMINAL and job.outputs.get("continued_by"):
                job_id = str(job.outputs["continued_by"])
                continue
            if job.stage in TERMINAL:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TuneforgeError(
                    f"Job {job_id} is still {job.stage} after waiting {timeout:.0f} s.",
                    f"It keeps running: check it later with `tuneforge jobs status {job_id}`.",
                    code="job.wait_timeout",
                )
            time.sleep(poll_seconds if deadline is None else min(poll_seconds, max(0.0, deadline - time.monotonic())))


def _elapsed(job: Job) -> float | None:
    if job.started_at is None:
        return None
    return (job.finished_at or time.time()) - job.started_at


def to_status(job: Job, log_tail: list[str]) -> JobStatus:
    elapsed = _elapsed(job)
    return JobStatus(
        job_id=job.job_id,
        backend=job.backend,
        kind=job.kind,
        method=job.method,
        stage=job.stage,
        message=job.message,
        terminal=job.terminal,
        url=job.url,
        backend_job_id=job.backend_job_id,
        flavor=job.flavor,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        elapsed_seconds=None if elapsed is None else round(elapsed, 1),
        cost_so_far_usd=cost_so_far(job),
        max_cost_usd=max_cost(job),
        progress=job.progress,
        outputs=job.outputs,
        error=job.error,
        log_tail=log_tail,
        plan=job.plan,
        diagnosis=job.diagnosis,
        resumed_from=job.resumed_from,
        retry_of=job.retry_of,
        restarts=job.restarts,
        max_restarts=job.max_restarts,
    )


def to_summary(job: Job) -> JobSummary:
    p = job.progress or {}
    return JobSummary(
        job_id=job.job_id,
        backend=job.backend,
        kind=job.kind,
        method=job.method,
        stage=job.stage,
        message=job.message,
        created_at=job.created_at,
        model=job.config.model if job.config else (job.export.model if job.export else None),
        step=p.get("step"),
        total_steps=p.get("total_steps"),
    )
