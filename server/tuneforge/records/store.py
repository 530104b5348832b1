"""Job records: the one module that owns job state.

SQLite under $TUNEFORGE_HOME (WAL, busy timeout), safe with concurrent readers and writers: the CLI,
the MCP server and detached job supervisors all go through here. A record is the same whatever the
backend; stages are Hugging Face Jobs' names.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from ..config.schema import STORED
from ..errors import JobNotFound, TuneforgeError
from .database import SqliteStore
from .job import Job

#: the shortest id prefix looked up (shorter ones would match nearly everything)
MIN_PREFIX = 4
_COLUMNS = ("job_id", "backend", "stage", "created_at", "data")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id     TEXT PRIMARY KEY,
    backend    TEXT NOT NULL,
    stage      TEXT NOT NULL,
    created_at REAL NOT NULL,
    data       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at);
"""


def new_job_id() -> str:
    """Sortable by time, unique across processes: tf-YYYYmmdd-HHMMSS-xxxxxx."""
    return time.strftime("tf-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(3)


class JobStore(SqliteStore):
    SCHEMA = _SCHEMA

    # ---- writes -----------------------------------------------------------------------------------
    def create(self, job: Job) -> Job:
        with self._connect() as con:
            con.execute(
                "INSERT INTO jobs (job_id, backend, stage, created_at, data) VALUES (?, ?, ?, ?, ?)",
                (job.job_id, job.backend, job.stage, job.created_at, job.model_dump_json()),
            )
        return job

    def update(self, job_id: str, *, only_if_active: bool = False, **changes: Any) -> Job | None:
        """Apply changes atomically. With only_if_active, a job already in a terminal stage is left
        alone and None is returned (so a late writer never overwrites CANCELED or ERROR)."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                row = con.execute("SELECT data FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
                if row is None:
                    con.execute("ROLLBACK")
                    raise JobNotFound(job_id)
                job = Job.model_validate_json(row[0], context=STORED)
                if only_if_active and job.terminal:
                    con.execute("ROLLBACK")
                    return None
                job = Job.model_validate({**job.model_dump(), **changes}, context=STORED)  # typed changes
                con.execute(
                    "UPDATE jobs SET stage = ?, data = ? WHERE job_id = ?",
                    (job.stage, job.model_dump_json(), job_id),
                )
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        return job

    # ---- reads ------------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        with self._connect() as con:
            row = con.execute("SELECT data FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:  # a unique prefix of an id, as `jobs list` shows them, works too
                rows = con.execute("SELECT job_id, data FROM jobs WHERE substr(job_id, 1, ?) = ? ORDER BY job_id LIMIT 6",
                                   (len(job_id), job_id)).fetchall() if len(job_id) >= MIN_PREFIX else []
                if len(rows) > 1:
                    raise TuneforgeError(
                        f"{job_id!r} is the start of several job ids: {', '.join(r[0] for r in rows[:5])}{' ...' if len(rows) > 5 else ''}.",
                        "Give more of the id (`tuneforge jobs list` shows them whole).", code="job.ambiguous_id")
                row = rows[0][1:] if rows else None
        if row is None:
            raise JobNotFound(job_id)
        return Job.model_validate_json(row[0], context=STORED)

    def list(self, *, limit: int = 50, stage: str | None = None, backend: str | None = None) -> list[Job]:
        query, args = "SELECT data FROM jobs", []
        where = []
        if stage:
            where.append("stage = ?")
            args.append(stage)
        if backend:
            where.append("backend = ?")
            args.append(backend)
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY created_at DESC, job_id DESC LIMIT ?"
        args.append(limit)
        with self._connect() as con:
            rows = con.execute(query, args).fetchall()
        return [Job.model_validate_json(r[0], context=STORED) for r in rows]
