"""The `hf` backend: the same template and config on Hugging Face Jobs, through `huggingface_hub`.

submit: checks the token (present, not read-only), the account (paid plan, may push to the target)
and that the flavor exists (live hardware list; the launch was fixed by the plan), uploads the template,
a cloud copy of the config and any local inputs to the account's private `jobs-artifacts` bucket
(one folder per tuneforge job, mounted at /data), then `run_job`s `uv run /data/<template> --config
/data/config.json` with the token as the HF_TOKEN secret and the label tuneforge-job=<id>. With a
notification URL, that command runs under `python3 /data/_notify_after.py --` (the job POSTs its own
summary when the script ends, whatever its exit status) and the URL travels only as the
TUNEFORGE_NOTIFY_URL secret. A failed
submission whose outcome is unknown (5xx, timeout) is retried only after listing jobs with that label:
an existing job is adopted, never duplicated.

refresh: the job's stage from `inspect_job`; progress, status messages and the result from the
template's structured events in the log (`fetch_job_logs`, the last lines only, at most every
LOG_POLL_SECONDS while running). At the end the whole log is saved to the job folder.

The token is read when needed (connection.py) and never written anywhere.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from ...config import format_duration
from ...config.guards import BUDGET_GRACE_SECONDS, PRICE_ENV, budget_seconds
from ...errors import ConfigError, TuneforgeError
from ...flavors import flavor_names, gpus_of
from ...records import Job, JobSpec
from ...templates._shared.notify import NOTIFY_ENV
from ...types import TERMINAL
from ..job_files import read_state, write_state
from ..logfile import tail_lines
from ..remote_events import changes_from_events
from .account import check_account
from .connection import HubConnection, env_float
from .errors import HubError, backoff_seconds, scrub
from .payload import MOUNT, build_payload

JOB_LABEL = "tuneforge-job"
UV_IMAGE = "ghcr.io/astral-sh/uv:python3.12-bookworm"  # what run_uv_job uses; uv reads the template's PEP 723 header
RETRIES = 3  # for calls that are safe to repeat
SUBMIT_ATTEMPTS = 3
LOG_SCAN_LINES = 200  # how far back refresh looks for the last progress event
STATE_FILE = "hf_state.json"
ADOPT_GRACE_SECONDS = 600  # a record with no HF job id after this long: the submission never finished
REUSE_LOG_SECONDS = 5.0  # `status` refreshes then reads the tail: one log read serves both
HUB_FRAME = "===== Job finished"  # the Hub's last log line (huggingface_hub drops the "===== Job started" one)
NOTIFY_WRAPPER = "_notify_after.py"  # templates/_notify_after.py, shipped with every template's helpers
NOTIFY_CONTEXT_ENV = "TUNEFORGE_NOTIFY_CONTEXT"

STAGES = {
    "SCHEDULING": "SCHEDULING",
    "RUNNING": "RUNNING",
    "UPDATING": "RUNNING",
    "COMPLETED": "COMPLETED",
    "ERROR": "ERROR",
    "CANCELED": "CANCELED",
    "DELETED": "CANCELED",  # removed on the Hub by someone: stopped, not failed
}


def _ts(value: dt.datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


class HfJobsBackend:
    name = "hf"

    def __init__(self) -> None:
        # job id -> (when, tail asked (None: all), lines): the last log read, reused by a status call's second read
        self.recent_logs: dict[str, tuple[float, int | None, list[str]]] = {}

    @staticmethod
    def namespace(job: Job) -> str:
        ns = (job.outputs or {}).get("hf_namespace")
        if not ns and job.url and "/jobs/" in job.url:
            ns = job.url.rsplit("/jobs/", 1)[1].split("/")[0]
        if not ns:
            raise TuneforgeError(f"Job {job.job_id} does not record its Hugging Face namespace.", "Check it at its URL on huggingface.co/jobs.",
                                 code="hf.namespace_unknown")
        return ns

    # ---- submit ---------------------------------------------------------------------------------
    def submit(self, job: Job, spec: JobSpec) -> dict[str, Any]:
        from huggingface_hub import Volume, constants

        hub = HubConnection.open()
        me = hub.whoami(retries=RETRIES)
        ns = me["name"]
        check_account(me, job.push_target)
        flavor = self._flavor(hub, spec.flavor)
        payload = build_payload(job, spec)

        bucket = f"{ns}/{constants.HF_JOBS_ARTIFACTS_BUCKET_NAME}"
        folder = job.job_id  # fixed per tuneforge job: a retried upload overwrites, never duplicates
        hub.call(lambda: hub.api.create_bucket(bucket, private=True, exist_ok=True, token=hub.token), "create the private jobs-artifacts bucket", retries=RETRIES)
        check_private(hub, bucket)
        adds = [(path, f"{folder}/{remote}") for remote, path in sorted(payload.files.items())]
        hub.call(lambda: hub.api.batch_bucket_files(bucket, add=adds, token=hub.token), f"upload the template, config and inputs ({payload.total_bytes / 1e6:.1f} MB)", retries=RETRIES)

        deps = [x for dep in spec.dependencies for x in ("--with", dep)]
        command = ["uv", "run", *deps, *payload.argv]
        env = {**spec.env, "PYTHONUNBUFFERED": "1", "TUNEFORGE_JOB_ID": job.job_id}
        price_env, timeout = budget_env(job, spec.timeout_seconds)  # the template's budget guard, the Hub's backstop
        env.update(price_env)
        secrets = {"HF_TOKEN": hub.token}
        if spec.notify_url and NOTIFY_WRAPPER in payload.files:  # the job notifies by itself, however the script ends
            command = ["python3", f"{MOUNT}/{NOTIFY_WRAPPER}", "--", *command]
            env[NOTIFY_CONTEXT_ENV] = notify_context(job, spec)
            secrets[NOTIFY_ENV] = spec.notify_url
        run = dict(
            image=UV_IMAGE,
            command=command,
            env=env,
            secrets=secrets,
            flavor=flavor,
            timeout=timeout,
            name=job.job_id,
            labels={**spec.labels, JOB_LABEL: job.job_id},
            volumes=[Volume(type="bucket", source=bucket, mount_path=MOUNT, path=folder, read_only=True)],
            namespace=ns,
            token=hub.token,
        )
        info = self._create(hub, ns, job.job_id, run)
        changes = self._changes(hub, job, info)
        changes.update(
            backend_job_id=info.id,
            url=info.url,
            flavor=flavor,
            outputs={
                **job.outputs,
                "hf_namespace": ns,
                "hub_repo": job.push_target,
                "hub_url": f"{hub.endpoint}/{job.push_target}",
                "artifacts": f"{hub.endpoint}/buckets/{bucket}/tree/{folder}",
            },
            uploads=payload.uploads(),
        )
        if timeout != spec.timeout_seconds:
            changes["timeout_seconds"] = timeout
        return changes

    def _flavor(self, hub: HubConnection, flavor: str | None) -> str:
        """The flavor, checked against the live hardware list (the table when it is unreachable)."""
        if not flavor:
            raise ConfigError(
                "No hardware flavor for the Hugging Face job (no plan was available to choose one).",
                "Pass --flavor, e.g. a10g-large (24 GB) or a100-large (80 GB); `hf jobs hardware` lists them all.",
                code="hf.flavor_missing",
            )
        known: set[str] = set()
        try:
            known = {hw.name for hw in hub.call(lambda: hub.api.list_jobs_hardware(token=hub.token), "list Hugging Face Jobs hardware", retries=1)}
        except HubError as err:
            if err.status in (401, 402, 403):
                raise
        known = known or set(flavor_names())
        if flavor not in known:
            gpu = sorted(n for n in known if gpus_of(n)) or sorted(known)
            raise ConfigError(f"Unknown Hugging Face Jobs flavor {flavor!r}.", f"Use one of: {', '.join(gpu)} (GPU), or cpu-basic/cpu-upgrade.",
                              code="hf.unknown_flavor")
        return flavor

    def _create(self, hub: HubConnection, ns: str, job_id: str, run: dict[str, Any]) -> Any:
        """POST the job; after an ambiguous failure, adopt the job it may have created instead of a second one."""
        last: HubError | None = None
        for attempt in range(SUBMIT_ATTEMPTS):
            if attempt:
                time.sleep(backoff_seconds() * 2 ** (attempt - 1))
                existing = self._find(hub, ns, job_id)
                if existing is not None:
                    return existing
            try:
                return hub.call(lambda: hub.api.run_job(**run), "submit the job to Hugging Face Jobs")
            except HubError as err:
                if not err.retryable:
                    raise
                last = err
        existing = self._find(hub, ns, job_id)
        if existing is not None:
            return existing
        assert last is not None
        raise HubError(f"{last.message} (tried {SUBMIT_ATTEMPTS} times; no job was created)", last.fix, code=last.code, status=last.status)

    def _find(self, hub: HubConnection, ns: str, job_id: str) -> Any | None:
        """The HF job carrying our label, if any (the label is checked here too, on every page)."""

        def scan() -> Any | None:
            for info in hub.api.list_jobs(labels={JOB_LABEL: job_id}, namespace=ns, token=hub.token):
                if (info.labels or {}).get(JOB_LABEL) == job_id:
                    return info
            return None

        return hub.call(scan, "look for an already submitted job", retries=RETRIES)

    # ---- status ---------------------------------------------------------------------------------
    def refresh(self, job: Job) -> dict[str, Any]:
        if job.terminal:
            return {}
        if not job.backend_job_id:
            return self._adopt(job)
        hub = HubConnection.open()
        ns = self.namespace(job)
        info = hub.call(lambda: hub.api.inspect_job(job_id=job.backend_job_id, namespace=ns, token=hub.token), f"check job {job.job_id}", retries=RETRIES)
        changes = self._changes(hub, job, info)
        stage = changes["stage"]
        if stage in TERMINAL:
            lines = self._fetch(hub, ns, job, tail=None)
            self._save_log(job, lines)
            changes.update(self._from_events(job, lines, stage))
            if stage == "ERROR":
                changes["error"] = "\n".join(lines[-30:]) or None
        elif stage == "RUNNING" and self._logs_due(job):
            changes.update(self._from_events(job, self._fetch(hub, ns, job, tail=LOG_SCAN_LINES), stage))
        return changes

    def _changes(self, hub: HubConnection, job: Job, info: Any) -> dict[str, Any]:
        raw = str(info.status.stage.value if hasattr(info.status.stage, "value") else info.status.stage)
        stage = STAGES.get(raw)
        hub_message = scrub((info.status.message or "").strip(), hub.token)
        changes: dict[str, Any] = {"stage": stage or job.stage}
        if info.started_at:
            changes["started_at"] = _ts(info.started_at)
        if info.finished_at:
            changes["finished_at"] = _ts(info.finished_at)
        elif stage in TERMINAL:
            changes["finished_at"] = time.time()
        if stage is None:
            changes["message"] = f"Hugging Face reports stage {raw}"
        elif stage == "SCHEDULING":
            changes["message"] = hub_message or f"waiting for a {info.flavor or job.flavor} machine on Hugging Face Jobs"
        elif stage == "RUNNING" and job.stage != "RUNNING":
            changes["message"] = hub_message or "running"
        elif stage == "COMPLETED":
            changes["message"] = "completed"
        elif stage == "CANCELED":
            changes["message"] = "deleted on Hugging Face" if raw == "DELETED" else (hub_message or "canceled")
        elif stage == "ERROR":
            changes["message"] = self._failure(job, info, hub_message)
        return changes

    def _failure(self, job: Job, info: Any, hub_message: str) -> str:
        limit = job.timeout_seconds
        ran = (_ts(info.finished_at) or time.time()) - (_ts(info.started_at) or time.time())
        budget = budget_seconds(job.config.max_cost_usd if job.config else None, job.price_per_hour)
        if budget is not None and limit and ran >= limit - 5 and limit <= budget + BUDGET_GRACE_SECONDS:
            return (f"budget: the job reached its max_cost_usd budget (${job.config.max_cost_usd:.2f} at "  # type: ignore[union-attr]
                    f"${job.price_per_hour:.2f}/h) and Hugging Face stopped it at its budget-capped time limit")
        if "timeout" in hub_message.lower() or "timed out" in hub_message.lower() or (limit and ran >= limit - 5):
            return f"timeout: the job ran longer than its limit of {format_duration(limit or 0)} and Hugging Face stopped it"
        return f"the job failed on Hugging Face: {hub_message}" if hub_message else "the job failed on Hugging Face"

    def _from_events(self, job: Job, lines: list[str], stage: str) -> dict[str, Any]:
        return changes_from_events(job, lines, stage, failed_on="Hugging Face")

    # ---- logs -----------------------------------------------------------------------------------
    def logs(self, job: Job, tail: int | None = None) -> list[str]:
        if job.log_path.exists():  # saved when the job ended
            return tail_lines(job.log_path, tail)
        if not job.backend_job_id or tail == 0:
            return []
        when, asked, lines = self.recent_logs.get(job.job_id, (0.0, 0, []))
        if time.monotonic() - when < REUSE_LOG_SECONDS and (asked is None or (tail is not None and tail <= asked)):
            return lines[-tail:] if tail is not None else lines
        return self._fetch(HubConnection.open(), self.namespace(job), job, tail=tail)

    def _fetch(self, hub: HubConnection, ns: str, job: Job, tail: int | None) -> list[str]:
        lines = hub.call(
            lambda: list(hub.api.fetch_job_logs(job_id=job.backend_job_id, namespace=ns, follow=False, tail=tail, token=hub.token)),
            f"read the log of job {job.job_id}",
            retries=RETRIES,
        )
        self._write_state(job, logs_at=time.time())
        # the script's own output: the Hub closes a finished job's log with its own framing line
        lines = [scrub(line, hub.token) for line in lines if not line.startswith(HUB_FRAME)]
        self.recent_logs[job.job_id] = (time.monotonic(), tail, lines)
        return lines

    def _logs_due(self, job: Job) -> bool:
        last = self._read_state(job).get("logs_at") or 0.0
        return time.time() - last >= env_float("TUNEFORGE_HF_LOG_POLL_SECONDS", 10.0)

    def _save_log(self, job: Job, lines: list[str]) -> None:
        tmp = job.log_path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        tmp.replace(job.log_path)

    def _read_state(self, job: Job) -> dict[str, Any]:
        return read_state(job.job_dir, STATE_FILE)

    def _write_state(self, job: Job, **values: Any) -> None:
        write_state(job.job_dir, STATE_FILE, **values)

    # ---- cancel ---------------------------------------------------------------------------------
    def cancel(self, job: Job) -> dict[str, Any]:
        hub = HubConnection.open()
        if not job.backend_job_id:  # a submission that never answered may still have created a job
            ns = hub.whoami(retries=RETRIES)["name"]
            found = self._find(hub, ns, job.job_id)
            if found is None:
                return {}
            job = job.model_copy(update={"backend_job_id": found.id, "url": found.url, "outputs": {**job.outputs, "hf_namespace": ns}})
        ns = self.namespace(job)
        try:
            hub.call(lambda: hub.api.cancel_job(job_id=job.backend_job_id, namespace=ns, token=hub.token), f"cancel job {job.job_id}", retries=RETRIES)
        except HubError as err:
            if err.status != 404:  # already gone is what we wanted
                raise
        return {"backend_job_id": job.backend_job_id, "url": job.url, "message": "canceled by request (Hugging Face job stopped)"}

    def _adopt(self, job: Job) -> dict[str, Any]:
        """A record without an HF job id: its submission was interrupted. Find the job by label, or give up."""
        hub = HubConnection.open()
        ns = hub.whoami(retries=RETRIES)["name"]
        found = self._find(hub, ns, job.job_id)
        if found is not None:
            adopted = job.model_copy(update={"outputs": {**job.outputs, "hf_namespace": ns}})
            return {"backend_job_id": found.id, "url": found.url, "outputs": adopted.outputs, **self._changes(hub, adopted, found)}
        if time.time() - job.created_at > ADOPT_GRACE_SECONDS:
            return {"stage": "ERROR", "message": "the submission to Hugging Face never completed (no job carries this id)", "finished_at": time.time()}
        return {}


def notify_context(job: Job, spec: JobSpec) -> str:
    """What the job's notification wrapper says about the job (JSON, nothing secret)."""
    model = job.config.model if job.config else (job.export.model if job.export else None)
    return json.dumps({"kind": job.kind, "method": job.method, "backend": "hf", "model": model,
                       "price_per_hour": job.price_per_hour, "timeout_seconds": spec.timeout_seconds,
                       "outputs": {"hub_repo": job.push_target} if job.push_target else {}})


