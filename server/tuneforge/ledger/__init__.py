"""The ledger (core): every finished run, with its config hash, data hash, base revision, metrics, cost,
duration and artifacts, and the notes of what was learned. One table next to the job records (the same
SQLite file), filled when a job reaches a terminal stage; exported and imported as JSON Lines.
"""

from .model import LedgerRun, Note, RunDiff
from .store import Ledger

__all__ = ["Ledger", "LedgerRun", "Note", "RunDiff"]
