"""Sweep records (a leaf): a sweep's budget, metric and trials, in the job store's SQLite file.

A trial is a job linked by `Job.sweep_id`; this record keeps what the job record cannot: the trial's
parameters, its estimated cost, and the trials not submitted (pending, or skipped at the budget).
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import TuneforgeError
from .database import SqliteStore

SweepStage = Literal["RUNNING", "COMPLETED", "CANCELED", "STOPPED"]
TrialState = Literal["pending", "submitted", "skipped", "failed"]
MIN_PREFIX = 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    sweep_id   TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    stage      TEXT NOT NULL,
    data       TEXT NOT NULL
);
"""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SweepMetric(Strict):
    name: str = Field(default="eval_loss", min_length=1, description="eval_loss, train_loss, or an eval-block "
                      "metric (exact_match, rouge_l, ...) as result.json's eval table names it.")
    direction: Literal["min", "max"] = "min"


class SweepBudget(Strict):
    max_trials: int | None = Field(default=None, ge=1, le=1000, description="At most this many trials.")
    max_cost_usd: float | None = Field(default=None, ge=0, description="Trials stop being submitted at this spend.")
    max_parallel: int = Field(default=1, ge=1, le=64, description="Cloud trials running at once (local ones queue "
                              "for the one device).")
    flavors: list[str] | None = Field(default=None, min_length=1, description="Hugging Face flavors a trial may use.")


class SweepTrial(BaseModel):
    index: int
    params: dict[str, Any]
    state: TrialState = "pending"
    job_id: str | None = None
    estimated_cost_usd: float | None = None
    estimated_hours: float | None = None
    reason: str | None = Field(default=None, description="Why it was skipped or failed to submit.")


class SweepRecord(BaseModel):
    sweep_id: str
    name: str | None = None
    source: str | None = Field(default=None, description="The sweep file.")
    created_at: float
    finished_at: float | None = None
    stage: SweepStage = "RUNNING"
    message: str = ""
    backend: str = "local"
    flavor: str | None = None
    metric: SweepMetric = Field(default_factory=SweepMetric)
    budget: SweepBudget = Field(default_factory=SweepBudget)
    base: dict[str, Any] = Field(description="The base run config (a dict RunConfig validates).")
    trials: list[SweepTrial] = Field(default_factory=list)
    driver_pid: int | None = None

    @property
    def terminal(self) -> bool:
        return self.stage != "RUNNING"


def new_sweep_id() -> str:
    return time.strftime("sw-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(3)


def sweep_not_found(sweep_id: str) -> TuneforgeError:
    return TuneforgeError(f"No sweep {sweep_id!r}.", "Start one with `tuneforge sweep run FILE.yaml`; its id is "
                          "printed (sw-...).", code="sweep.not_found", details={"sweep_id": sweep_id})


class SweepStore(SqliteStore):
    SCHEMA = _SCHEMA

    def create(self, sweep: SweepRecord) -> SweepRecord:
        with self._connect() as con:
            con.execute("INSERT INTO sweeps (sweep_id, created_at, stage, data) VALUES (?, ?, ?, ?)",
                        (sweep.sweep_id, sweep.created_at, sweep.stage, sweep.model_dump_json()))
        return sweep

    def _row(self, con: sqlite3.Connection, sweep_id: str) -> tuple[str, str]:
        row = con.execute("SELECT sweep_id, data FROM sweeps WHERE sweep_id = ?", (sweep_id,)).fetchone()
        if row is None and len(sweep_id) >= MIN_PREFIX:
            rows = con.execute("SELECT sweep_id, data FROM sweeps WHERE substr(sweep_id, 1, ?) = ? LIMIT 2",
                               (len(sweep_id), sweep_id)).fetchall()
            row = rows[0] if len(rows) == 1 else None
        if row is None:
            raise sweep_not_found(sweep_id)
        return row

    def get(self, sweep_id: str) -> SweepRecord:
        with self._connect() as con:
            return SweepRecord.model_validate_json(self._row(con, sweep_id)[1])

    def update(self, sweep_id: str, change: Callable[[SweepRecord], SweepRecord | None]) -> SweepRecord:
        """Read, change and write one sweep atomically (the driver and status calls may both write)."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                key, data = self._row(con, sweep_id)
                sweep = SweepRecord.model_validate_json(data)
                sweep = change(sweep) or sweep
                con.execute("UPDATE sweeps SET stage = ?, data = ? WHERE sweep_id = ?",
                            (sweep.stage, sweep.model_dump_json(), key))
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        return sweep

    def list(self, *, limit: int = 20) -> list[SweepRecord]:
        with self._connect() as con:
            rows = con.execute("SELECT data FROM sweeps ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        return [SweepRecord.model_validate_json(r[0]) for r in rows]


__all__ = ["SweepRecord", "SweepTrial", "SweepMetric", "SweepBudget", "SweepStore", "new_sweep_id", "SweepStage"]
