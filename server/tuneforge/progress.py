"""Structured events printed by training templates, read back exactly by status.

A template prints one line per event: the fixed prefix, a space, then one JSON object.
`{"type": "progress", ...}` lines carry step, total_steps, epoch, loss, learning_rate,
tokens_per_second and eta_seconds; `{"type": "status", "message": ...}` lines say what the script is
doing (loading model, evaluating...). Any other line in a log is ignored here: no tqdm scraping.

The templates cannot import tuneforge (they run alone in the cloud), so they repeat the prefix; a test
checks the two agree.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict

EVENT_PREFIX = "##tuneforge-event "


class ProgressEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    step: int
    total_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    learning_rate: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None
    eval_loss: float | None = None
    time: float | None = None


def parse_event(line: str) -> dict[str, Any] | None:
    """The event on this log line, or None when the line is not an event (or is damaged)."""
    idx = line.find(EVENT_PREFIX)
    if idx < 0:
        return None
    try:
        obj = json.loads(line[idx + len(EVENT_PREFIX):])
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and "type" in obj else None


def latest(lines: Iterable[str]) -> tuple[ProgressEvent | None, str | None]:
    """The last progress event and the last status message among these lines."""
    progress: ProgressEvent | None = None
    message: str | None = None
    for line in lines:
        ev = parse_event(line)
        if ev is None:
            continue
        if ev["type"] == "progress":
            try:
                progress = ProgressEvent.model_validate({k: v for k, v in ev.items() if k != "type"})
            except ValueError:
                continue
        elif ev["type"] == "status" and isinstance(ev.get("message"), str):
            message = ev["message"]
    return progress, message
