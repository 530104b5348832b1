"""Moving a sweep on: submit its pending trials while the device, `max_parallel` and the budget allow.

`advance(sweep_id)` is the one step: it refreshes the trials' jobs, submits what may start, skips what the
budget no longer allows, and ends the sweep when nothing is left. The detached driver (driver.py) calls it in a
loop for cloud sweeps; every `sweep status` and `sweep wait` calls it too, so a sweep whose driver died still
moves on. A file lock keeps two callers from submitting the same trial.

Local trials are all submitted at once: the local backend's device lock runs them one at a time, in order.
Cloud trials run up to `budget.max_parallel` at once. The spend counted against `max_cost_usd` is what ended
trials cost plus, for running ones, the larger of their estimate and their cost so far.
"""

from __future__ import annotations

import fcntl
import time
from contextlib import contextmanager
from typing import Iterator

from .. import paths
from ..errors import TuneforgeError
from ..jobs.service import JobService, to_status
from ..records import Job, JobStore
from ..records.sweeps import SweepRecord, SweepStore, SweepTrial
from .plan import trial_config


@contextmanager
def sweep_lock(sweep_id: str, *, wait: bool = False) -> Iterator[bool]:
    """True when this caller holds the sweep (without `wait`, False at once when another one does)."""
    folder = paths.home() / "sweeps"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{sweep_id}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def job_cost(job: Job) -> float | None:
    return to_status(job, []).cost_so_far_usd if job.backend != "local" else 0.0


def committed_cost(sweep: SweepRecord, jobs: dict[str, Job]) -> float:
    total = 0.0
    for t in sweep.trials:
        job = jobs.get(t.job_id or "")
        if job is None:
            continue
        actual = job_cost(job) or 0.0
        total += actual if job.terminal else max(actual, t.estimated_cost_usd or 0.0)
    return round(total, 6)


def submit_trial(sweep: SweepRecord, trial: SweepTrial) -> str:
    from ..actions.train import start_training

    config = trial_config(sweep.base, trial.params, sweep_id=sweep.sweep_id, index=trial.index,
                          backend=sweep.backend, source=sweep.source or sweep.sweep_id)
    result = start_training(config, backend=sweep.backend, flavor=sweep.flavor)
    JobStore().update(result.job_id, sweep_id=sweep.sweep_id)
    return result.job_id


def _set_trial(store: SweepStore, sweep_id: str, index: int, **changes) -> SweepRecord:
    def change(s: SweepRecord) -> SweepRecord:
        s.trials[index] = s.trials[index].model_copy(update=changes)
        return s

    return store.update(sweep_id, change)


def _finish_if_done(store: SweepStore, sweep: SweepRecord, jobs: dict[str, Job]) -> SweepRecord:
    if any(t.state == "pending" for t in sweep.trials) or any(not j.terminal for j in jobs.values()):
        return sweep
    skipped = [t for t in sweep.trials if t.state == "skipped" and (t.reason or "").startswith("budget")]
    done = sum(1 for j in jobs.values() if j.stage == "COMPLETED")

    def change(s: SweepRecord) -> SweepRecord:
        if s.terminal:
            return s
        s.stage = "STOPPED" if skipped else "COMPLETED"
        s.finished_at = time.time()
        s.message = (f"{done} of {len(s.trials)} trials completed"
                     + (f"; {len(skipped)} not run: {skipped[0].reason}" if skipped else ""))
        return s

    return store.update(sweep.sweep_id, change)


def advance(sweep_id: str, *, service: JobService | None = None) -> SweepRecord:
    store = SweepStore()
    with sweep_lock(store.get(sweep_id).sweep_id) as mine:
        sweep = store.get(sweep_id)
        if not mine or sweep.terminal:
            return sweep
        service = service or JobService()
        jobs = {t.job_id: service.refresh(t.job_id) for t in sweep.trials if t.job_id}
        active = sum(1 for j in jobs.values() if not j.terminal)
        spent = committed_cost(sweep, jobs)
        limit = len(sweep.trials) if sweep.backend == "local" else sweep.budget.max_parallel
        budget = sweep.budget.max_cost_usd
        for trial in sweep.trials:
            if trial.state != "pending":
                continue
            if store.get(sweep.sweep_id).terminal or active >= limit:  # canceled meanwhile, or no room yet
                break
            estimate = trial.estimated_cost_usd or 0.0
            if budget is not None and spent + estimate > budget + 1e-9:
                reason = (f"budget: ${spent:.2f} spent or committed, plus this trial's ${estimate:.2f}, is over "
                          f"max_cost_usd ${budget:.2f}")
                for t in sweep.trials:
                    if t.state == "pending":
                        sweep = _set_trial(store, sweep.sweep_id, t.index, state="skipped", reason=reason)
                break
            try:
                job_id = submit_trial(sweep, trial)
            except TuneforgeError as exc:
                sweep = _set_trial(store, sweep.sweep_id, trial.index, state="failed", reason=f"[{exc.code}] {exc.message}")
                continue
            sweep = _set_trial(store, sweep.sweep_id, trial.index, state="submitted", job_id=job_id)
            jobs[job_id] = service.store.get(job_id)
            active += 1
            spent += estimate
        return _finish_if_done(store, store.get(sweep.sweep_id), jobs)


__all__ = ["advance", "sweep_lock", "committed_cost", "submit_trial", "job_cost"]
