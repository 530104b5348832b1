"""Job logs as people read them: without event lines and terminal noise, and the cause of a failure in one line.

A leaf module shared by both backends and the job service. The raw log is never changed (`--raw` shows
it all); this only decides what a status tail, `jobs logs` and a failed job's message show.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .progress import parse_event

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
#: a tqdm-style bar: "Epoch 1:  50%|#####     | 5/10 [...]" or "Map: 100%|██████████| 40/40"
PROGRESS_BAR = re.compile(r"^\s*[^|]{0,80}\d{1,3}%\|.*\|")
TRACEBACK_START = "Traceback (most recent call last):"
#: the last line of a Python traceback: "pkg.mod.SomeError: message" (or the bare exception name)
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Enabled|NotFound|Warning)\b(?::\s*(?P<msg>.*))?$")


def visible(line: str) -> str:
    """The text a terminal would show last on this line: ANSI codes out, only the final carriage-return segment."""
    line = ANSI.sub("", line)
    if "\r" in line:
        parts = [p for p in line.split("\r") if p.strip()]
        line = parts[-1] if parts else ""
    return line.rstrip()


def clean_lines(lines: Iterable[str]) -> list[str]:
    """Lines worth reading: no event lines, no ANSI codes, no progress bars, tracebacks cut to their last line."""
    out: list[str] = []
    in_traceback = False
    for raw in lines:
        if parse_event(raw) is not None:
            continue
        line = visible(raw)
        if not line.strip() or PROGRESS_BAR.match(line):
            continue
        if line.startswith(TRACEBACK_START):
            in_traceback = True
            continue
        if in_traceback:
            if line.startswith((" ", "\t")) or line.startswith(("During handling", "The above exception")) or not line.strip():
                continue
            in_traceback = False  # the exception line itself: kept
        out.append(line)
    return out


def failure_cause(lines: list[str]) -> str | None:
    """Why a run failed, in one line: the template's own error (it names the fix), else the final
    exception of the last traceback, else the last line the script wrote to say ERROR."""
    template_error = None
    for line in lines:
        event = parse_event(line)
        if event and event.get("type") == "status" and str(event.get("message", "")).startswith("error:"):
            template_error = str(event["message"])[len("error:"):].strip()
    if template_error:
        return template_error
    seen_traceback = False
    exception = None
    for raw in lines:
        line = visible(raw)
        if line.startswith(TRACEBACK_START):
            seen_traceback = True
        elif seen_traceback and not line.startswith((" ", "\t")) and EXCEPTION_LINE.match(line):
            exception = line
    if exception:
        return exception[:500]
    errors = [visible(x) for x in lines if visible(x).startswith(("ERROR:", "Error:", "error:"))]
    return errors[-1][:500] if errors else None


def failure_message(lines: list[str], what_happened: str, job_id: str) -> str:
    """A failed job's status message: the cause in one line first, then what happened and where the whole log is."""
    cause = failure_cause(lines)
    where = f"the full log: `tuneforge jobs logs {job_id} --raw`"
    return f"{cause} ({what_happened}; {where})" if cause else f"{what_happened}; {where}"
