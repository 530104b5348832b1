"""`sweep status`: one row per trial (parameters, stage, metrics, train loss, cost, minutes), the best marked."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ..ledger.from_job import metrics_of
from ..records import Job, JobStore
from ..records.sweeps import SweepBudget, SweepMetric, SweepRecord
from .schedule import committed_cost, job_cost


class TrialRow(BaseModel):
    index: int
    job_id: str | None = None
    params: dict[str, Any]
    stage: str = Field(description="The job's stage, or PENDING / SKIPPED / FAILED for a trial not running.")
    metrics: dict[str, float] = Field(default_factory=dict)
    value: float | None = Field(default=None, description="The sweep's metric for this trial.")
    train_loss: float | None = None
    cost_usd: float | None = None
    minutes: float | None = None
    best: bool = False
    reason: str | None = None
    loss_curve: list[tuple[float, float]] = Field(default_factory=list, exclude=True)


class SweepStatus(BaseModel):
    sweep_id: str
    name: str | None = None
    stage: str
    message: str = ""
    backend: str
    flavor: str | None = None
    metric: SweepMetric
    budget: SweepBudget
    spent_usd: float
    trials: list[TrialRow]
    best: TrialRow | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    next: str = ""


def _row(trial, job: Job | None, metric: str) -> TrialRow:
    if job is None:
        return TrialRow(index=trial.index, params=trial.params, stage=trial.state.upper(), reason=trial.reason)
    result = job.outputs.get("result") if isinstance(job.outputs.get("result"), dict) else {}
    metrics = metrics_of(result)
    if not metrics and job.progress and job.progress.get("loss") is not None:
        metrics = {"loss": float(job.progress["loss"])}
    elapsed = ((job.finished_at or 0) - job.started_at) if job.started_at and job.finished_at else None
    curve = [(float(h["step"]), float(h["loss"])) for h in result.get("log_history") or []
             if isinstance(h, dict) and isinstance(h.get("loss"), (int, float)) and "step" in h]
    return TrialRow(index=trial.index, job_id=job.job_id, params=trial.params, stage=str(job.stage), metrics=metrics,
                    value=metrics.get(metric), train_loss=metrics.get("train_loss"), cost_usd=job_cost(job),
                    minutes=None if elapsed is None else round(elapsed / 60, 2),
                    reason=job.message if job.stage == "ERROR" else None, loss_curve=curve)


def sweep_report(sweep: SweepRecord) -> SweepStatus:
    store = JobStore()
    jobs = {t.job_id: store.get(t.job_id) for t in sweep.trials if t.job_id}
    rows = [_row(t, jobs.get(t.job_id or ""), sweep.metric.name) for t in sweep.trials]
    scored = [r for r in rows if r.stage == "COMPLETED" and r.value is not None]
    best = None
    if scored:
        pick = min if sweep.metric.direction == "min" else max
        best = pick(scored, key=lambda r: r.value)
        best.best = True
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.stage] = counts.get(r.stage, 0) + 1
    if sweep.terminal:
        nxt = (f"Best: trial {best.index} ({best.job_id}, {sweep.metric.name} {best.value:.4g}); compare it with "
               f"`tuneforge runs compare` and write what was learned with `tuneforge runs note {best.job_id} \"...\"`."
               if best else "No trial completed with the metric: see `tuneforge runs list --sweep " + sweep.sweep_id + "`.")
    else:
        nxt = f"Wait for it with `tuneforge sweep wait {sweep.sweep_id}`, or stop it with `tuneforge sweep cancel {sweep.sweep_id}`."
    return SweepStatus(sweep_id=sweep.sweep_id, name=sweep.name, stage=sweep.stage, message=sweep.message,
                       backend=sweep.backend, flavor=sweep.flavor, metric=sweep.metric, budget=sweep.budget,
                       spent_usd=round(committed_cost(sweep, jobs), 4), trials=rows, best=best, counts=counts, next=nxt)


__all__ = ["sweep_report", "SweepStatus", "TrialRow"]
