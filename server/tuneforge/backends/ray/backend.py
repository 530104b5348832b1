"""The `ray` backend: the same template and config as a Ray job, through Ray's JobSubmissionClient.

submit: the job folder (template, helpers, config.json) is the job's runtime_env working_dir; the
template's PEP 723 packages come through runtime_env (runtime.py; TUNEFORGE_RAY_PACKAGES=cluster uses
the cluster's own Python); GPUs and CPUs per job come from the plan (resources.py); secrets (HF_TOKEN,
the notification URL) only as env_vars given at submit. The submission id is `tuneforge-<job id>`,
fixed per tuneforge job: Ray refuses a second job with it, so a retried submit adopts the first one
and never starts the job twice.

refresh: Ray's status mapped to tuneforge's stages (STAGES); progress and the result from the
template's events in the log, which is saved (scrubbed) into the job folder on every read, so the log
survives the head. A head that does not answer leaves the job as it is, saying so; a head that answers
without the job (it restarted, and Ray keeps job state in the head) ends the job ERROR "lost: ...".

Outputs and checkpoints: the template writes to config.output_dir, an absolute path inside the job
folder; the cluster must see that path (a shared filesystem: one machine, NFS) or the run pushes to
the Hub (push_to_hub). resume reads checkpoints from there (jobs/checkpoints.py). docs/ray.md.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ...config import format_duration
from ...errors import TuneforgeError
from ...records import Job, JobSpec
from ...secrets import scrub, secret_values
from ...templates._shared.notify import NOTIFY_ENV
from ...types import TERMINAL
from ..job_files import read_state, with_result, write_state
from ..logfile import tail_lines
from ..remote_events import changes_from_events
from . import runtime
from .connection import RayConnection, RayError, env_float, is_duplicate, is_missing
from .resources import entrypoint_resources, job_flavor, train_shape

STAGES = {"PENDING": "SCHEDULING", "RUNNING": "RUNNING", "SUCCEEDED": "COMPLETED", "FAILED": "ERROR", "STOPPED": "CANCELED"}
STATE_FILE = "ray_state.json"
SUBMISSION_PREFIX = "tuneforge-"
SUBMIT_ATTEMPTS = 3
NOTIFY_CONTEXT_ENV = "TUNEFORGE_NOTIFY_CONTEXT"


def submission_id(job: Job) -> str:
    return f"{SUBMISSION_PREFIX}{job.job_id}"


def _seconds(ms: Any) -> float | None:
    return float(ms) / 1000 if ms else None


class RayBackend:
    name = "ray"

    # ---- submit ---------------------------------------------------------------------------------
    def submit(self, job: Job, spec: JobSpec) -> dict[str, Any]:
        conn = RayConnection.open()
        job_dir = Path(job.job_dir)
        env_vars = {**spec.env, "PYTHONUNBUFFERED": "1", "TUNEFORGE_JOB_ID": job.job_id, "TOKENIZERS_PARALLELISM": "false"}
        env_vars.update(self._secrets(job, spec))
        notify = bool(spec.notify_url) and (job_dir / "_notify_after.py").is_file()
        if notify:
            env_vars[NOTIFY_CONTEXT_ENV] = json.dumps({"kind": job.kind, "method": job.method, "backend": "ray",
                                                       "model": job.config.model if job.config else None,
                                                       "timeout_seconds": spec.timeout_seconds, "outputs": {}})
        num_cpus, num_gpus = entrypoint_resources(job.plan, spec)
        shape = train_shape(job_flavor(job.plan, spec))
        strategy = job.plan.distributed if job.plan is not None else None
        request = dict(
            entrypoint=runtime.entrypoint(Path(spec.script), runtime.job_args(spec.args, job_dir), spec.timeout_seconds,
                                          notify, shape, strategy),
            submission_id=submission_id(job),
            runtime_env=runtime.runtime_env(job_dir, Path(spec.script), list(spec.dependencies), env_vars),
            metadata={**{k: str(v) for k, v in spec.labels.items()}, "tuneforge-job": job.job_id},
            entrypoint_num_cpus=num_cpus,
            entrypoint_num_gpus=num_gpus,
        )
        self._create(conn, request)
        info = conn.call(lambda: conn.client.get_job_info(request["submission_id"]), f"read job {job.job_id}")
        changes = self._changes(job, info)
        changes.update(
            backend_job_id=request["submission_id"],
            url=f"{conn.address}/#/jobs/{request['submission_id']}",
            outputs={**job.outputs, "ray_address": conn.address, "ray_resources": {"num_cpus": num_cpus, "num_gpus": num_gpus},
                     **({"ray_train": {"workers": shape.workers, "cpus_per_worker": shape.cpus_per_worker,
                                       "gpus_per_worker": shape.gpus_per_worker, "nodes": shape.nodes}} if shape else {}),
                     **({"output_dir": job.config.output_dir} if job.config else {})},
        )
        return changes

    def _secrets(self, job: Job, spec: JobSpec) -> dict[str, str]:
        """The secrets the run needs, as env_vars at submit (never in the folder, the config or the record)."""
        out: dict[str, str] = {}
        if spec.hub_token:
            try:
                from huggingface_hub import get_token

                token = get_token()
            except Exception:  # noqa: BLE001
                token = None
            if token:
                out["HF_TOKEN"] = token
            elif job.push_target:
                raise RayError("The run pushes to the Hub but no Hugging Face token was found to give the Ray job.",
                               "Log in with `hf auth login` or export HF_TOKEN (it reaches the job as an environment "
                               "variable only).", code="ray.token_missing")
        if spec.notify_url:
            out[NOTIFY_ENV] = spec.notify_url
        return out

    def _create(self, conn: RayConnection, request: dict[str, Any]) -> None:
        """Submit once: a duplicate id means an earlier attempt got through (adopted); after a connection
        failure the id is looked up before any second attempt."""
        sid = request["submission_id"]
        last: RayError | None = None
        for attempt in range(SUBMIT_ATTEMPTS):
            if attempt:
                time.sleep(min(4.0, 0.5 * 2 ** attempt))
                if self._exists(conn, sid):
                    return
            try:
                conn.call(lambda: conn.client.submit_job(**request), "submit the job")
                return
            except RayError as err:
                if is_duplicate(err):
                    return  # our own earlier submission: adopt it
                if err.code != "ray.unreachable":
                    raise
                last = err
        if self._exists(conn, sid):
            return
        assert last is not None
        raise RayError(f"{last.message} (tried {SUBMIT_ATTEMPTS} times; no job was started)", last.fix, code=last.code,
                       details=last.details)

    def _exists(self, conn: RayConnection, sid: str) -> bool:
        try:
            conn.call(lambda: conn.client.get_job_info(sid), "look for an already submitted job")
            return True
        except RayError:
            return False

    # ---- status ---------------------------------------------------------------------------------
    def refresh(self, job: Job) -> dict[str, Any]:
        if job.terminal or not job.backend_job_id:
            return {} if job.terminal or time.time() - job.created_at < 60 else {
                "stage": "ERROR", "message": "the submission to Ray never completed", "finished_at": time.time()}
        try:
            conn = RayConnection.open(job.outputs.get("ray_address"))
            info = conn.call(lambda: conn.client.get_job_info(job.backend_job_id), f"check job {job.job_id}")
        except RayError as err:
            if err.code == "ray.unreachable" or err.code == "ray.connect_failed":
                return self._unreachable(job, err)
            if is_missing(err):
                return self._lost(job)
            raise
        self._write_state(job, unreachable_since=None)
        changes = self._changes(job, info)
        stage = changes["stage"]
        if stage in TERMINAL:
            lines = self._fetch(conn, job)
            changes.update(self._from_events(job, lines, stage))
            changes["outputs"] = self._outputs(job, changes.get("outputs"))
            if stage == "ERROR":
                changes["error"] = "\n".join(lines[-30:]) or None
        elif stage == "RUNNING" and self._logs_due(job):
            changes.update(self._from_events(job, self._fetch(conn, job), stage))
        return changes

    def _changes(self, job: Job, info: Any) -> dict[str, Any]:
        raw = str(getattr(info.status, "value", info.status))
        stage = STAGES.get(raw)
        ray_message = scrub((info.message or "").strip().splitlines()[0] if info.message else "", secret_values())
        changes: dict[str, Any] = {"stage": stage or job.stage}
        # Ray's start_time is when the job was submitted, queued or not: RUNNING is dated when first seen
        if stage == "RUNNING" and job.started_at is None:
            changes["started_at"] = time.time()
        elif stage in TERMINAL and job.started_at is None and _seconds(info.start_time):
            changes["started_at"] = _seconds(info.start_time)
        if stage in TERMINAL:
            changes["finished_at"] = _seconds(info.end_time) or time.time()
        if stage is None:
            changes["message"] = f"Ray reports status {raw}"
        elif stage == "SCHEDULING":
            changes["message"] = "waiting on the Ray cluster for free resources " + self._asked(job)
        elif stage == "RUNNING" and job.stage != "RUNNING":
            changes["message"] = "running on the Ray cluster"
        elif stage == "COMPLETED":
            changes["message"] = "completed"
        elif stage == "CANCELED":
            changes["message"] = "canceled (the Ray job was stopped)"
        elif stage == "ERROR":
            changes["message"] = self._failure(job, info, ray_message)
        return changes

    @staticmethod
    def _asked(job: Job) -> str:
        res = job.outputs.get("ray_resources") or {}
        if workers := job.outputs.get("ray_train"):
            return (f"({workers['workers']} Ray Train workers of {workers['cpus_per_worker']:g} CPUs and "
                    f"{workers['gpus_per_worker']:g} GPUs)")
        return f"({res.get('num_cpus')} CPUs, {res.get('num_gpus') or 0} GPUs per job)" if res else ""

    def _failure(self, job: Job, info: Any, ray_message: str) -> str:
        code = getattr(info, "driver_exit_code", None)
        if code == runtime.TIMEOUT_EXIT or (code is None and f"exit code {runtime.TIMEOUT_EXIT}" in ray_message):
            limit = job.timeout_seconds or 0
            return f"timeout: the job ran longer than its limit of {format_duration(limit)} and was stopped on the Ray cluster"
        return f"the job failed on Ray: {ray_message}" if ray_message else "the job failed on Ray"

    def _from_events(self, job: Job, lines: list[str], stage: str) -> dict[str, Any]:
        return changes_from_events(job, lines, stage, failed_on="Ray", keep_timeout_message=True)

    def _outputs(self, job: Job, outputs: dict[str, Any] | None) -> dict[str, Any]:
        """The outputs, with result.json when the cluster wrote it where this machine can read it."""
        outputs = dict(outputs or job.outputs)
        if job.config is not None:
            with_result(outputs, job.config.output_dir)
        return outputs

    def _unreachable(self, job: Job, err: RayError) -> dict[str, Any]:
        since = self._read_state(job).get("unreachable_since") or time.time()
        self._write_state(job, unreachable_since=since)
        waited = time.time() - since
        limit = env_float("TUNEFORGE_RAY_LOST_SECONDS", 900.0)
        if waited >= limit:
            return {"stage": "ERROR", "finished_at": time.time(),
                    "message": f"lost: the Ray head at {err.details.get('address')} has not answered for {int(waited)} s; "
                               f"the job's state is unknown. Resume it from its last checkpoint: `tuneforge jobs resume {job.job_id}`",
                    "error": "\n".join(tail_lines(job.log_path, 30)) or None}
        return {"message": f"the Ray head at {err.details.get('address')} does not answer (for {int(waited)} s): "
                           f"the job's state is unknown until it does"}

    def _lost(self, job: Job) -> dict[str, Any]:
        addr = job.outputs.get("ray_address")
        return {"stage": "ERROR", "finished_at": time.time(),
                "message": f"lost: the Ray cluster at {addr} no longer knows {job.backend_job_id}: its head restarted "
                           "and the job ended with it (Ray keeps job state in the head unless GCS fault tolerance is "
                           f"set up). Resume it from its last checkpoint: `tuneforge jobs resume {job.job_id}`",
                "error": "\n".join(tail_lines(job.log_path, 30)) or None}

    # ---- logs -----------------------------------------------------------------------------------
    def logs(self, job: Job, tail: int | None = None) -> list[str]:
        if (job.terminal and job.log_path.exists()) or not job.backend_job_id or tail == 0:
            return tail_lines(job.log_path, tail) if tail != 0 else []
        try:
            conn = RayConnection.open(job.outputs.get("ray_address"))
            lines = self._fetch(conn, job)
        except RayError:
            return tail_lines(job.log_path, tail)  # the copy saved at the last read
        return lines[-tail:] if tail is not None else lines

    def _fetch(self, conn: RayConnection, job: Job) -> list[str]:
        """The whole log from Ray, scrubbed, saved into the job folder (what survives the head)."""
        text = conn.call(lambda: conn.client.get_job_logs(job.backend_job_id), f"read the log of job {job.job_id}")
        lines = [scrub(line, secret_values()) for line in (text or "").splitlines()]
        self._write_state(job, logs_at=time.time())
        tmp = job.log_path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        tmp.replace(job.log_path)
        return lines

    def _logs_due(self, job: Job) -> bool:
        last = self._read_state(job).get("logs_at") or 0.0
        return time.time() - last >= env_float("TUNEFORGE_RAY_LOG_POLL_SECONDS", 5.0)

    def _read_state(self, job: Job) -> dict[str, Any]:
        return read_state(job.job_dir, STATE_FILE)

    def _write_state(self, job: Job, **values: Any) -> None:
        write_state(job.job_dir, STATE_FILE, **values)

    # ---- cancel ---------------------------------------------------------------------------------
    def cancel(self, job: Job) -> dict[str, Any]:
        sid = job.backend_job_id or submission_id(job)  # a submission that never answered may still have started
        conn = RayConnection.open(job.outputs.get("ray_address"))
        try:
            conn.call(lambda: conn.client.stop_job(sid), f"stop job {job.job_id}")
        except RayError as err:
            if not is_missing(err):  # never started, or already gone: what we wanted
                raise
            return {}
        try:  # the log so far stays with the job (a canceled record is not refreshed again)
            self._fetch(conn, job.model_copy(update={"backend_job_id": sid}))
        except RayError:
            pass
        return {"backend_job_id": sid, "message": "canceled by request (Ray job stopped)"}


__all__ = ["RayBackend", "STAGES", "submission_id", "TuneforgeError"]
