"""The detached supervisor of one local job: `python -m tuneforge.backends.local.runner JOB_ID`.

It waits for the device slot, runs the job's script in a process group of its own with stdout and
stderr going to the job log, follows that log for structured events, enforces the timeout and writes
the final stage. Every write uses `only_if_active`, so a job canceled meanwhile stays CANCELED.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ... import paths
from ...config import format_duration
from ...log_lines import failure_message
from ...progress import last_events
from ...records import Job, JobSpec, JobStore
from ...secrets import secret_values, without_token
from ...templates._shared.checkpoints import local_resume_point
from ...templates._shared.notify import NOTIFY_ENV
from ..job_files import with_result
from ..logfile import ScrubbedLog, tail_lines
from .backend import SPEC_FILE
from .processes import kill_group

POLL_SECONDS = 0.25


class Supervisor:
    def __init__(self, job_id: str):
        self.store = JobStore()
        self.job: Job = self.store.get(job_id)
        self.job_dir = Path(self.job.job_dir)
        self.spec = JobSpec.model_validate_json((self.job_dir / SPEC_FILE).read_text(encoding="utf-8"))
        self.stop_requested = False
        self.child: subprocess.Popen[bytes] | None = None
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # held since the start (backend.submit)

    def _on_term(self, signum: int, frame: object) -> None:
        self.stop_requested = True

    def update(self, **changes: object) -> Job | None:
        job = self.store.update(self.job.job_id, only_if_active=True, **changes)
        if job is not None:
            self.job = job
        return job

    # ---- the device slot ------------------------------------------------------------------------
    def acquire_slot(self) -> object | None:
        lock_dir = paths.home() / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        fh = open(lock_dir / "device.lock", "w")
        said_waiting = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fh
            except BlockingIOError:
                pass
            if self.stop_requested or self.store.get(self.job.job_id).terminal:
                fh.close()
                return None
            if not said_waiting:
                self.update(message="waiting for the running local job to finish (one training job at a time)")
                said_waiting = True
            time.sleep(POLL_SECONDS)

    # ---- running --------------------------------------------------------------------------------
    def run(self) -> int:
        slot = self.acquire_slot()
        if slot is None:
            return 0
        started = time.time()
        if self.update(stage="RUNNING", started_at=started, message="starting") is None:
            return 0  # canceled while waiting
        env = dict(os.environ) if self.spec.hub_token else without_token(os.environ, nowhere=self.job_dir / ".no-hf-token")
        env.pop(NOTIFY_ENV, None)  # the URL stays with the supervisor (notify below), never the script
        env.pop("TUNEFORGE_PRICE_PER_HOUR", None)  # this machine is free: a budget is recorded, never enforced
        env.update(self.spec.env)
        env.setdefault("TRACKIO_DIR", str(paths.home() / "trackio"))  # Trackio's local mode logs here
        env.update({"PYTHONUNBUFFERED": "1", "TUNEFORGE_JOB_ID": self.job.job_id, "TOKENIZERS_PARALLELISM": "false"})
        rc, timed_out = self.attempt(env, started)
        while timed_out and not self.stop_requested and self.restart_from_checkpoint():  # --max-restarts
            rc, timed_out = self.attempt(env, time.time())  # each attempt has the whole time limit
        self.finish(rc, timed_out)
        return 0

    def attempt(self, env: dict[str, str], started: float) -> tuple[int, bool]:
        """Run the script once: (its exit status, whether it ran past the time limit)."""
        self.child = subprocess.Popen(
            [sys.executable, str(self.spec.script), *self.spec.args],
            cwd=self.job_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own group: cancel and timeout end it and all it spawned
        )
        self.update(pgid=self.child.pid)
        log = ScrubbedLog(self.child.stdout, self.job.log_path, secret_values(os.environ))
        timeout = self.job.timeout_seconds
        timed_out = False
        while self.child.poll() is None:
            self.absorb(log.new_lines())
            if self.stop_requested:
                break
            if timeout and time.time() - started > timeout:
                timed_out = True
                break
            time.sleep(POLL_SECONDS)
        if self.child.poll() is None:
            kill_group(self.child.pid, leader=self.child)
        rc = self.child.wait()
        kill_group(self.child.pid, grace=2.0, leader=self.child)  # stragglers the script left (data loader workers...)
        log.close()
        self.absorb(log.new_lines())
        return rc, timed_out

    def restart_from_checkpoint(self) -> bool:
        """After a timeout with restarts left (the job's max_restarts): point the job's config at its newest
        complete checkpoint and say so; False when there are none left or there is no checkpoint."""
        config = self.job.config
        if config is None or self.job.restarts >= self.job.max_restarts or "--config" not in self.spec.args:
            return False
        point = local_resume_point(config.output_dir, config.resume_from_checkpoint)
        if point is None:
            return False
        config = config.model_copy(update={"resume_from_checkpoint": point[0]})
        config.write(self.job_dir / self.spec.args[self.spec.args.index("--config") + 1])
        n = self.job.restarts + 1
        return self.update(config=config, restarts=n, progress=None, message=f"timeout: restarting from step {point[1]} "
                           f"(restart {n} of {self.job.max_restarts})") is not None

    def absorb(self, lines: list[str]) -> None:
        progress, message, _result = last_events(lines)  # the result arrives as result.json
        changes: dict[str, object] = {}
        if progress is not None:
            changes["progress"] = progress
        if message is not None:
            changes["message"] = message
        if changes:
            self.update(**changes)

    def finish(self, rc: int, timed_out: bool) -> None:
        now = time.time()
        outputs = self.read_outputs()
        if self.stop_requested and not timed_out:
            self.update(stage="CANCELED", message="canceled", finished_at=now, outputs=outputs)
            return
        if timed_out:
            limit = self.job.timeout_seconds or 0
            self.update(
                stage="ERROR",
                message=f"timeout: the job ran longer than its limit of {format_duration(limit)} ({limit} s) and was stopped",
                error="\n".join(tail_lines(self.job.log_path, 30)) or None,
                finished_at=now,
                outputs=outputs,
            )
            return
        if rc == 0:
            self.update(stage="COMPLETED", message="completed", finished_at=now, outputs=outputs)
            return
        if rc < 0:
            name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
            why = f"the training process was killed by {name}" + (" (often: out of memory)" if name == "SIGKILL" else "")
        else:
            why = f"the training process exited with code {rc}"
        self.update(
            stage="ERROR",
            message=failure_message(tail_lines(self.job.log_path, 200), why, self.job.job_id),
            error="\n".join(tail_lines(self.job.log_path, 30)) or None,
            finished_at=now,
            outputs=outputs,
        )

    def notify(self) -> None:
        """Hand the ended job to the notification sender, a process of its own in a new session: it builds the
        summary from the final status (diagnosis included) and POSTs it with retries, so the notification
        neither delays this supervisor nor dies with it when `jobs cancel` stops it."""
        url = os.environ.get(NOTIFY_ENV)
        job = self.store.get(self.job.job_id)
        if not url or not job.notify or not job.terminal:
            return
        subprocess.Popen([sys.executable, "-m", "tuneforge.jobs.notification", job.job_id], cwd=self.job_dir,
                         stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True)

    def read_outputs(self) -> dict[str, object]:
        """The job's outputs plus its output folder and result.json (the service made the folder absolute)."""
        outputs: dict[str, object] = dict(self.job.outputs)
        if self.job.config is None:
            return outputs
        out = Path(self.job.config.output_dir)
        outputs["output_dir"] = str(out)
        return with_result(outputs, out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m tuneforge.backends.local.runner JOB_ID", file=sys.stderr)
        return 2
    supervisor = Supervisor(argv[0])
    try:
        return supervisor.run()
    finally:
        supervisor.notify()  # every terminal stage: completed, failed, timed out, canceled (queued or running)


if __name__ == "__main__":
    raise SystemExit(main())
