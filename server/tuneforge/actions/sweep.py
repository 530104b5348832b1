"""Sweeps for every face: plan and start one from a sweep file, its status (advancing it), wait, cancel.

`run_sweep` plans every trial (sweeps/plan.py), refuses over budget (and a paid sweep without the user's
go-ahead), records the sweep (records/sweeps.py), submits what may start now (sweeps/schedule.py) and, when
trials are left for later, starts the detached driver (sweeps/driver.py).
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel

from ..errors import ConfigError, TuneforgeError
from ..jobs.service import JobService
from ..records.sweeps import SweepRecord, SweepStore, SweepTrial, new_sweep_id
from ..sweeps.plan import SweepPlan, over_budget, plan_sweep
from ..sweeps.report import SweepStatus, sweep_report
from ..sweeps.schedule import advance, sweep_lock
from ..sweeps.spec import load_sweep
from .train import check_local_training_deps
from .targets import require_push_target


class SweepStarted(BaseModel):
    sweep_id: str | None = None
    submitted: bool
    plan: SweepPlan
    status: SweepStatus | None = None
    driver_pid: int | None = None
    next: str = ""


def not_confirmed(plan: SweepPlan) -> ConfigError:
    cost = f"about ${plan.total_cost_usd:.2f}" if plan.total_cost_usd is not None else "an unknown amount"
    return ConfigError(f"This sweep runs {plan.trial_count} trials on Hugging Face Jobs, billed: {cost}.",
                       "Show the user the plan (trials, per-trial and total cost), ask them, then run it again with "
                       "--yes.", code="sweep.not_confirmed")


def run_sweep(path: str | Path, *, confirmed: bool = False, submit: bool = True, detach: bool = True) -> SweepStarted:
    sweep, base = load_sweep(path)
    if sweep.backend == "local" and submit:
        check_local_training_deps()
    sweep_id = new_sweep_id()
    plan = plan_sweep(sweep, base, source=str(path), sweep_id=sweep_id)
    if not submit:
        if not plan.within_budget:
            plan.warnings.insert(0, over_budget(plan).message)
        return SweepStarted(submitted=False, plan=plan, next="Run it with `tuneforge sweep run " + str(path) + "`.")
    if not plan.within_budget:
        raise over_budget(plan)
    if sweep.backend == "hf":
        require_push_target(base.get("push_to_hub"), "hf")
        if not confirmed:
            raise not_confirmed(plan)
    record = SweepRecord(sweep_id=sweep_id, name=sweep.name, source=str(Path(path).resolve()), created_at=time.time(),
                         backend=sweep.backend, flavor=plan.flavor or (plan.trials[0].flavor if plan.trials else None),
                         metric=sweep.metric, budget=sweep.budget, base=base, message="running",
                         trials=[SweepTrial(index=t.index, params=t.params, estimated_cost_usd=t.estimated_cost_usd,
                                            estimated_hours=t.estimated_hours) for t in plan.trials])
    store = SweepStore()
    store.create(record)
    current = advance(sweep_id)
    pid = None
    if detach and not current.terminal and any(t.state == "pending" for t in current.trials):
        from ..sweeps.driver import spawn

        pid = spawn(sweep_id)

        def set_pid(s: SweepRecord) -> SweepRecord:
            s.driver_pid = pid
            return s

        current = store.update(sweep_id, set_pid)
    return SweepStarted(sweep_id=sweep_id, submitted=True, plan=plan, status=sweep_report(current), driver_pid=pid,
                        next=f"tuneforge sweep status {sweep_id}  (or: tuneforge sweep wait {sweep_id})")


def sweep_status(sweep_id: str) -> SweepStatus:
    return sweep_report(advance(sweep_id))


def wait_sweep(sweep_id: str, *, timeout: float | None = None, poll_seconds: float = 2.0,
               on_update=None) -> SweepStatus:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = sweep_status(sweep_id)
        if on_update:
            on_update(status)
        if status.stage != "RUNNING":
            return status
        if deadline is not None and time.monotonic() >= deadline:
            raise TuneforgeError(f"Sweep {status.sweep_id} is still running after {timeout:.0f} s "
                                 f"({status.counts}).", f"It keeps running: `tuneforge sweep status {status.sweep_id}`.",
                                 code="sweep.wait_timeout")
        time.sleep(poll_seconds)


def cancel_sweep(sweep_id: str) -> SweepStatus:
    store = SweepStore()

    def stop(s: SweepRecord) -> SweepRecord:
        if s.terminal:
            return s
        s.stage, s.finished_at, s.message = "CANCELED", time.time(), "canceled by request"
        for t in s.trials:
            if t.state == "pending":
                t.state, t.reason = "skipped", "canceled"
        return s

    sweep = store.update(sweep_id, stop)
    with sweep_lock(sweep.sweep_id, wait=True):  # a submission under way finishes first, then is canceled too
        sweep = store.get(sweep.sweep_id)
        service = JobService()
        for t in sweep.trials:
            if t.job_id and not service.store.get(t.job_id).terminal:
                service.cancel(t.job_id)
    return sweep_report(store.get(sweep.sweep_id))


__all__ = ["run_sweep", "sweep_status", "wait_sweep", "cancel_sweep", "SweepStarted"]
