"""Run a command, then POST a notification of how it ended: `python3 _notify_after.py -- CMD ARGS...`.

What a cloud job runs when the user asked for a notification (backends/hf/backend.py wraps the job's
command in it), so the message goes out from the job itself, with no tuneforge process on the user's
machine. Stdlib only (the uv image's python3 runs it before uv builds the template's environment).

The command runs as a child: its output passes through line by line (the job log is unchanged) and the
last lines are kept for the message; SIGTERM/SIGINT (a cancel, or the platform's time limit) are passed
on to it. When it exits, whatever its status, the summary (job id, stage, the result event's metrics
and outputs, the error, the cost from the elapsed time) is sent with `_shared.notify.send` (bounded
retries, never raising), and the wrapper exits with the child's own exit status.

Environment: TUNEFORGE_NOTIFY_URL (a secret; nothing is sent without it), TUNEFORGE_JOB_ID, and
TUNEFORGE_NOTIFY_CONTEXT (JSON, not secret: kind, method, backend, model, url, price_per_hour,
timeout_seconds).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _shared.events import EVENT_PREFIX  # noqa: E402
from _shared.notify import NOTIFY_ENV, send, summary  # noqa: E402

TAIL_LINES = 40
#: a stop this close to the time limit is the limit, not a cancel
TIMEOUT_MARGIN_SECONDS = 60
#: a stopped job's container does not wait long: send within this
STOPPED_BUDGET_SECONDS = 15.0


def _events(line: str, seen: dict) -> None:
    if not line.startswith(EVENT_PREFIX):
        return
    try:
        event = json.loads(line[len(EVENT_PREFIX):])
    except ValueError:
        return
    if event.get("type") == "result":
        seen["result"] = {k: v for k, v in event.items() if k != "type"}
    elif event.get("type") == "status" and str(event.get("message", "")).startswith("error:"):
        seen["error"] = str(event["message"])[len("error:"):].strip()


def _failure(lines: list[str], seen: dict, rc: int) -> str:
    if seen.get("error"):
        return seen["error"]
    for line in reversed(lines):
        if not line.startswith(EVENT_PREFIX) and ("Error" in line or "error:" in line.lower()):
            return line.strip()[:300]
    return f"the training process exited with code {rc}"


def run(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: python3 _notify_after.py -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    context = {}
    try:
        context = json.loads(os.environ.get("TUNEFORGE_NOTIFY_CONTEXT") or "{}")
    except ValueError:
        pass
    child_env = {k: v for k, v in os.environ.items() if k != NOTIFY_ENV}  # the training script never sees the URL
    started = time.time()
    stopped: list[int] = []
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=child_env)

    def on_signal(signum: int, frame: object) -> None:
        stopped.append(signum)
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    seen: dict = {}
    assert child.stdout is not None
    for raw in iter(child.stdout.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        sys.stdout.write(line)
        sys.stdout.flush()
        line = line.rstrip("\n")
        tail.append(line)
        _events(line, seen)
    rc = child.wait()
    elapsed = time.time() - started
    limit = context.get("timeout_seconds")
    if stopped and limit and elapsed >= float(limit) - TIMEOUT_MARGIN_SECONDS:
        stage, message = "ERROR", f"timeout: the job ran into its time limit of {int(limit)} s and was stopped"
    elif stopped:
        stage, message = "CANCELED", "canceled"
    elif rc == 0:
        stage, message = "COMPLETED", "completed"
    else:
        stage, message = "ERROR", _failure(list(tail), seen, rc)
    price = context.get("price_per_hour")
    payload = summary(
        job_id=os.environ.get("TUNEFORGE_JOB_ID") or context.get("job_id") or "?",
        stage=stage, kind=context.get("kind") or "train", method=context.get("method"), backend=context.get("backend"),
        model=context.get("model"), message=message,
        error="\n".join(tail) if stage == "ERROR" else None, result=seen.get("result"),
        outputs=context.get("outputs"), cost_usd=round(elapsed / 3600 * float(price), 4) if price else None,
        elapsed_seconds=round(elapsed, 1), url=context.get("url"),
    )
    url = os.environ.get(NOTIFY_ENV)
    if url:
        send(url, payload, budget=STOPPED_BUDGET_SECONDS if stopped else 45.0)
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:]))
