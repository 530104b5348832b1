"""What `jobs resume` and `jobs retry` answer (a leaf model): the new job, the checkpoint, what changed."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class FieldChange(BaseModel):
    field: str = Field(description="Dotted RunConfig field, or `flavor`.")
    old: Any = None
    new: Any = None


class RecoveryResult(BaseModel):
    """What `jobs resume` and `jobs retry` answer: the job that now runs, and what changed."""

    action: Literal["resume", "retry"]
    job_id: str = Field(description="The new job: the one that now runs.")
    previous_job_id: str
    backend: str
    stage: str
    url: str | None = None
    flavor: str | None = None
    job_dir: str
    output_dir: str | None = None
    checkpoint: str | None = Field(default=None, description="The checkpoint the new job continues from.")
    resumed_from_step: int | None = None
    diagnosis_kind: str | None = None
    changes: list[FieldChange] = Field(default_factory=list)
    timeout_seconds: int | None = None
    estimated_hours: float | None = None
    estimated_cost_usd: float | None = None
    warnings: list[str] = Field(default_factory=list)
    next: str = ""


__all__ = ["FieldChange", "RecoveryResult"]
