"""The `hf` backend: the same template and config on Hugging Face Jobs, through `huggingface_hub`.

submit: checks the token (present, not read-only), the account (paid plan, may push to the target)
and the flavor (live hardware list; its GPUs must match the config's launch), uploads the template,
a cloud copy of the config and any local inputs to the account's private `jobs-artifacts` bucket
(one folder per tuneforge job, mounted at /data), then `run_job`s `uv run /data/<template> --config
/data/config.json` with the token as the HF_TOKEN secret and the label tuneforge-job=<id>. A failed
submission whose outcome is unknown (5xx, timeout) is retried only after listing jobs with that label:
an existing job is adopted, never duplicated.

refresh: the job's stage from `inspect_job`; progress, status messages and the result from the
template's structured events in the log (`fetch_job_logs`, the last lines only, at most every
LOG_POLL_SECONDS while running). At the end the whole log is saved to the job folder.

The token is read when needed (HF_TOKEN or the huggingface_hub login) and never written anywhere.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError, TuneforgeError
from ..records import Job
from ..types import TERMINAL
from ..progress import last_events
from ..records import JobSpec
from .hf_errors import HubError, call, missing_token, scrub, translate
from .hf_flavors import FLAVORS, check_launch
from .hf_payload import MOUNT, build_payload
from .local import tail_lines

JOB_LABEL = "tuneforge-job"
UV_IMAGE = "ghcr.io/astral-sh/uv:python3.12-bookworm"  # what run_uv_job uses; uv reads the template's PEP 723 header
RETRIES = 3  # for calls that are safe to repeat
SUBMIT_ATTEMPTS = 3
LOG_SCAN_LINES = 200  # how far back refresh looks for the last progress event
STATE_FILE = "hf_state.json"
ADOPT_GRACE_SECONDS = 600  # a record with no HF job id after this long: the submission never finished
REUSE_LOG_SECONDS = 5.0  # `status` refreshes then reads the tail: one log read serves both

# job id -> (when, tail asked (None: all), lines): the last log read in this process
_recent_logs: dict[str, tuple[float, int | None, list[str]]] = {}

STAGES = {
    "SCHEDULING": "SCHEDULING",
    "RUNNING": "RUNNING",
    "UPDATING": "RUNNING",
    "COMPLETED": "COMPLETED",
    "ERROR": "ERROR",
    "CANCELED": "CANCELED",
    "DELETED": "CANCELED",  # removed on the Hub by someone: stopped, not failed
}


def create_backend() -> "HfJobsBackend":
    return HfJobsBackend()


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def _ts(value: dt.datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


_configured_session: int | None = None


def _bounded_session() -> None:
    """The client waits forever by default: give its shared session finite timeouts, unless the user
    installed their own. TUNEFORGE_HF_TIMEOUT (seconds to wait for an answer) overrides 60."""
    global _configured_session
    import httpx2
    from huggingface_hub.utils import get_session

    session = get_session()
    if session.timeout.read is None or id(session) == _configured_session:
        read = _env_float("TUNEFORGE_HF_TIMEOUT", 60.0)
        session.timeout = httpx2.Timeout(read, connect=min(10.0, read))
        _configured_session = id(session)


class HfJobsBackend:
    name = "hf"

    # ---- plumbing -------------------------------------------------------------------------------
    def _client(self) -> tuple[Any, str]:
        from huggingface_hub import HfApi, constants, get_token

        self.endpoint = (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
        if constants.is_offline_mode():
            from huggingface_hub.errors import OfflineModeIsEnabled

            raise translate(OfflineModeIsEnabled("offline"), action="reach Hugging Face Jobs", endpoint=self.endpoint, secret=None)
        try:
            token = get_token()
        except Exception:  # noqa: BLE001  e.g. a failed OIDC exchange
            token = None
        if not token:
            raise missing_token()
        self.token = token
        _bounded_session()
        return HfApi(endpoint=self.endpoint), token

    def _call(self, fn: Any, action: str, *, retries: int = 0) -> Any:
        return call(fn, action=action, endpoint=self.endpoint, secret=self.token, retries=retries)

    @staticmethod
    def namespace(job: Job) -> str:
        ns = (job.outputs or {}).get("hf_namespace")
        if not ns and job.url and "/jobs/" in job.url:
            ns = job.url.rsplit("/jobs/", 1)[1].split("/")[0]
        if not ns:
            raise TuneforgeError(f"Job {job.job_id} does not record its Hugging Face namespace.", "Check it at its URL on huggingface.co/jobs.")
        return ns

    # ---- submit ---------------------------------------------------------------------------------
    def submit(self, job: Job, spec: JobSpec) -> dict[str, Any]:
        from huggingface_hub import constants

        api, token = self._client()
        me = self._call(lambda: api.whoami(token=token), "check your Hugging Face account", retries=RETRIES)
        ns = me["name"]
        check_account(me, job.config.get("push_to_hub"))
        flavor, flavor_gpus, price = self._flavor(api, token, spec.flavor)
        payload = build_payload(job, spec)
        check_launch(payload.config.get("launch"), flavor, flavor_gpus, spec.distributed)

        bucket = f"{ns}/{constants.HF_JOBS_ARTIFACTS_BUCKET_NAME}"
        folder = job.job_id  # fixed per tuneforge job: a retried upload overwrites, never duplicates
        self._call(lambda: api.create_bucket(bucket, private=True, exist_ok=True, token=token), "create the private jobs-artifacts bucket", retries=RETRIES)
        adds = [(path, f"{folder}/{remote}") for remote, path in sorted(payload.files.items())]
        self._call(lambda: api.batch_bucket_files(bucket, add=adds, token=token), f"upload the template, config and inputs ({payload.total_bytes / 1e6:.1f} MB)", retries=RETRIES)

        from huggingface_hub import Volume

        deps = [x for dep in spec.dependencies for x in ("--with", dep)]
        run = dict(
            image=UV_IMAGE,
            command=["uv", "run", *deps, *payload.argv],
            env={**spec.env, "PYTHONUNBUFFERED": "1", "TUNEFORGE_JOB_ID": job.job_id},
            secrets={"HF_TOKEN": token},
            flavor=flavor,
            timeout=spec.timeout_seconds,
            name=job.job_id,
            labels={**spec.labels, JOB_LABEL: job.job_id},
            volumes=[Volume(type="bucket", source=bucket, mount_path=MOUNT, path=folder, read_only=True)],
            namespace=ns,
            token=token,
        )
        info = self._create(api, token, ns, job.job_id, run)
        changes = self._changes(job, info)
        changes.update(
            backend_job_id=info.id,
            url=info.url,
            flavor=flavor,
            outputs={
                **job.outputs,
                "hf_namespace": ns,
                "hub_repo": job.config.get("push_to_hub"),
                "hub_url": f"{self.endpoint}/{job.config.get('push_to_hub')}",
                "artifacts": f"{self.endpoint}/buckets/{bucket}/tree/{folder}",
            },
        )
        if job.price_per_hour is None and price is not None:
            changes["price_per_hour"] = price
        return changes

    def _flavor(self, api: Any, token: str, flavor: str | None) -> tuple[str, int, float | None]:
        """The flavor's GPU count and $/hour, from the live hardware list (the table when it is unreachable)."""
        if not flavor:
            raise ConfigError(
                "No hardware flavor for the Hugging Face job (no plan was available to choose one).",
                "Pass --flavor, e.g. a10g-large (24 GB) or a100-large (80 GB); `hf jobs hardware` lists them all.",
            )
        live: dict[str, tuple[int, float | None]] = {}
        try:
            for hw in self._call(lambda: api.list_jobs_hardware(token=token), "list Hugging Face Jobs hardware", retries=1):
                gpus = int(hw.accelerator.quantity) if hw.accelerator and str(hw.accelerator.quantity).isdigit() else 0
                per_hour = hw.unit_cost_usd * (60 if hw.unit_label == "minute" else 3600 if hw.unit_label == "second" else 1)
                live[hw.name] = (gpus, round(per_hour, 4))
        except HubError as err:
            if err.status in (401, 402, 403):
                raise
        known = live or {name: (g, p) for name, (g, p) in FLAVORS.items()}
        if flavor not in known:
            gpu = sorted(n for n, (g, _) in known.items() if g)
            raise ConfigError(f"Unknown Hugging Face Jobs flavor {flavor!r}.", f"Use one of: {', '.join(gpu)} (GPU), or cpu-basic/cpu-upgrade.")
        gpus, price = known[flavor]
        return flavor, gpus, price

    def _create(self, api: Any, token: str, ns: str, job_id: str, run: dict[str, Any]) -> Any:
        """POST the job; after an ambiguous failure, adopt the job it may have created instead of a second one."""
        from .hf_errors import backoff_seconds

        last: HubError | None = None
        for attempt in range(SUBMIT_ATTEMPTS):
            if attempt:
                time.sleep(backoff_seconds() * 2 ** (attempt - 1))
                existing = self._find(api, token, ns, job_id)
                if existing is not None:
                    return existing
            try:
                return self._call(lambda: api.run_job(**run), "submit the job to Hugging Face Jobs")
            except HubError as err:
                if not err.retryable:
                    raise
                last = err
        existing = self._find(api, token, ns, job_id)
        if existing is not None:
            return existing
        assert last is not None
        raise HubError(f"{last.message} (tried {SUBMIT_ATTEMPTS} times; no job was created)", last.fix, status=last.status)

    def _find(self, api: Any, token: str, ns: str, job_id: str) -> Any | None:
        """The HF job carrying our label, if any (the label is checked here too, on every page)."""

        def scan() -> Any | None:
            for info in api.list_jobs(labels={JOB_LABEL: job_id}, namespace=ns, token=token):
                if (info.labels or {}).get(JOB_LABEL) == job_id:
                    return info
            return None

        return self._call(scan, "look for an already submitted job", retries=RETRIES)

    # ---- status ---------------------------------------------------------------------------------
    def refresh(self, job: Job) -> dict[str, Any]:
        if job.terminal:
            return {}
        if not job.backend_job_id:
            return self._adopt(job)
        api, token = self._client()
        ns = self.namespace(job)
        info = self._call(lambda: api.inspect_job(job_id=job.backend_job_id, namespace=ns, token=token), f"check job {job.job_id}", retries=RETRIES)
        changes = self._changes(job, info)
        stage = changes["stage"]
        if stage in TERMINAL:
            lines = self._fetch(api, token, ns, job, tail=None)
            self._save_log(job, lines)
            changes.update(self._from_events(job, lines, stage))
            if stage == "ERROR":
                changes["error"] = "\n".join(lines[-30:]) or None
        elif stage == "RUNNING" and self._logs_due(job):
            changes.update(self._from_events(job, self._fetch(api, token, ns, job, tail=LOG_SCAN_LINES), stage))
        return changes

    def _changes(self, job: Job, info: Any) -> dict[str, Any]:
        raw = str(info.status.stage.value if hasattr(info.status.stage, "value") else info.status.stage)
        stage = STAGES.get(raw)
        hub_message = scrub((info.status.message or "").strip(), getattr(self, "token", None))
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
        from ..config import format_duration

        limit = job.timeout_seconds
        ran = (_ts(info.finished_at) or time.time()) - (_ts(info.started_at) or time.time())
        if "timeout" in hub_message.lower() or "timed out" in hub_message.lower() or (limit and ran >= limit - 5):
            return f"timeout: the job ran longer than its limit of {format_duration(limit or 0)} and Hugging Face stopped it"
        return f"the job failed on Hugging Face: {hub_message}" if hub_message else "the job failed on Hugging Face"

    def _from_events(self, job: Job, lines: list[str], stage: str) -> dict[str, Any]:
        progress, message, result = last_events(lines)
        changes: dict[str, Any] = {}
        if progress is not None:
            changes["progress"] = progress
        if message and stage == "RUNNING":
            changes["message"] = message
        if message and stage == "ERROR" and message.startswith("error:"):
            changes["message"] = f"the training script failed: {message[len('error:'):].strip()}"
        if result is not None:
            changes["outputs"] = {**job.outputs, "result": result}
        return changes

    # ---- logs -----------------------------------------------------------------------------------
    def logs(self, job: Job, tail: int | None = None) -> list[str]:
        if job.log_path.exists():  # saved when the job ended
            return tail_lines(job.log_path, tail)
        if not job.backend_job_id or tail == 0:
            return []
        when, asked, lines = _recent_logs.get(job.job_id, (0.0, 0, []))
        if time.monotonic() - when < REUSE_LOG_SECONDS and (asked is None or (tail is not None and tail <= asked)):
            return lines[-tail:] if tail is not None else lines
        api, token = self._client()
        return self._fetch(api, token, self.namespace(job), job, tail=tail)

    def _fetch(self, api: Any, token: str, ns: str, job: Job, tail: int | None) -> list[str]:
        lines = self._call(
            lambda: list(api.fetch_job_logs(job_id=job.backend_job_id, namespace=ns, follow=False, tail=tail, token=token)),
            f"read the log of job {job.job_id}",
            retries=RETRIES,
        )
        self._write_state(job, logs_at=time.time())
        lines = [scrub(line, token) for line in lines]
        _recent_logs[job.job_id] = (time.monotonic(), tail, lines)
        return lines

    def _logs_due(self, job: Job) -> bool:
        last = self._read_state(job).get("logs_at") or 0.0
        return time.time() - last >= _env_float("TUNEFORGE_HF_LOG_POLL_SECONDS", 10.0)

    def _save_log(self, job: Job, lines: list[str]) -> None:
        tmp = job.log_path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        tmp.replace(job.log_path)

    def _read_state(self, job: Job) -> dict[str, Any]:
        try:
            return json.loads((Path(job.job_dir) / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _write_state(self, job: Job, **values: Any) -> None:
        path = Path(job.job_dir) / STATE_FILE
        if path.parent.is_dir():
            path.write_text(json.dumps({**self._read_state(job), **values}), encoding="utf-8")

    # ---- cancel ---------------------------------------------------------------------------------
    def cancel(self, job: Job) -> dict[str, Any]:
        api, token = self._client()
        if not job.backend_job_id:  # a submission that never answered may still have created a job
            ns = self._call(lambda: api.whoami(token=token), "check your Hugging Face account", retries=RETRIES)["name"]
            found = self._find(api, token, ns, job.job_id)
            if found is None:
                return {}
            job = job.model_copy(update={"backend_job_id": found.id, "url": found.url, "outputs": {**job.outputs, "hf_namespace": ns}})
        ns = self.namespace(job)
        try:
            self._call(lambda: api.cancel_job(job_id=job.backend_job_id, namespace=ns, token=token), f"cancel job {job.job_id}", retries=RETRIES)
        except HubError as err:
            if err.status != 404:  # already gone is what we wanted
                raise
        return {"backend_job_id": job.backend_job_id, "url": job.url, "message": "canceled by request (Hugging Face job stopped)"}

    def _adopt(self, job: Job) -> dict[str, Any]:
        """A record without an HF job id: its submission was interrupted. Find the job by label, or give up."""
        api, token = self._client()
        ns = self._call(lambda: api.whoami(token=token), "check your Hugging Face account", retries=RETRIES)["name"]
        found = self._find(api, token, ns, job.job_id)
        if found is not None:
            adopted = job.model_copy(update={"outputs": {**job.outputs, "hf_namespace": ns}})
            return {"backend_job_id": found.id, "url": found.url, "outputs": adopted.outputs, **self._changes(adopted, found)}
        if time.time() - job.created_at > ADOPT_GRACE_SECONDS:
            return {"stage": "ERROR", "message": "the submission to Hugging Face never completed (no job carries this id)", "finished_at": time.time()}
        return {}


def check_account(me: dict[str, Any], push_to: str | None) -> None:
    """Refuse before submitting: a read-only token, an account that cannot pay, a push target out of reach."""
    name = me.get("name", "?")
    token_info = ((me.get("auth") or {}).get("accessToken")) or {}
    if token_info.get("role") == "read":
        raise TuneforgeError(
            f"The Hugging Face token of {name} is read-only: it cannot start jobs or push the model.",
            "Create a token with write access at https://huggingface.co/settings/tokens and set HF_TOKEN to it "
            "(or run `hf auth login --force`).",
        )
    if me.get("isPro") is False and me.get("canPay") is False:
        raise TuneforgeError(
            f"The Hugging Face account {name} has no paid plan and no payment method: Jobs are billed per minute.",
            "Subscribe to PRO or add credits / a payment method at https://huggingface.co/settings/billing, "
            "or train here with --backend local.",
        )
    if push_to and "/" in push_to:
        owner = push_to.split("/", 1)[0]
        orgs = {o.get("name"): o for o in me.get("orgs") or []}
        if owner != name and owner not in orgs:
            raise TuneforgeError(
                f"The token's account {name} cannot push to {push_to}: {owner} is neither {name} nor one of its organizations.",
                f"Push to {name}/<model-name>, or use a token of an account that belongs to {owner}.",
            )
        if owner in orgs and orgs[owner].get("roleInOrg") == "read":
            raise TuneforgeError(
                f"{name} only has read access in the organization {owner}, so the job could not push to {push_to}.",
                f"Push to {name}/<model-name>, or ask an admin of {owner} for write access.",
            )
