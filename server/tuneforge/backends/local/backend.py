"""The `local` backend: each job runs detached on this machine.

`submit` starts a supervisor (`python -m tuneforge.backends.local.runner JOB_ID`) in a new session, so
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
from pathlib import Path
from typing import Any

from ...records import Job, JobSpec
from ...templates._shared.notify import NOTIFY_ENV
from ..logfile import tail_lines
from .processes import KILL_GRACE_SECONDS, kill_group, process_alive

SPEC_FILE = "spec.json"
#: how long a fresh job may go without a supervisor pid before it is declared dead
START_GRACE_SECONDS = 60.0


class LocalBackend:
    name = "local"

    def submit(self, job: Job, spec: JobSpec) -> dict[str, Any]:
        import psutil

        job_dir = Path(job.job_dir)
        (job_dir / SPEC_FILE).write_text(spec.model_dump_json(indent=2), encoding="utf-8")
        env = dict(os.environ)
        env.setdefault("TUNEFORGE_HOME", str(job_dir.parent.parent))
        # The notification URL is a secret: spec.json leaves it out (exclude=True); only the supervisor's
        # environment carries it, and the supervisor keeps it from the training script.
        env.pop(NOTIFY_ENV, None)
        if spec.notify_url:
            env[NOTIFY_ENV] = spec.notify_url
        # The supervisor starts with SIGTERM blocked (the mask survives exec) and unblocks it once its handler
        # is set: a cancel right after submit then ends the job the orderly way (CANCELED, notified).
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            with open(job_dir / "supervisor.log", "ab") as err:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "tuneforge.backends.local.runner", job.job_id],
                    cwd=job_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=err,
                    env=env,
                    start_new_session=True,  # survives the CLI; its own process group
                    close_fds=True,
                )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
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
