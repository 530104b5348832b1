"""The ledger for every face: list (recording ended jobs not in it yet), show, compare, note, search,
export and import. The CLI's `tuneforge runs ...`, the MCP run tools and the API come here."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ..ledger import Ledger, LedgerRun, RunDiff
from ..ledger.compare import compare
from ..ledger.exchange import ExchangeResult, export_runs, import_runs
from ..records import JobStore

#: how many recent job records `runs list` looks through for ended jobs not yet recorded
BACKFILL_JOBS = 500


class RunList(BaseModel):
    runs: list[LedgerRun]
    count: int
    recorded_now: int = Field(default=0, description="Ended jobs added to the ledger by this call.")


def ledger() -> Ledger:
    return Ledger(JobStore().db_path)


def backfill(book: Ledger | None = None) -> int:
    """Record the ended jobs the ledger does not hold yet (jobs that ended with nobody asking)."""
    book = book or ledger()
    added = 0
    for job in JobStore().list(limit=BACKFILL_JOBS):
        if job.terminal and book.record_job(job, only_if_missing=True) is not None:
            added += 1
    return added


def list_runs(*, limit: int = 20, model: str | None = None, dataset: str | None = None,
              sweep_id: str | None = None) -> RunList:
    book = ledger()
    added = backfill(book)
    runs = book.list(limit=limit, model=model, dataset=dataset, sweep_id=sweep_id)
    return RunList(runs=runs, count=len(runs), recorded_now=added)


def show_run(run_id: str) -> LedgerRun:
    book = ledger()
    if not book.has(run_id):
        backfill(book)
    return book.get(run_id)


def compare_runs(a: str, b: str) -> RunDiff:
    return compare(show_run(a), show_run(b))


def note_run(run_id: str, text: str) -> LedgerRun:
    return ledger().note(show_run(run_id).run_id, text)


def search_runs(text: str, *, limit: int = 20) -> RunList:
    book = ledger()
    added = backfill(book)
    runs = book.search(text, limit=limit)
    return RunList(runs=runs, count=len(runs), recorded_now=added)


def export_ledger(path: str) -> ExchangeResult:
    book = ledger()
    backfill(book)
    return export_runs(book, path)


def import_ledger(path: str) -> ExchangeResult:
    return import_runs(ledger(), path)


__all__ = ["list_runs", "show_run", "compare_runs", "note_run", "search_runs", "export_ledger", "import_ledger",
           "backfill", "RunList"]
