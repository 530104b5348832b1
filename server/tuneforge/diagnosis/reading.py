"""Reading a log file for the diagnosis: the last MAX_BYTES of it (a root cause sits near the end, and a
training log may be gigabytes), as lines; a missing or unreadable file is a clear error."""

from __future__ import annotations

import os
from pathlib import Path

from ..config import RunConfig, config_error, load_mapping
from ..config.schema import STORED
from ..errors import TuneforgeError

#: how much of the end of a log is read (the first, partial line of the window is dropped)
MAX_BYTES = 4 << 20


def read_log(path: str | Path, max_bytes: int = MAX_BYTES) -> list[str]:
    """The lines of the last `max_bytes` of a log file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise TuneforgeError(f"No log file at {p}.", "Give the path of a training log (a job's is "
                             "$TUNEFORGE_HOME/jobs/ID/job.log; `tuneforge jobs logs ID --all --raw` prints it).",
                             code="diagnose.log_not_found", details={"path": str(p)})
    if p.is_dir():
        raise TuneforgeError(f"{p} is a folder, not a log file.", "Give the path of the log file itself, e.g. "
                             f"{p / 'job.log'}.", code="diagnose.log_is_folder", details={"path": str(p)})
    try:
        with p.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            start = max(0, size - max_bytes)
            fh.seek(start)
            data = fh.read()
    except OSError as exc:
        raise TuneforgeError(f"Cannot read the log file {p}: {exc.strerror or exc}.",
                             "Check the path and its permissions.", code="diagnose.log_unreadable",
                             details={"path": str(p)}) from exc
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[1:] if start > 0 and lines else lines


def read_run_config(path: str | Path) -> RunConfig:
    """A run's config file (YAML or JSON) read as it was run: paths in it are not checked again here."""
    from pydantic import ValidationError

    try:
        return RunConfig.model_validate(load_mapping(path), context=STORED)
    except ValidationError as exc:
        raise config_error(exc, str(path)) from None


__all__ = ["read_log", "read_run_config", "MAX_BYTES"]
