"""Structured events printed by training templates, read back exactly by status.

A template prints one line per event: the fixed prefix, a space, then one JSON object.
`{"type": "progress", ...}` lines carry step, total_steps, epoch, loss, learning_rate,
tokens_per_second and eta_seconds; `{"type": "status", "message": ...}` lines say what the script is
doing (loading model, evaluating...); `{"type": "eval", ...}` lines carry eval_loss; one
`{"type": "result", ...}` line repeats result.json for backends that only see the log. Any other
line in a log is ignored here: no tqdm scraping.

The prefix lives in templates/_shared/events.py, which ships next to every template (they run alone in
the cloud, without tuneforge) and which the server imports from here.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, NamedTuple

from .templates._shared.events import EVENT_PREFIX

__all__ = ["EVENT_PREFIX", "LastEvents", "last_events", "parse_event"]


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


class LastEvents(NamedTuple):
    """What a stretch of log says last: the latest progress event (without its type), status message and result."""

    progress: dict[str, Any] | None
    message: str | None
    result: dict[str, Any] | None


def last_events(lines: Iterable[str]) -> LastEvents:
    """Reduce log lines to their last progress event, status message and result event."""
    progress: dict[str, Any] | None = None
    message: str | None = None
    result: dict[str, Any] | None = None
    for line in lines:
        ev = parse_event(line)
        if ev is None:
            continue
        body = {k: v for k, v in ev.items() if k != "type"}
        if ev["type"] == "progress" and isinstance(body.get("step"), int):
            progress = body
        elif ev["type"] == "status" and isinstance(body.get("message"), str):
            message = body["message"]
        elif ev["type"] == "result":
            result = body
    return LastEvents(progress, message, result)
