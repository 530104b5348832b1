"""The small protocol every backend implements, and the lookup by name.

A backend turns a JobSpec into running work and answers questions about it. It never owns job state:
it returns changes that the job service writes through the job store.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field

from ..errors import TuneforgeError
from ..jobs.store import Job

BACKENDS = {"local": "tuneforge.backends.local", "hf": "tuneforge.backends.hf"}


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
    labels: dict[str, str] = Field(default_factory=dict)


class Backend(Protocol):
    name: str

    def submit(self, job: Job, spec: JobSpec) -> dict[str, Any]:
        """Start the work. Returns changes for the job record (backend_job_id, url, stage, ...)."""

    def refresh(self, job: Job) -> dict[str, Any]:
        """Poll the work. Returns changes for the record (stage, message, progress, outputs, ...)."""

    def logs(self, job: Job, tail: int | None = None) -> list[str]:
        """The job's log lines, the last `tail` of them when given."""

    def cancel(self, job: Job) -> dict[str, Any]:
        """Stop the work. Returns changes for the record."""


def get_backend(name: str) -> Backend:
    module_name = BACKENDS.get(name)
    if module_name is None:
        raise TuneforgeError(f"Unknown backend {name!r}.", f"Use one of: {', '.join(BACKENDS)}.")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise TuneforgeError(f"The {name!r} backend is not available in this version.", "Use --backend local.") from None
        raise
    return module.create_backend()
