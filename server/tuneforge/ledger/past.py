"""The past runs a plan should mention: the same model on the same data, failures and noted runs first."""

from __future__ import annotations

from ..config import RunConfig
from ..reports.plan import PastRun
from .from_job import file_sha256
from .model import LedgerRun
from .store import Ledger

MAX_PAST = 5


def summary(run: LedgerRun) -> str:
    cfg = (run.config or {}).get("train") or {}
    bits = [f"lr {cfg['learning_rate']:g}" if isinstance(cfg.get("learning_rate"), (int, float)) else ""]
    if cfg.get("max_steps"):
        bits.append(f"{cfg['max_steps']} steps")
    if "eval_loss" in run.metrics:
        bits.append(f"eval_loss {run.metrics['eval_loss']:.4g}")
    head = f"{run.run_id} {run.stage}" + (f" ({', '.join(b for b in bits if b)})" if any(bits) else "")
    if run.stage != "COMPLETED" and (run.diagnosis or run.message):
        head += f": {run.diagnosis or run.message}"
    return head


def past_runs(config: RunConfig, ledger: Ledger | None = None) -> list[PastRun]:
    ledger = ledger or Ledger()
    runs = ledger.list(model=config.model, limit=200)
    if not runs:
        return []
    sha = file_sha256(config.dataset.path)
    same = [r for r in runs if r.dataset == config.dataset.path or (sha and r.dataset_sha256 == sha)]
    same.sort(key=lambda r: (r.stage == "COMPLETED" and not r.notes, not r.notes, -r.created_at))
    return [PastRun(run_id=r.run_id, stage=r.stage, summary=summary(r), notes=[n.text for n in r.notes][-3:],
                    learning_rate=((r.config or {}).get("train") or {}).get("learning_rate"))
            for r in same[:MAX_PAST]]


def past_note(runs: list[PastRun]) -> str | None:
    """One line for the plan's explanation."""
    if not runs:
        return None
    parts = [r.summary + (f" (note: {r.notes[-1]})" if r.notes else "") for r in runs]
    return "Past runs of this model on this data: " + "; ".join(parts) + "."


__all__ = ["past_runs", "past_note", "summary"]
