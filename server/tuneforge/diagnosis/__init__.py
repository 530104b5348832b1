"""Why a training run failed, and what to change: a log (ours or any TRL/transformers script's) -> a Diagnosis.

A leaf-level package (it imports only leaves: reports/, config/, log_lines, progress, secrets, errors).
`rules.py` holds the patterns of each kind, `signals.py` turns log lines into clean text and losses,
`fixes.py` the fix and the retry's config change, `classify.py` the choice between kinds, `reading.py` a
bounded read of a log file.
"""

from __future__ import annotations

from pathlib import Path

from ..config import RunConfig
from ..reports.diagnosis import KINDS, Diagnosis
from .classify import diagnose_lines
from .reading import read_log, read_run_config


def diagnose_file(path: str | Path, config: RunConfig | None = None) -> Diagnosis:
    """Classify the log file at `path` (its last reading.MAX_BYTES)."""
    return diagnose_lines(read_log(path), config)


__all__ = ["Diagnosis", "KINDS", "diagnose_lines", "diagnose_file", "read_log", "read_run_config"]
