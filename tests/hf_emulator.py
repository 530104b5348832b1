"""A local emulator of the Hugging Face Jobs HTTP API, for tests that drive the real `huggingface_hub` client.

Start it on 127.0.0.1, point the client at it with HF_ENDPOINT, and the client's own code paths run:
whoami-v2, jobs (create, inspect, list with Link pagination, logs as SSE, cancel), hardware, and the
bucket upload that `run_job`/`run_uv_job` callers use (create bucket, xet write token, NDJSON batch).
The xet write token answers with a `local://` CAS URL, so hf_xet stores uploaded files in a folder
here and no storage server is needed; `read_upload` reads them back through hf_xet.

Test controls: `add_user`, `watched_secrets` (values allowed only in a job's `secrets`; a job spec
with a secret value anywhere else is refused), `set_stage`, `append_log`, `fail` (an HTTP status for the next N calls of
an endpoint, before or after it takes effect), `delay` (latency, to trigger client timeouts). Every
request is recorded (`requests`) so a test can assert on exactly what the client sent.

The emulator models the contract in /work/shared/reference/hf-jobs-api.md; it is not a Hub.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

TERMINAL = {"COMPLETED", "CANCELED", "ERROR", "DELETED"}

# name -> (GPU count, GPU model, $/hour): the official list (autumn 2026).
HARDWARE: dict[str, tuple[int, str | None, float]] = {
    "cpu-basic": (0, None, 0.01), "cpu-upgrade": (0, None, 0.03), "cpu-performance": (0, None, 1.90), "cpu-xl": (0, None, 1.00),
    "t4-small": (1, "T4", 0.40), "t4-medium": (1, "T4", 0.60), "l4x1": (1, "L4", 0.80), "l4x4": (4, "L4", 3.80),
    "a10g-small": (1, "A10G", 1.00), "a10g-large": (1, "A10G", 1.50), "a10g-largex2": (2, "A10G", 3.00),
    "a10g-largex4": (4, "A10G", 5.00), "a100-large": (1, "A100", 2.50), "a100x4": (4, "A100", 10.0),
    "a100x8": (8, "A100", 20.0), "l40sx1": (1, "L40S", 1.80), "l40sx4": (4, "L40S", 8.30), "l40sx8": (8, "L40S", 23.50),
    "h200": (1, "H200", 5.00), "h200x2": (2, "H200", 10.0), "h200x4": (4, "H200", 20.0), "h200x8": (8, "H200", 40.0),
    "rtx-pro-6000": (1, "RTX PRO 6000", 2.75), "rtx-pro-6000x2": (2, "RTX PRO 6000", 5.50),
    "rtx-pro-6000x4": (4, "RTX PRO 6000", 11.0), "rtx-pro-6000x8": (8, "RTX PRO 6000", 22.0),
}


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Recorded:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    status: int = 0

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Rule:
    """An injected behaviour for the next `times` requests whose method and path match."""

    method: str
    pattern: re.Pattern[str]
    times: int
    status: int | None = None  # answer this status instead
    after: bool = False  # True: let the request take effect, then answer `status` (an ambiguous failure)
    delay: float = 0.0  # seconds to wait before answering (past the client's timeout = a timeout)
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and self.method in (method, "*") and bool(self.pattern.search(path))


@dataclass
class User:
    token: str
    name: str
    role: str = "write"  # read | write | fineGrained
    is_pro: bool | None = True
    can_pay: bool | None = True
    orgs: tuple[str, ...] = ()

    def whoami(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "user",
            "id": "6" + secrets.token_hex(11),
            "name": self.name,
            "fullname": self.name.title(),
            "email": f"{self.name}@example.invalid",
            "emailVerified": True,
            "orgs": [{"type": "org", "name": o, "fullname": o, "roleInOrg": "admin", "canPay": True} for o in self.orgs],
            "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": self.role, "createdAt": iso(time.time())}},
        }
        if self.is_pro is not None:
            out["isPro"] = self.is_pro
        if self.can_pay is not None:
            out["canPay"] = self.can_pay
        return out


class HubEmulator:
    def __init__(self, root: Path, *, page_size: int = 2):
        self.root = Path(root)
        self.cas_dir = self.root / "cas"
        self.cas_dir.mkdir(parents=True, exist_ok=True)
        self.page_size = page_size
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.job_logs: dict[str, list[tuple[float, str]]] = {}
        self.buckets: dict[str, dict[str, dict[str, Any]]] = {}
        self.bucket_private: dict[str, bool] = {}  # as requested at creation (no visibility: public, as on the Hub)
        self.repos: dict[str, dict[str, dict[str, Any]]] = {}  # "model:ns/name" -> path -> {content | oid}
        self.commits: list[dict[str, Any]] = []
        self.requests: list[Recorded] = []
        self.rules: list[Rule] = []
        self.ignore_label_filter = False  # a Hub that ignores `label=` filters (clients must check labels)
        self.watched_secrets: set[str] = set()  # values that may travel only in a job's `secrets` (tests add them)
        self.hold_logs_open = 0.0  # seconds to keep a log stream open after the replay (the real Hub keeps it open)
        self._seq = itertools.count()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle --------------------------------------------------------------------------------
    def start(self) -> "HubEmulator":
        handler = type("Handler", (_Handler,), {"emulator": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="hf-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "HubEmulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the emulator first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ---- test controls ----------------------------------------------------------------------------
    def add_user(self, token: str, name: str, **kwargs: Any) -> User:
        user = User(token=token, name=name, **kwargs)
        with self.lock:
            self.users[token] = user
        return user

    def add_bucket(self, bucket_id: str, *, private: bool) -> None:
        """A bucket as the Hub stores it (tests: one the user made earlier, public or not)."""
        with self.lock:
            self.buckets.setdefault(bucket_id, {})
            self.bucket_private[bucket_id] = private

    def set_stage(self, job_id: str, stage: str, message: str | None = None) -> None:
        with self.lock:
            job = self.jobs[job_id]
            now = time.time()
            job["status"]["stage"] = stage
            job["status"]["message"] = message
            if stage not in ("SCHEDULING", "CANCELED", "DELETED") and job.get("startedAt") is None:
                job["startedAt"] = iso(now)
            if stage in TERMINAL and job.get("finishedAt") is None:
                job["finishedAt"] = iso(now)

    def append_log(self, job_id: str, *lines: str) -> None:
        with self.lock:
            self.job_logs.setdefault(job_id, []).extend((time.time(), line) for line in lines)

    def fail(self, method: str, pattern: str, status: int, *, times: int = 1, after: bool = False,
             body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Rule:
        rule = Rule(method, re.compile(pattern), times, status=status, after=after, body=body, headers=headers or {})
        with self.lock:
            self.rules.append(rule)
        return rule

    def delay(self, method: str, pattern: str, seconds: float, *, times: int = 1, after: bool = False) -> Rule:
        rule = Rule(method, re.compile(pattern), times, delay=seconds, after=after)
        with self.lock:
            self.rules.append(rule)
        return rule

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        rx = re.compile(pattern)
        with self.lock:
            return [r for r in self.requests if r.method == method and rx.search(r.path)]

    def job_by_label(self, key: str, value: str) -> list[dict[str, Any]]:
        with self.lock:
            return [j for j in self.jobs.values() if (j.get("labels") or {}).get(key) == value]

    def read_upload(self, bucket_id: str, path: str) -> bytes:
        """The bytes of a file uploaded to a bucket, read back from the local CAS through hf_xet."""
        import tempfile

        from hf_xet import XetFileInfo, XetSession

        entry = self.buckets[bucket_id][path]
        with tempfile.TemporaryDirectory() as tmp:
            dest = Path(tmp) / "file"
            with XetSession().new_file_download_group(
                endpoint=f"local://{self.cas_dir}", token="emulator", token_expiry_unix_secs=int(time.time()) + 3600
            ) as group:
                group.start_download_file(XetFileInfo(entry["xetHash"], entry.get("size")), str(dest))
            return dest.read_bytes()

    def volume_files(self, job_id: str, mount_path: str = "/data") -> dict[str, bytes]:
        """What a job sees under a bucket volume: {relative path: bytes}."""
        job = self.jobs[job_id]
        for vol in job.get("volumes") or []:
            if vol.get("type") == "bucket" and vol.get("mountPath") == mount_path:
                prefix = (vol.get("path") or "").strip("/")
                files = self.buckets.get(vol["source"], {})
                return {
                    p[len(prefix) + 1:] if prefix else p: self.read_upload(vol["source"], p)
                    for p in files
                    if not prefix or p.startswith(prefix + "/")
                }
        raise KeyError(f"job {job_id} has no bucket volume at {mount_path}")

    def add_model(self, repo_id: str, files: dict[str, bytes]) -> None:
        """Serve these files at /{repo_id}/resolve/main/... (what hf_hub_download reads)."""
        with self.lock:
            self.repos[f"model:{repo_id}"] = {path: {"content": data} for path, data in files.items()}

    def repo_files(self, repo_id: str, repo_type: str = "model") -> dict[str, dict[str, Any]]:
        """Files committed to a repo: path -> {"content": bytes} (regular) or {"oid", "size"} (LFS/xet)."""
        return self.repos.get(f"{repo_type}:{repo_id}", {})

    def read_repo_file(self, repo_id: str, path: str, repo_type: str = "model") -> bytes:
        return self.repo_files(repo_id, repo_type)[path]["content"]

    # ---- request handling ------------------------------------------------------------------------
    def take_rule(self, method: str, path: str) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.times -= 1
                    return rule
        return None

    def user_for(self, headers: dict[str, str]) -> User | None:
        auth = headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return None
        return self.users.get(auth[7:].strip())

    def new_job(self, user: User, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
        job_id = secrets.token_hex(12)
        now = time.time()
        job = {
            "id": job_id,
            "createdAt": iso(now),
            "startedAt": None,
            "finishedAt": None,
            "dockerImage": spec.get("dockerImage"),
            "spaceId": spec.get("spaceId"),
            "command": spec.get("command"),
            "arguments": spec.get("arguments", []),
            "environment": spec.get("environment", {}),
            "secrets": sorted((spec.get("secrets") or {}).keys()),
            "flavor": spec.get("flavor"),
            "labels": spec.get("labels"),
            "volumes": spec.get("volumes"),
            "timeoutSeconds": spec.get("timeoutSeconds"),
            "status": {"stage": "SCHEDULING", "message": None},
            "owner": {"id": "6" + secrets.token_hex(11), "name": ns, "type": "user" if ns == user.name else "org"},
            "initiator": {"type": "user", "id": "u", "name": user.name},
            "_secrets": dict(spec.get("secrets") or {}),  # kept for tests, never answered
            "_seq": next(self._seq),
        }
        with self.lock:
            self.jobs[job_id] = job
            self.job_logs[job_id] = []
        return job

    def public(self, job: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in job.items() if not k.startswith("_")}
        out["status"] = dict(job["status"])
        out["durations"] = {"schedulingSecs": None, "runningSecs": None, "totalSecs": None}
        return out


JOB_SPEC_KEYS = {"command", "arguments", "environment", "flavor", "dockerImage", "spaceId", "secrets", "timeoutSeconds",
                 "attempts", "labels", "volumes", "expose", "ssh", "network", "resourceGroupId"}
VOLUME_KEYS = {"type", "source", "mountPath", "readOnly", "path", "revision"}


def _str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def secrets_problem(spec: dict[str, Any], emu: "HubEmulator") -> str | None:
    """Secrets strictly: names are environment variable names, and no secret value (one sent in `secrets`, a
    user's token, or one a test declared in `emu.watched_secrets`) appears anywhere else in the spec."""
    given = spec.get("secrets") or {}
    for name in given:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            return f"Invalid secret name {name!r}"
    with emu.lock:
        values = {*given.values(), *emu.users, *emu.watched_secrets}
    rest = json.dumps({k: v for k, v in spec.items() if k != "secrets"})
    for value in values:
        if len(value) >= 8 and (value in rest or json.dumps(value)[1:-1] in rest):
            return "a secret value appears outside `secrets` (in the command, environment, labels or volumes)"
    return None


def job_spec_problem(spec: Any, ns: str, emu: "HubEmulator") -> str | None:
    """Why the Jobs API would refuse this job spec (None: it is accepted), field by field as the service checks."""
    if not isinstance(spec, dict):
        return "the job spec must be a JSON object"
    if unknown := set(spec) - JOB_SPEC_KEYS:
        return f"unknown fields {sorted(unknown)}"
    command = spec.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        return "command must be a non-empty list of strings"
    if not isinstance(spec.get("arguments", []), list) or not all(isinstance(a, str) for a in spec.get("arguments", [])):
        return "arguments must be a list of strings"
    if not _str_map(spec.get("environment", {})):
        return "environment must map names to strings"
    if "secrets" in spec and not _str_map(spec["secrets"]):
        return "secrets must map names to strings"
    if problem := secrets_problem(spec, emu):
        return problem
    if spec.get("flavor") not in HARDWARE:
        return f"Invalid flavor {spec.get('flavor')!r}"
    if not isinstance(spec.get("dockerImage"), str) and not isinstance(spec.get("spaceId"), str):
        return "one of dockerImage or spaceId is required"
    timeout = spec.get("timeoutSeconds")
    if timeout is not None and (type(timeout) is not int or timeout <= 0):
        return f"timeoutSeconds must be a positive integer, not {timeout!r}"
    labels = spec.get("labels") or {}
    if not isinstance(labels, dict):
        return "labels must be an object"
    for key, value in labels.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", key) or not re.fullmatch(r"[A-Za-z0-9_-]{0,100}", str(value)):
            return f"Invalid label {key}={value}"
    volumes = spec.get("volumes") or []
    if not isinstance(volumes, list):
        return "volumes must be a list"
    for vol in volumes:
        if not isinstance(vol, dict) or set(vol) - VOLUME_KEYS or not {"type", "source", "mountPath"} <= set(vol):
            return f"a volume needs type, source and mountPath (and nothing unknown): {vol}"
        if not str(vol["mountPath"]).startswith("/"):
            return f"mountPath must be absolute: {vol['mountPath']}"
        if vol["type"] == "bucket":
            owner = str(vol["source"]).split("/", 1)[0]
            if vol["source"] not in emu.buckets or owner != ns:
                return f"bucket {vol['source']} does not exist in {ns}"
        elif vol["type"] not in ("model", "dataset", "space"):
            return f"unknown volume type {vol['type']!r}"
    return None


Route = tuple[str, re.Pattern[str], Callable[..., None]]


def repo_sha(files: dict[str, dict[str, Any]]) -> str:
    """A repo's commit: it changes whenever its files do (clients cache by commit, as the Hub's are immutable)."""
    import hashlib

    digest = hashlib.sha1()
    for path, entry in sorted(files.items()):
        digest.update(path.encode() + b"\0" + entry.get("content", str(entry.get("oid")).encode()) + b"\0")
    return digest.hexdigest()


class _Handler(BaseHTTPRequestHandler):
    emulator: HubEmulator
    protocol_version = "HTTP/1.0"  # one request per connection; a stream ends when the connection closes

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # ---- plumbing --------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        emu = self.emulator
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qsl(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        rec = Recorded(method, path, query, headers, body)
        with emu.lock:
            emu.requests.append(rec)
        self.rec, self.query, self.body_bytes = rec, query, body
        rule = emu.take_rule(method, path)
        if rule and rule.delay and not rule.after:
            time.sleep(rule.delay)
        if rule and rule.status and not rule.after:
            return self._error(rule.status, (rule.body or {}).get("error", f"injected {rule.status}"), rule.headers)
        for verb, rx, fn in ROUTES:
            m = rx.fullmatch(path)
            if verb == method and m:
                if rule and rule.after:  # take effect, then fail or stall
                    self._silent = True
                    fn(self, **m.groupdict())
                    self._silent = False
                    if rule.delay:
                        time.sleep(rule.delay)
                    if rule.status:
                        return self._error(rule.status, f"injected {rule.status} after the request took effect", rule.headers)
                    return self._replay_silent()
                return fn(self, **m.groupdict())
        return self._error(404, f"no route for {method} {path}")

    _silent = False
    _pending: tuple[int, bytes, dict[str, str]] | None = None

    def _replay_silent(self) -> None:
        if self._pending:
            status, data, headers = self._pending
            self._send(status, data, headers)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _send(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        if self._silent:
            self._pending = (status, data, dict(headers or {}))
            return
        self.rec.status = status
        try:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
            pass

    def _json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._json({"error": message}, status, {"X-Error-Message": message, **(headers or {})})

    def _user(self, ns: str | None = None) -> User | None:
        user = self.emulator.user_for(self.rec.headers)
        if user is None:
            self._error(401, "Invalid credentials in Authorization header")
            return None
        if ns is not None and ns != user.name and ns not in user.orgs:
            self._error(403, f"You don't have the rights to act in namespace {ns}")
            return None
        return user

    def _writer(self, ns: str) -> User | None:
        """The user, when the token may write in NS (a read-only token can list and read, nothing more)."""
        user = self._user(ns)
        if user is not None and user.role == "read":
            self._error(403, "This token is read-only: it cannot create jobs, buckets or files")
            return None
        return user

    def _job(self, ns: str, job_id: str) -> dict[str, Any] | None:
        job = self.emulator.jobs.get(job_id)
        if job is None or job["owner"]["name"] != ns:
            self._error(404, "Job not found")
            return None
        return job

    # ---- routes ----------------------------------------------------------------------------------
    def whoami(self) -> None:
        user = self._user()
        if user:
            self._json(user.whoami())

    def hardware(self) -> None:
        if not self._user():
            return
        out = []
        for name, (gpus, model, price) in HARDWARE.items():
            out.append({
                "name": name, "prettyName": name.upper(), "cpu": "8 vCPU", "ram": "32 GB", "ephemeralStorage": "200 GB",
                "accelerator": None if not gpus else {"type": "gpu", "model": model, "quantity": str(gpus), "vram": "24 GB", "manufacturer": "Nvidia"},
                "unitCostMicroUSD": round(price / 60 * 1e6), "unitCostUSD": price / 60, "unitLabel": "minute",
            })
        self._json(out)

    def create_job(self, ns: str) -> None:
        user = self._writer(ns)
        if not user:
            return
        if user.is_pro is False and user.can_pay is False:
            return self._error(402, "Jobs need a PRO subscription or credits")
        try:
            spec = json.loads(self.body_bytes)
        except ValueError:
            return self._error(400, "body is not JSON")
        problem = job_spec_problem(spec, ns, self.emulator)
        if problem:
            return self._error(400, problem)
        job = self.emulator.new_job(user, ns, spec)
        self._json(self.emulator.public(job))

    def list_jobs(self, ns: str) -> None:
        if not self._user(ns):
            return
        emu = self.emulator
        stages = [v for k, v in self.query if k == "stage"]
        labels = [v.split("=", 1) for k, v in self.query if k == "label"]
        cursor = int(dict(self.query).get("cursor") or 0)
        with emu.lock:
            jobs = sorted((j for j in emu.jobs.values() if j["owner"]["name"] == ns), key=lambda j: -j["_seq"])
            jobs = [j for j in jobs if (not stages or j["status"]["stage"] in stages)
                    and (emu.ignore_label_filter or all((j.get("labels") or {}).get(k) == v for k, v in labels))]
            page = [emu.public(j) for j in jobs[cursor: cursor + emu.page_size]]
        headers = {}
        if cursor + emu.page_size < len(jobs):
            q = [(k, v) for k, v in self.query if k != "cursor"] + [("cursor", str(cursor + emu.page_size))]
            headers["Link"] = f'<{emu.url}/api/jobs/{ns}?{urlencode(q)}>; rel="next"'
        self._json(page, headers=headers)

    def inspect_job(self, ns: str, job_id: str) -> None:
        if not self._user(ns):
            return
        job = self._job(ns, job_id)
        if job:
            self._json(self.emulator.public(job))

    def cancel_job(self, ns: str, job_id: str) -> None:
        if not self._user(ns):
            return
        job = self._job(ns, job_id)
        if job is None:
            return
        if job["status"]["stage"] not in TERMINAL:
            self.emulator.set_stage(job_id, "CANCELED", "Canceled by user")
        self._send(200, b"", {})

    def job_logs(self, ns: str, job_id: str) -> None:
        if not self._user(ns):
            return
        if self._job(ns, job_id) is None:
            return
        emu = self.emulator
        with emu.lock:
            lines = list(emu.job_logs.get(job_id, []))
        tail = dict(self.query).get("tail")
        if tail is not None:
            lines = lines[-int(tail):] if int(tail) > 0 else []
        events = [(time.time(), "===== Job started at " + iso(time.time()) + " =====")] if lines else []
        events += lines
        job = emu.jobs[job_id]
        if job["status"]["stage"] in TERMINAL and tail is None:  # the Hub closes a finished job's log with this line
            events.append((time.time(), f"===== Job finished: status={job['status']['stage']} ====="))
        self.rec.status = 200
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for ts, line in events:
                self.wfile.write(b"data: " + json.dumps({"data": line, "timestamp": iso(ts)}).encode() + b"\n\n")
            self.wfile.flush()
            if emu.hold_logs_open:
                self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
                time.sleep(emu.hold_logs_open)
        except (BrokenPipeError, ConnectionResetError):
            pass

    # buckets (the upload of local files for a job)
    def create_bucket(self, ns: str, name: str) -> None:
        if not self._writer(ns):
            return
        try:
            spec = json.loads(self.body_bytes or b"{}")
        except ValueError:
            return self._error(400, "body is not JSON")
        visibility = spec.get("visibility", "public")
        if visibility not in ("public", "private") or set(spec) - {"visibility", "resourceGroupId", "region"}:
            return self._error(400, f"Invalid bucket settings {spec}")
        bucket_id = f"{ns}/{name}"
        url = f"{self.emulator.url}/buckets/{bucket_id}"
        with self.emulator.lock:
            exists = bucket_id in self.emulator.buckets
            if not exists:
                self.emulator.add_bucket(bucket_id, private=visibility == "private")
        if exists:
            return self._json({"error": "already exists", "url": url}, 409)
        self._json({"url": url, "name": bucket_id, "id": bucket_id})

    def bucket_info(self, ns: str, name: str) -> None:
        if not self._user(ns):
            return
        bucket_id = f"{ns}/{name}"
        if bucket_id not in self.emulator.buckets:
            return self._error(404, "Bucket not found", {"X-Error-Code": "RepoNotFound"})
        files = self.emulator.buckets[bucket_id]
        self._json({"id": bucket_id, "private": self.emulator.bucket_private[bucket_id], "createdAt": iso(time.time()),
                    "size": 0, "totalFiles": len(files)})

    def xet_write_token(self, ns: str, name: str) -> None:
        if not self._writer(ns):
            return
        self._json({"accessToken": "xet-emulator", "exp": int(time.time()) + 3600, "casUrl": f"local://{self.emulator.cas_dir}"})

    def bucket_batch(self, ns: str, name: str) -> None:
        if not self._writer(ns):
            return
        bucket_id = f"{ns}/{name}"
        failed = []
        with self.emulator.lock:
            if bucket_id not in self.emulator.buckets:
                return self._error(404, "Bucket not found", {"X-Error-Code": "RepoNotFound"})
            files = self.emulator.buckets[bucket_id]
            for line in self.body_bytes.splitlines():
                if not line.strip():
                    continue
                op = json.loads(line)
                if op.get("type") == "addFile":
                    files[op["path"]] = {"xetHash": op["xetHash"], "mtime": op.get("mtime")}
                elif op.get("type") == "deleteFile":
                    files.pop(op["path"], None)
                else:
                    failed.append({"path": op.get("path"), "error": "unsupported"})
        self._json({"failed": failed})

    # model repos (what a training job pushes: checkpoints, adapter, model card)
    def create_repo(self) -> None:
        user = self._user()
        if not user:
            return
        spec = json.loads(self.body_bytes or b"{}")
        ns = spec.get("organization") or user.name
        if ns != user.name and ns not in user.orgs:
            return self._error(403, f"You don't have the rights to create a repo in {ns}")
        repo_type = spec.get("type") or "model"
        key = f"{repo_type}:{ns}/{spec['name']}"
        url = f"{self.emulator.url}/{ns}/{spec['name']}"
        with self.emulator.lock:
            if key in self.emulator.repos:
                return self._json({"error": "You already created this model repo", "url": url}, 409)
            self.emulator.repos[key] = {}
        self._json({"url": url, "name": f"{ns}/{spec['name']}", "id": secrets.token_hex(12)})

    def resolve(self, ns: str, name: str, rev: str, path: str) -> None:
        import hashlib

        files = self.emulator.repos.get(f"model:{ns}/{name}")
        if files is None:
            return self._error(404, "Repository not found", {"X-Error-Code": "RepoNotFound"})
        entry = files.get(path)
        if entry is None or "content" not in entry:
            return self._error(404, "Entry not found", {"X-Error-Code": "EntryNotFound"})
        data = entry["content"]
        headers = {"ETag": f'"{hashlib.sha1(data).hexdigest()}"', "X-Repo-Commit": repo_sha(files), "Content-Type": "application/octet-stream"}
        if self.rec.method == "HEAD":
            self.rec.status = 200
            self.send_response(200)
            for k, v in {**headers, "Content-Length": str(len(data))}.items():
                self.send_header(k, v)
            self.end_headers()
            return None
        self._send(200, data, headers)

    def repo_info(self, ns: str, name: str, rev: str) -> None:
        """GET /api/models/{repo}/revision/{rev}: the sha and files snapshot_download starts from (a private repo
        only for its owner)."""
        if not self._user(ns):
            return
        files = self.emulator.repos.get(f"model:{ns}/{name}")
        if files is None:
            return self._error(404, "Repository not found", {"X-Error-Code": "RepoNotFound"})
        self._json({"id": f"{ns}/{name}", "sha": repo_sha(files), "private": True, "siblings": [{"rfilename": p} for p in sorted(files)]})

    def repo_tree(self, ns: str, name: str, rev: str, path: str | None = None) -> None:
        """GET /api/models/{repo}/tree/{rev}[/{path}]: the files under path (recursive=true: at any depth; else one level)."""
        import hashlib

        if not self._user(ns):
            return
        files = self.emulator.repos.get(f"model:{ns}/{name}")
        if files is None:
            return self._error(404, "Repository not found", {"X-Error-Code": "RepoNotFound"})
        prefix = path.strip("/") + "/" if path and path.strip("/") else ""
        recursive = dict(self.query).get("recursive", "False").lower() == "true"
        entries = [{"type": "file", "path": p, "size": len(e.get("content", b"")) if "content" in e else e.get("size") or 0,
                    "oid": hashlib.sha1(e.get("content", b"")).hexdigest()}
                   for p, e in sorted(files.items()) if p.startswith(prefix) and (recursive or "/" not in p[len(prefix):])]
        self._json(entries)

    def validate_yaml(self) -> None:
        if self._user():
            self._json({"errors": [], "warnings": []})

    def _repo(self, repo_type: str, ns: str, name: str) -> str | None:
        if not self._user(ns):
            return None
        key = f"{repo_type[:-1]}:{ns}/{name}"
        if key not in self.emulator.repos:
            self._error(404, "Repository not found", {"X-Error-Code": "RepoNotFound"})
            return None
        return key

    def preupload(self, repo_type: str, ns: str, name: str, rev: str) -> None:
        if not self._repo(repo_type, ns, name):
            return
        files = json.loads(self.body_bytes).get("files", [])
        big = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
        self._json({"files": [
            {"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(big) or f["size"] > 1_000_000 else "regular", "shouldIgnore": False}
            for f in files
        ]})

    def repo_xet_write_token(self, repo_type: str, ns: str, name: str, rev: str) -> None:
        if not self._repo(repo_type, ns, name):
            return
        self._json({"accessToken": "xet-emulator", "exp": int(time.time()) + 3600, "casUrl": f"local://{self.emulator.cas_dir}"})

    def commit(self, repo_type: str, ns: str, name: str, rev: str) -> None:
        import base64

        key = self._repo(repo_type, ns, name)
        if not key:
            return
        ops = [json.loads(line) for line in self.body_bytes.splitlines() if line.strip()]
        with self.emulator.lock:
            files = self.emulator.repos[key]
            for op in ops:
                value = op.get("value", {})
                if op.get("key") == "file":
                    files[value["path"]] = {"content": base64.b64decode(value["content"])}
                elif op.get("key") == "lfsFile":
                    files[value["path"]] = {"oid": value.get("oid"), "size": value.get("size")}
                elif op.get("key") == "deletedFile":
                    files.pop(value["path"], None)
            self.emulator.commits.append({"repo": key, "ops": ops})
        oid = secrets.token_hex(20)
        self._json({"commitUrl": f"{self.emulator.url}/{ns}/{name}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None})


_NS = r"(?P<ns>[^/]+)"
ROUTES: list[Route] = [
    ("GET", re.compile(r"/api/whoami-v2"), _Handler.whoami),
    ("GET", re.compile(r"/api/jobs/hardware"), _Handler.hardware),
    ("POST", re.compile(rf"/api/jobs/{_NS}"), _Handler.create_job),
    ("GET", re.compile(rf"/api/jobs/{_NS}"), _Handler.list_jobs),
    ("GET", re.compile(rf"/api/jobs/{_NS}/(?P<job_id>[^/]+)"), _Handler.inspect_job),
    ("GET", re.compile(rf"/api/jobs/{_NS}/(?P<job_id>[^/]+)/logs"), _Handler.job_logs),
    ("POST", re.compile(rf"/api/jobs/{_NS}/(?P<job_id>[^/]+)/cancel"), _Handler.cancel_job),
    ("POST", re.compile(rf"/api/buckets/{_NS}/(?P<name>[^/]+)"), _Handler.create_bucket),
    ("GET", re.compile(rf"/api/buckets/{_NS}/(?P<name>[^/]+)"), _Handler.bucket_info),
    ("GET", re.compile(rf"/api/buckets/{_NS}/(?P<name>[^/]+)/xet-write-token"), _Handler.xet_write_token),
    ("POST", re.compile(rf"/api/buckets/{_NS}/(?P<name>[^/]+)/batch"), _Handler.bucket_batch),
    ("POST", re.compile(r"/api/repos/create"), _Handler.create_repo),
    ("GET", re.compile(rf"/{_NS}/(?P<name>[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)"), _Handler.resolve),
    ("HEAD", re.compile(rf"/{_NS}/(?P<name>[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)"), _Handler.resolve),
    ("POST", re.compile(r"/api/validate-yaml"), _Handler.validate_yaml),
    ("GET", re.compile(rf"/api/models/{_NS}/(?P<name>[^/]+)/revision/(?P<rev>[^/]+)"), _Handler.repo_info),
    ("GET", re.compile(rf"/api/models/{_NS}/(?P<name>[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?"), _Handler.repo_tree),
    ("POST", re.compile(rf"/api/(?P<repo_type>models|datasets)/{_NS}/(?P<name>[^/]+)/preupload/(?P<rev>[^/]+)"), _Handler.preupload),
    ("GET", re.compile(rf"/api/(?P<repo_type>models|datasets)/{_NS}/(?P<name>[^/]+)/xet-write-token/(?P<rev>[^/]+)"), _Handler.repo_xet_write_token),
    ("POST", re.compile(rf"/api/(?P<repo_type>models|datasets)/{_NS}/(?P<name>[^/]+)/commit/(?P<rev>[^/]+)"), _Handler.commit),
]


def serve_hub(tmp_path: Path, monkeypatch: Any, user: str, orgs: tuple[str, ...] = ()):
    """A started emulator with one user whose token is in HF_TOKEN, and the real client pointed at it (HF_ENDPOINT,
    its own HF_HOME, offline mode lifted for this endpoint only, tuneforge's hf waits shortened); a generator for a
    fixture to yield from: the emulator stops after the test."""
    from huggingface_hub import constants

    emu = HubEmulator(tmp_path / "hub").start()
    token = "hf_" + secrets.token_urlsafe(24)
    emu.token = token  # type: ignore[attr-defined]
    emu.add_user(token, user, orgs=orgs)
    hf_home = tmp_path / "hf_home"
    for key, value in {"HF_ENDPOINT": emu.url, "HF_TOKEN": token, "HF_HOME": str(hf_home),
                       "HF_HUB_OFFLINE": "0",  # this endpoint only: the emulator on 127.0.0.1
                       "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TUNEFORGE_HF_BACKOFF": "0",
                       "TUNEFORGE_HF_LOG_POLL_SECONDS": "0", "TUNEFORGE_HF_TIMEOUT": "20"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(hf_home / "token"))
    try:
        yield emu
    finally:
        emu.stop()
