"""The small protocol every backend implements, and the lookup by name.

A backend turns a JobSpec into running work and answers questions about it. It never owns job state:
it returns changes that the job service writes through the job store.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from ..errors import TuneforgeError
from ..records import Job, JobSpec
from ..types import BackendName

#: backend name -> the module whose create_backend() makes it (imported on first use: hf pulls huggingface_hub)
BACKENDS: dict[str, str] = {b.value: f"tuneforge.backends.{b.value}" for b in BackendName}


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
        raise TuneforgeError(f"Unknown backend {name!r}.", f"Use one of: {', '.join(BACKENDS)}.", code="config.unknown_backend")
    return importlib.import_module(module_name).create_backend()
