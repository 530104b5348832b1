"""The structured event lines a template prints (tuneforge status reads them exactly) and its one way to stop.

This and every other `_*.py` helper beside the templates, with the `_shared/` package, is copied next to
the template in its job folder (tuneforge/jobs/workspace.py) and imports only the standard library at
import time.
"""

from __future__ import annotations

import json
import os
import sys

from _shared.events import EVENT_PREFIX


def emit(kind: str, **fields) -> None:
    """One machine-readable line (rank 0 only); tuneforge status reads these exactly."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    print(EVENT_PREFIX + json.dumps({"type": kind, **fields}, default=float), flush=True)


def fail(message: str) -> None:
    """Stop the run: an error status event, the message on stderr, exit status 2."""
    emit("status", message=f"error: {message}")
    print(f"ERROR: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)
