"""The ledger's typed rows: a run and its notes, and the comparison of two runs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["job", "pipeline_stage", "sweep_trial", "eval"]


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=20000)
    created_at: float


class LedgerRun(BaseModel):
    """One run as the ledger keeps it: enough to compare, search and repeat it, without its job folder."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(min_length=1, max_length=200, description="The job id (shared ledgers keep the team's ids).")
    kind: str = "train"
    role: Role = "job"
    backend: str | None = None
    flavor: str | None = None
    method: str | None = None
    stage: str
    message: str = ""
    model: str | None = None
    base_revision: str | None = Field(default=None, description="The base model's Hub commit, or 'local folder <path>'.")
    dataset: str | None = None
    dataset_sha256: str | None = Field(default=None, description="sha256 of the data file (of the files' hashes for "
                                       "several), or 'hub:<revision>'.")
    config_hash: str | None = Field(default=None, description="sha256 (16 hex) of the config minus where it writes.")
    config: dict[str, Any] | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    cost_usd: float | None = None
    duration_seconds: float | None = None
    artifacts: dict[str, str] = Field(default_factory=dict)
    created_at: float
    finished_at: float | None = None
    sweep_id: str | None = None
    pipeline_id: str | None = None
    pipeline_stage: int | None = None
    retry_of: str | None = None
    diagnosis: str | None = Field(default=None, description="Why it failed, in one line (kind: evidence).")
    notes: list[Note] = Field(default_factory=list)


class FieldDiff(BaseModel):
    field: str
    a: Any = None
    b: Any = None


class MetricDiff(BaseModel):
    metric: str
    a: float | None = None
    b: float | None = None
    change: float | None = Field(default=None, description="b - a")


class RunDiff(BaseModel):
    """`runs compare A B`: the config fields that differ and every metric side by side."""

    a: str
    b: str
    same_config: bool
    same_dataset: bool
    config: list[FieldDiff] = Field(default_factory=list)
    metrics: list[MetricDiff] = Field(default_factory=list)
    other: list[FieldDiff] = Field(default_factory=list, description="stage, cost, duration, model, dataset, revision")


__all__ = ["LedgerRun", "Note", "Role", "RunDiff", "FieldDiff", "MetricDiff"]
