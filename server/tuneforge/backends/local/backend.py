"""The `local` backend: each job runs detached on this machine.

`submit` starts a supervisor (`python -m tuneforge.backends.local_runner JOB_ID`) in a new session, so
the job survives the CLI exiting and MCP server restarts. The supervisor waits for the device slot
(one training job at a time on this machine), runs the script in its own process group with output
to the job's log, turns the script's structured events into progress on the job record, enforces the
timeout and writes the final stage. `refresh` catches a supervisor that died (kill -9, OOM): such a
job becomes ERROR with the log tail, never RUNNING forever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from ..records import Job
from ..records import JobSpec

SPEC_FILE = "spec.json"
#: how long a fresh job may go without a supervisor pid before it is declared dead
START_GRACE_SECONDS = 60.0
#: how long processes get between SIGTERM and SIGKILL
KILL_GRACE_SECONDS = 10.0


def create_backend() -> "LocalBackend":
    return LocalBackend()


def process_alive(pid: int | None, started: float | None = None) -> bool:
    """True when pid runs and (if given) was created at `started`: a reused pid is not our process."""
    if not pid:
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - started) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def group_alive(pgid: int | None) -> bool:
    if not pgid:
        return False
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def kill_group(pgid: int | None, grace: float = KILL_GRACE_SECONDS, leader: "subprocess.Popen[bytes] | None" = None) -> None:
    """SIGTERM the whole process group, then SIGKILL whatever is left after `grace` seconds.

    `leader` is the group leader when we are its parent: it is reaped while waiting, since an unreaped
    (zombie) leader keeps the group looking alive."""
    if not pgid:
        return
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()
        if not group_alive(pgid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def tail_lines(path: Path, n: int | None) -> list[str]:
    """The last n lines of a text file (all when n is None), read without loading a huge log whole."""
    if not path.exists():
        return []
    if n is None:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    if n <= 0:
        return []
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        block, data = 65536, b""
        while size > 0 and data.count(b"\n") <= n:
            step = min(block, size)
            size -= step
            fh.seek(size)
            data = fh.read(step) + data
    return list(deque(data.decode("utf-8", errors="replace").splitlines(), maxlen=n))


class LocalBackend:
    name = "local"

    def submit(self, job: Job, spec: JobSpec) -> dict[str, Any]:
        import psutil

        job_dir = Path(job.job_dir)
        (job_dir / SPEC_FILE).write_text(spec.model_dump_json(indent=2), encoding="utf-8")
        env = dict(os.environ)
        env.setdefault("TUNEFORGE_HOME", str(job_dir.parent.parent))
        with open(job_dir / "supervisor.log", "ab") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tuneforge.backends.local_runner", job.job_id],
                cwd=job_dir,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                env=env,
                start_new_session=True,  # survives the CLI; its own process group
                close_fds=True,
            )
        try:
            started = psutil.Process(proc.pid).create_time()
        except psutil.NoSuchProcess:
            started = None
        return {"pid": proc.pid, "pid_started": started, "message": "queued"}

    def refresh(self, job: Job) -> dict[str, Any]:
        if job.terminal:
            return {}
        if job.pid is None:
            if time.time() - job.created_at < START_GRACE_SECONDS:
                return {}
            return self._died(job, "the job never started (no supervisor process was recorded)")
        if process_alive(job.pid, job.pid_started):
            return {}
        return self._died(job, "the job's process died unexpectedly (killed, out of memory, or the machine restarted)")

    def _died(self, job: Job, why: str) -> dict[str, Any]:
        kill_group(job.pgid, grace=2.0)  # leave no orphaned training process behind
        tail = "\n".join(tail_lines(job.log_path, 30))
        return {"stage": "ERROR", "message": why, "error": tail or None, "finished_at": time.time()}

    def logs(self, job: Job, tail: int | None = None) -> list[str]:
        return tail_lines(job.log_path, tail)

    def cancel(self, job: Job) -> dict[str, Any]:
        # The job record is already CANCELED (the service writes that first); now stop the processes.
        if job.pid and process_alive(job.pid, job.pid_started):
            try:
                os.kill(job.pid, signal.SIGTERM)  # the supervisor stops its child group and exits
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + KILL_GRACE_SECONDS + 5
            while time.monotonic() < deadline and process_alive(job.pid, job.pid_started):
                time.sleep(0.1)
            if process_alive(job.pid, job.pid_started):
                try:
                    os.killpg(job.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        kill_group(job.pgid, grace=2.0)
        return {}
