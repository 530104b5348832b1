"""The ledger's table, in the job store's SQLite file: one row per run (the run as JSON), plus a full-text
index over model, dataset, config values, outcome and notes (SQLite FTS5 when the build has it, else LIKE).
"""

from __future__ import annotations

import re
import sqlite3
import time
from contextlib import AbstractContextManager
from pathlib import Path

from .. import paths
from ..errors import TuneforgeError
from ..records import Job
from ..records.database import connect
from .from_job import run_from_job
from .model import LedgerRun, Note

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_runs (
    run_id      TEXT PRIMARY KEY,
    model       TEXT,
    dataset     TEXT,
    created_at  REAL NOT NULL,
    search_text TEXT NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_runs_model ON ledger_runs(model);
"""
_FTS = "CREATE VIRTUAL TABLE IF NOT EXISTS ledger_fts USING fts5(run_id UNINDEXED, body)"
MIN_PREFIX = 4


def flat(data: dict, prefix: str = "") -> dict[str, object]:
    """{"train": {"learning_rate": 0.002}} -> {"train.learning_rate": 0.002}."""
    out: dict[str, object] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat(value, name + "."))
        else:
            out[name] = value
    return out


def search_text(run: LedgerRun) -> str:
    parts = [run.run_id, run.model or "", run.dataset or "", run.method or "", run.stage, run.message,
             run.diagnosis or "", run.sweep_id or "", run.flavor or "", run.backend or "", run.base_revision or ""]
    parts += [f"{k}={v}" for k, v in flat(run.config or {}).items() if v not in (None, [], {})]
    parts += [f"{k}={v:g}" for k, v in run.metrics.items()]
    parts += [n.text for n in run.notes]
    return "\n".join(p for p in parts if p)


#: database files whose tables this process has made sure of -> whether FTS5 is there (every status call of an
#: ended job builds a Ledger: the schema is written once per process, not once per call)
_READY: dict[Path, bool] = {}


class Ledger:
    def __init__(self, db_path: Path | None = None):
        self.db_path = Path(db_path) if db_path else paths.home() / "jobs.sqlite3"
        if self.db_path in _READY and self.db_path.exists():
            self.fts = _READY[self.db_path]
            return
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.executescript(_SCHEMA)
            try:
                con.execute(_FTS)
                self.fts = True
            except sqlite3.OperationalError:  # a SQLite built without FTS5: LIKE instead
                self.fts = False
        _READY[self.db_path] = self.fts

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return connect(self.db_path)

    # ---- writes -----------------------------------------------------------------------------------
    def _write(self, con: sqlite3.Connection, run: LedgerRun) -> None:
        text = search_text(run)
        con.execute("INSERT OR REPLACE INTO ledger_runs (run_id, model, dataset, created_at, search_text, data) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (run.run_id, run.model, run.dataset, run.created_at, text,
                                                  run.model_dump_json()))
        if self.fts:
            con.execute("DELETE FROM ledger_fts WHERE run_id = ?", (run.run_id,))
            con.execute("INSERT INTO ledger_fts (run_id, body) VALUES (?, ?)", (run.run_id, text))

    def put(self, run: LedgerRun, *, merge_notes: bool = True) -> LedgerRun:
        """Insert or replace a run; the notes already kept stay (a note is never lost by a re-record)."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                row = con.execute("SELECT data FROM ledger_runs WHERE run_id = ?", (run.run_id,)).fetchone()
                if row is not None and merge_notes:
                    old = LedgerRun.model_validate_json(row[0])
                    seen = {(n.text, n.created_at) for n in run.notes}
                    kept = [n for n in old.notes if (n.text, n.created_at) not in seen]
                    run = run.model_copy(update={"notes": sorted(kept + run.notes, key=lambda n: n.created_at)})
                self._write(con, run)
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        return run

    def record_job(self, job: Job, *, only_if_missing: bool = False) -> LedgerRun | None:
        """A terminal job's row (re-recorded when its stage changed, e.g. after a retry)."""
        if not job.terminal:
            return None
        if only_if_missing:
            with self._connect() as con:
                row = con.execute("SELECT data FROM ledger_runs WHERE run_id = ?", (job.job_id,)).fetchone()
            if row is not None and LedgerRun.model_validate_json(row[0]).stage == str(job.stage):
                return None
        return self.put(run_from_job(job))

    def note(self, run_id: str, text: str) -> LedgerRun:
        text = text.strip()
        if not text:
            raise TuneforgeError("A note needs some text.", 'Write what was learned: tuneforge runs note ID "lr 2e-3 '
                                 'diverged at step 40 (loss nan); 5e-4 trained fine".', code="ledger.empty_note")
        run = self.get(run_id)
        run = run.model_copy(update={"notes": [*run.notes, Note(text=text, created_at=time.time())]})
        return self.put(run, merge_notes=False)

    # ---- reads ------------------------------------------------------------------------------------
    def get(self, run_id: str) -> LedgerRun:
        with self._connect() as con:
            row = con.execute("SELECT data FROM ledger_runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None and len(run_id) >= MIN_PREFIX:
                rows = con.execute("SELECT run_id, data FROM ledger_runs WHERE substr(run_id, 1, ?) = ? LIMIT 6",
                                   (len(run_id), run_id)).fetchall()
                if len(rows) > 1:
                    raise TuneforgeError(f"{run_id!r} is the start of several run ids: "
                                         f"{', '.join(r[0] for r in rows[:5])}.",
                                         "Give more of the id (`tuneforge runs list` shows them whole).",
                                         code="ledger.ambiguous_id")
                row = rows[0][1:] if rows else None
        if row is None:
            raise TuneforgeError(f"No run {run_id!r} in the ledger.",
                                 "See `tuneforge runs list` for the runs recorded (a job is recorded when it ends).",
                                 code="ledger.run_not_found", details={"run_id": run_id})
        return LedgerRun.model_validate_json(row[0])

    def has(self, run_id: str) -> bool:
        with self._connect() as con:
            return con.execute("SELECT 1 FROM ledger_runs WHERE run_id = ?", (run_id,)).fetchone() is not None

    def list(self, *, limit: int = 50, model: str | None = None, dataset: str | None = None,
             sweep_id: str | None = None) -> list[LedgerRun]:
        query, args, where = "SELECT data FROM ledger_runs", [], []
        if model:
            where.append("model = ?")
            args.append(model)
        if dataset:
            where.append("dataset = ?")
            args.append(dataset)
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY created_at DESC, run_id DESC LIMIT ?"
        args.append(limit if not sweep_id else 100000)
        with self._connect() as con:
            runs = [LedgerRun.model_validate_json(r[0]) for r in con.execute(query, args).fetchall()]
        return [r for r in runs if r.sweep_id == sweep_id][:limit] if sweep_id else runs

    def search(self, text: str, *, limit: int = 20) -> list[LedgerRun]:
        words = [w for w in re.split(r"\s+", text.strip()) if w]
        if not words:
            raise TuneforgeError("Nothing to search for.", "Give a model, a dataset or words from a note: "
                                 "tuneforge runs search diverged", code="ledger.empty_search")
        with self._connect() as con:
            if self.fts:
                match = " ".join('"' + w.replace('"', '""') + '"' for w in words)
                rows = con.execute("SELECT r.data FROM ledger_fts f JOIN ledger_runs r ON r.run_id = f.run_id "
                                   "WHERE ledger_fts MATCH ? ORDER BY rank LIMIT ?", (match, limit)).fetchall()
            else:
                clause = " AND ".join("lower(search_text) LIKE ?" for _ in words)
                rows = con.execute(f"SELECT data FROM ledger_runs WHERE {clause} ORDER BY created_at DESC LIMIT ?",
                                   [f"%{w.lower()}%" for w in words] + [limit]).fetchall()
        return [LedgerRun.model_validate_json(r[0]) for r in rows]


__all__ = ["Ledger", "search_text", "flat"]
