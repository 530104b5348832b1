"""The ledger tools: list_runs, show_run, compare_runs, note_run, search_runs (actions/runs.py does the work)."""

from __future__ import annotations

from typing import Annotated

from mcp.types import ToolAnnotations
from pydantic import Field

from ...actions.runs import RunList
from ...ledger.model import LedgerRun, RunDiff
from ..arguments import JobId
from ..errors import tool_errors


def _runs():
    from ...actions import runs

    return runs


def list_runs(
    limit: Annotated[int, Field(ge=1, le=200, description="At most this many runs, newest first.")] = 20,
    model: Annotated[str | None, Field(description="Only runs of this base model (Hub id or folder, as configured).")] = None,
    dataset: Annotated[str | None, Field(description="Only runs on this dataset path or id.")] = None,
    sweep_id: Annotated[str | None, Field(description="Only the trials of this sweep.")] = None,
) -> RunList:
    """The ledger of ended runs (jobs, pipeline stages, sweep trials): config hash, dataset sha256, base
    revision, metrics (eval_loss, train_loss, eval-block metrics), cost, duration, artifacts and notes. Use
    before planning a run, to see what was tried on this model and data and how it went."""
    with tool_errors():
        return _runs().list_runs(limit=limit, model=model, dataset=dataset, sweep_id=sweep_id)


def show_run(run_id: JobId) -> LedgerRun:
    """One run from the ledger, whole: its config, config hash, dataset sha256, base model revision, metrics,
    cost, duration, artifacts and notes. Use to read what a past run did before repeating or changing it; any
    unique start of a run id works."""
    with tool_errors():
        return _runs().show_run(run_id)


def compare_runs(a: JobId, b: JobId) -> RunDiff:
    """Two runs side by side: the config fields that differ (a vs b), every metric with its change (b - a),
    and whether they trained on the same data. Use when the user asks which of two runs was better and why."""
    with tool_errors():
        return _runs().compare_runs(a, b)


def note_run(
    run_id: JobId,
    text: Annotated[str, Field(min_length=1, max_length=20000, description="What was learned: failures first, with "
                               "exact values (e.g. 'lr 2e-3 diverged at step 40, loss nan; 5e-4 trained fine').")],
) -> LedgerRun:
    """Store what a run taught, in the ledger, where the next plan of the same model and data finds it.
    Use at the end of every experiment: what failed first, with the exact values, then what worked."""
    with tool_errors():
        return _runs().note_run(run_id, text)


def search_runs(
    text: Annotated[str, Field(min_length=1, max_length=500, description="Words, a model, a dataset or a config "
                               "value (train.learning_rate=0.002); all must match.")],
    limit: Annotated[int, Field(ge=1, le=200, description="At most this many runs, best matches first.")] = 20,
) -> RunList:
    """Find runs and notes in the ledger by model, dataset, config value (train.learning_rate=0.002) or words
    of a note or failure message (all words must match). Use before planning to find what was learned on this
    model or data."""
    with tool_errors():
        return _runs().search_runs(text, limit=limit)


#: note_run adds to the ledger: nothing is lost or overwritten, and a second call adds a second note
NOTE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
