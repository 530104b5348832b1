"""Job records and job specs: the typed data every layer passes down (a leaf module).

A `Job` is one record, whatever the backend; its training config and plan are kept typed. A `JobSpec`
is what a backend runs: a static script, its arguments and the files they name.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..config.export import ExportConfig
from ..config.schema import RunConfig
from ..reports.diagnosis import Diagnosis
from ..reports.plan import Plan
from ..types import TERMINAL, Method, Stage


class RunInput(BaseModel):
    """A local input of a run (model folder, dataset file or folder) and exactly the files the run reads from it."""

    field: Literal["model", "dataset", "eval_dataset", "eval_block"]
    root: Path
    files: list[Path]


class UploadedFile(BaseModel):
    path: str = Field(description="Where the job sees it, relative to its /data folder.")
    bytes: int


class JobSpec(BaseModel):
    """What to run: a static script and its arguments. The same for every backend."""

    script: Path = Field(description="The template (or any script) to run.")
    args: list[str] = Field(default_factory=list, description="Arguments after the script, e.g. ['--config', 'run.json'].")
    files: list[Path] = Field(default_factory=list, description="Local files the script's arguments name (uploaded by cloud backends).")
    dependencies: list[str] = Field(default_factory=list, description="Extra packages for cloud runs (PEP 723 covers the template's own).")
    flavor: str | None = None
    timeout_seconds: int | None = None
    gpus: int = 1
    distributed: str | None = None  # None | "ddp" | "fsdp"
    env: dict[str, str] = Field(default_factory=dict, description="Non-secret environment for the run.")
    hub_token: bool = Field(default=False, description="The run may read the user's Hugging Face token (it pushes, or "
                            "reads a Hub model or dataset that is not public). Local runs get no token otherwise.")
    labels: dict[str, str] = Field(default_factory=dict)
    inputs: list[RunInput] = Field(default_factory=list, description="Local inputs and the files the run reads (uploaded by cloud backends).")
    notify_url: str | None = Field(default=None, exclude=True, repr=False, description="Where to POST the summary when the "
                                   "job ends: a secret, never serialized (the job record keeps only `notify`).")


class Job(BaseModel):
    """One training (or export) job, whatever runs it."""

    job_id: str
    backend: str
    kind: str = "train"  # train | gguf | canary
    method: Method | None = None
    stage: Stage = Stage.SCHEDULING
    message: str = ""
    backend_job_id: str | None = None
    url: str | None = None
    flavor: str | None = None
    price_per_hour: float | None = None
    job_dir: str
    config: RunConfig | None = Field(default=None, description="The training config (train and canary jobs).")
    export: ExportConfig | None = Field(default=None, description="The export config (gguf jobs).")
    plan: Plan | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    timeout_seconds: int | None = None
    pid: int | None = None  # local backend: the job's supervisor process
    pid_started: float | None = None  # its create time, to tell a reused pid apart
    pgid: int | None = None  # local backend: the training process group
    progress: dict[str, Any] | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    uploads: list[UploadedFile] = Field(default_factory=list, description="What a cloud backend uploaded for the run.")
    error: str | None = None
    diagnosis: Diagnosis | None = Field(default=None, description="Why an ERROR job failed, and the fix (set when it ends ERROR).")
    # links: a job that continues another, and the pipeline or sweep a job belongs to
    retry_of: str | None = Field(default=None, description="The job this one retries (`jobs retry`), with the fix applied.")
    resumed_from: str | None = Field(default=None, description="The job whose last checkpoint this one continues (`jobs resume`).")
    restarts: int = Field(default=0, description="Automatic resumes so far (`--max-restarts`).")
    max_restarts: int = Field(default=0, description="Automatic resumes allowed after a timeout or preemption.")
    pipeline_id: str | None = None
    pipeline_stage: int | None = Field(default=None, description="The index of this job's stage in its pipeline.")
    sweep_id: str | None = None
    notify: bool = Field(default=False, description="A notification URL was given (the URL itself is a secret, never stored).")

    @property
    def terminal(self) -> bool:
        return self.stage in TERMINAL

    def cost_usd(self, now: float | None = None) -> float | None:
        """Time since the job started (to its end, else to `now`) x its price per hour; None without a price or a start."""
        if self.price_per_hour is None or self.started_at is None:
            return None
        return round(((self.finished_at or now or time.time()) - self.started_at) / 3600 * self.price_per_hour, 4)

    @property
    def log_path(self) -> Path:
        return Path(self.job_dir) / "job.log"

    @property
    def push_target(self) -> str | None:
        """The Hub repo this job pushes to, whatever its kind."""
        if self.config is not None:
            return self.config.push_to_hub
        if self.export is not None:
            return self.export.push_to_hub
        return None


__all__ = ["Job", "JobSpec", "RunInput", "UploadedFile"]
