"""The one SQLite file under $TUNEFORGE_HOME that every store shares (jobs, pipelines, sweeps, the ledger).

One connection rule for all of them: WAL (readers never block the writer), a long busy timeout (the CLI, the
MCP server and detached supervisors and drivers write at the same time), autocommit unless a store opens its
own transaction.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Iterator

from .. import paths

DB_NAME = "jobs.sqlite3"


def database_file(explicit: Path | None = None) -> Path:
    """The database file (the given one, or the default under $TUNEFORGE_HOME), its folder made."""
    path = Path(explicit) if explicit else paths.home() / DB_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    con = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA busy_timeout=60000")
        con.execute("PRAGMA synchronous=NORMAL")
        yield con
    finally:
        con.close()


class SqliteStore:
    """A store of one kind of record in the shared file: its tables (SCHEMA) made on first use."""

    SCHEMA: str = ""

    def __init__(self, db_path: Path | None = None):
        self.db_path = database_file(db_path)
        with self._connect() as con:
            con.executescript(self.SCHEMA)

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return connect(self.db_path)