def budget_env(job: Job, timeout: int | None) -> tuple[dict[str, str], int | None]:
    """The price per hour for the template's budget guard (TUNEFORGE_PRICE_PER_HOUR, not a secret) and the
    job's timeout, capped at what max_cost_usd buys plus BUDGET_GRACE_SECONDS: the Hub stops the job even if
    the template never does."""
    env = {PRICE_ENV: f"{job.price_per_hour:g}"} if job.price_per_hour else {}
    seconds = budget_seconds(job.config.max_cost_usd if job.config else None, job.price_per_hour)
    if seconds is not None:
        cap = max(60, int(seconds + BUDGET_GRACE_SECONDS))
        timeout = min(timeout, cap) if timeout else cap
    return env, timeout


def check_private(hub: HubConnection, bucket: str) -> None:
    """Refuse to upload anything to a bucket that is public, or whose visibility cannot be read."""
    fix = (f"Make it private on the Hub (bucket settings at {hub.endpoint}/buckets/{bucket}), or delete it so tuneforge "
           "can create a private one; nothing was uploaded and no job was created.")
    try:
        info = hub.call(lambda: hub.api.bucket_info(bucket, token=hub.token), f"check that the bucket {bucket} is private", retries=RETRIES)
    except HubError as err:
        raise TuneforgeError(f"Cannot tell whether the bucket {bucket} is private ({err.message}), so nothing is uploaded to it.",
                             fix, code="hf.bucket_visibility_unknown") from None
    if getattr(info, "private", None) is not True:
        raise TuneforgeError(f"The bucket {bucket} is public: uploading your data, model and config there would publish them.",
                             fix, code="hf.bucket_public")
