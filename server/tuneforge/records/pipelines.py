"""Pipeline records: a pipeline's stages, their jobs and outputs, in the same SQLite database as the jobs.

A pipeline is an ordered list of stages (train, eval, preferences, gguf); each attempt at a stage is a job
linked back by `Job.pipeline_id` / `Job.pipeline_stage`. The record says which stages are done and what
each produced, so a driver that died (kill -9) or a resumed pipeline carries on from it and never redoes
a completed stage. `PipelineStore` is the one owner of that state (same connection settings as JobStore).
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..errors import TuneforgeError
from .database import SqliteStore

MIN_PREFIX = 4
PipelineState = Literal["PENDING", "RUNNING", "COMPLETED", "ERROR", "CANCELED"]
StageState = Literal["PENDING", "RUNNING", "COMPLETED", "ERROR", "CANCELED"]
ENDED = ("COMPLETED", "ERROR", "CANCELED")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pipelines (
    pipeline_id TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    created_at  REAL NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pipelines_created ON pipelines(created_at);
"""


class StageEstimate(BaseModel):
    """What the plan said of a stage: where it runs, how long, what it costs, its time limit."""

    flavor: str | None = None
    hardware: str | None = None
    hours: float | None = None
    cost_usd: float | None = None
    timeout_seconds: int | None = None
    notes: list[str] = Field(default_factory=list)


class StageRecord(BaseModel):
    index: int
    kind: str = Field(description="train | eval | preferences | gguf")
    label: str = Field(description="What the stage is, e.g. 'sft', 'dpo', 'gguf q4_k_m'.")
    state: StageState = "PENDING"
    job_ids: list[str] = Field(default_factory=list, description="Every attempt's job, the last one current.")
    model: str | None = Field(default=None, description="The model this stage read (the previous stage's output).")
    output: dict[str, Any] = Field(default_factory=dict, description="What it produced: model, adapter, files, metrics.")
    message: str = ""
    estimate: StageEstimate = Field(default_factory=StageEstimate)
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def job_id(self) -> str | None:
        return self.job_ids[-1] if self.job_ids else None


class Pipeline(BaseModel):
    pipeline_id: str
    name: str = ""
    backend: str = "local"
    state: PipelineState = "PENDING"
    message: str = ""
    spec: dict[str, Any] = Field(description="The pipeline file as validated (PipelineSpec), stored as data.")
    source: str | None = Field(default=None, description="The pipeline file it came from.")
    stages: list[StageRecord]
    created_at: float
    finished_at: float | None = None
    driver_pid: int | None = None
    driver_started: float | None = Field(default=None, description="The driver's create time (a reused pid is not it).")
    driver_restarts: int = 0
    notify: bool = Field(default=False, description="A notification URL was given (the URL is a secret, never stored).")
    notified: bool = False
    estimate: StageEstimate = Field(default_factory=StageEstimate, description="The whole pipeline: hours and cost summed.")

    @property
    def ended(self) -> bool:
        return self.state in ENDED


# ---- the answers about pipelines (plan, status): typed, for every face ------------------------------------------
class StagePlan(BaseModel):
    index: int
    kind: str
    label: str
    estimate: StageEstimate
    warnings: list[str] = Field(default_factory=list)


class PipelinePlan(BaseModel):
    """Every stage's hardware, time, cost and time limit, and the totals (later stages planned on the base
    model's architecture: their real input is the earlier stage's output, of the same shape)."""

    name: str
    backend: str
    model: str
    stages: list[StagePlan]
    total_hours: float | None = None
    total_cost_usd: float | None = None
    total_timeout_seconds: int | None = None


class StageStatus(BaseModel):
    index: int
    kind: str
    label: str
    state: str
    message: str = ""
    job_id: str | None = None
    job_stage: str | None = None
    attempts: int = 0
    progress: dict[str, Any] | None = None
    model: str | None = None
    output: dict[str, Any] = Field(default_factory=dict)
    estimate: StageEstimate = Field(default_factory=StageEstimate)


class PipelineStatus(BaseModel):
    pipeline_id: str
    name: str
    backend: str
    state: str
    message: str
    ended: bool
    stages: list[StageStatus]
    created_at: float
    finished_at: float | None = None
    driver_restarts: int = 0
    restarted_driver: bool = Field(default=False, description="This call found the driver dead and restarted it.")
    estimate: StageEstimate = Field(default_factory=StageEstimate)
    next: str = ""


def new_pipeline_id() -> str:
    return time.strftime("pl-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(3)


class PipelineNotFound(TuneforgeError):
    def __init__(self, pipeline_id: str):
        super().__init__(f"No pipeline {pipeline_id!r}.", "List them with `tuneforge pipeline list`.",
                         code="pipeline.not_found", details={"pipeline_id": pipeline_id})


class PipelineStore(SqliteStore):
    SCHEMA = _SCHEMA

    def create(self, pipeline: Pipeline) -> Pipeline:
        with self._connect() as con:
            con.execute("INSERT INTO pipelines (pipeline_id, state, created_at, data) VALUES (?, ?, ?, ?)",
                        (pipeline.pipeline_id, pipeline.state, pipeline.created_at, pipeline.model_dump_json()))
        return pipeline

    def save(self, pipeline: Pipeline) -> Pipeline:
        """Write the whole record (one writer at a time: the driver, or a face while no driver runs)."""
        return self.update(pipeline.pipeline_id, **pipeline.model_dump())

    def update(self, pipeline_id: str, **changes: Any) -> Pipeline:
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                row = con.execute("SELECT data FROM pipelines WHERE pipeline_id = ?", (pipeline_id,)).fetchone()
                if row is None:
                    raise PipelineNotFound(pipeline_id)
                current = Pipeline.model_validate_json(row[0])
                updated = Pipeline.model_validate({**current.model_dump(), **changes})
                con.execute("UPDATE pipelines SET state = ?, data = ? WHERE pipeline_id = ?",
                            (updated.state, updated.model_dump_json(), pipeline_id))
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        return updated

    def get(self, pipeline_id: str) -> Pipeline:
        with self._connect() as con:
            row = con.execute("SELECT data FROM pipelines WHERE pipeline_id = ?", (pipeline_id,)).fetchone()
            if row is None and len(pipeline_id) >= MIN_PREFIX:
                rows = con.execute("SELECT pipeline_id, data FROM pipelines WHERE substr(pipeline_id, 1, ?) = ? LIMIT 6",
                                   (len(pipeline_id), pipeline_id)).fetchall()
                if len(rows) > 1:
                    raise TuneforgeError(f"{pipeline_id!r} is the start of several pipeline ids.",
                                         "Give more of the id (`tuneforge pipeline list` shows them whole).",
                                         code="pipeline.ambiguous_id")
                row = rows[0][1:] if rows else None
        if row is None:
            raise PipelineNotFound(pipeline_id)
        return Pipeline.model_validate_json(row[0])

    def list(self, *, limit: int = 20) -> list[Pipeline]:
        with self._connect() as con:
            rows = con.execute("SELECT data FROM pipelines ORDER BY created_at DESC, pipeline_id DESC LIMIT ?",
                               (limit,)).fetchall()
        return [Pipeline.model_validate_json(r[0]) for r in rows]


__all__ = ["PipelinePlan", "PipelineStatus", "StagePlan", "StageStatus", "ENDED", "Pipeline", "PipelineNotFound", "PipelineStore", "StageEstimate", "StageRecord", "new_pipeline_id"]
