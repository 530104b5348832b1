"""Notifications when a job ends: a JSON summary POSTed to a webhook (Slack incoming webhooks read `text`).

Stdlib only: the server imports it as `tuneforge.templates._shared.notify`, and a cloud job's wrapper
(`_notify_after.py`, next to the templates) imports it as `_shared.notify`. The URL is a secret: it is
read from the environment (TUNEFORGE_NOTIFY_URL) or passed in, never printed, and every string of a
payload is scrubbed of it and of Hugging Face tokens before it is sent.

`send` retries connection errors, timeouts, 429 and 5xx answers with exponential backoff inside a
bounded total time, and never raises: a failed notification never fails or blocks a job's outcome.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

NOTIFY_ENV = "TUNEFORGE_NOTIFY_URL"
#: environment variables whose values never go into a payload
SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", NOTIFY_ENV)
MASK = "***"
TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9_-]{16,}")
ATTEMPTS = 4
TIMEOUT_SECONDS = 5.0
BACKOFF_SECONDS = 1.0
#: the most time `send` spends, all attempts and waits together
BUDGET_SECONDS = 45.0
TERMINAL_STAGES = ("COMPLETED", "ERROR", "CANCELED")


def valid_url(url: str | None) -> bool:
    """An http(s) URL with a host: what a webhook can be."""
    if not url or any(c.isspace() for c in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def scrub_payload(value: Any, secrets: list[str]) -> Any:
    """The payload with every secret value and anything shaped like a Hugging Face token masked, in every string."""
    if isinstance(value, str):
        for secret in secrets:
            if secret and len(secret) >= 8:
                value = value.replace(secret, MASK)
        return TOKEN_PATTERN.sub("hf_" + MASK, value)
    if isinstance(value, dict):
        return {scrub_payload(k, secrets): scrub_payload(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_payload(v, secrets) for v in value]
    return value


def env_secrets(env: dict[str, str] | None = None) -> list[str]:
    env = dict(os.environ) if env is None else env
    return [env[k] for k in SECRET_ENV if env.get(k)]


def _retry_after(err: urllib.error.HTTPError) -> float | None:
    try:
        return float(err.headers.get("Retry-After") or "")
    except (TypeError, ValueError):
        return None


def send(url: str | None, payload: dict[str, Any], *, attempts: int = ATTEMPTS, timeout: float = TIMEOUT_SECONDS,
         backoff: float = BACKOFF_SECONDS, budget: float = BUDGET_SECONDS, secrets: list[str] | None = None) -> bool:
    """POST the payload as JSON; True when the receiver answered 2xx. Retries connection errors, timeouts, 429
    and 5xx with exponential backoff (backoff, 2x, 4x ... seconds) while attempts and the time budget last.
    Never raises, never prints the URL."""
    if not valid_url(url):
        return False
    assert url is not None
    try:
        body = json.dumps(scrub_payload(payload, [url, *env_secrets(), *(secrets or [])]), default=str).encode("utf-8")
    except (TypeError, ValueError) as exc:
        print(f"tuneforge: notification not sent: the summary is not JSON ({exc})", file=sys.stderr)
        return False
    deadline = time.monotonic() + budget
    why = "no attempt made"
    for attempt in range(max(1, attempts)):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "tuneforge-notify"})
        wait = backoff * 2 ** attempt
        try:
            with urllib.request.urlopen(request, timeout=min(timeout, left)) as answer:
                answer.read(1024)
                return True
        except urllib.error.HTTPError as err:
            why = f"the receiver answered HTTP {err.code}"
            if err.code != 429 and err.code < 500:
                break  # a 4xx other than 429 will not change by asking again
            wait = max(wait, min(_retry_after(err) or 0.0, 10.0))
        except (urllib.error.URLError, OSError, ValueError) as exc:  # refused, unreachable, timeout, bad answer
            reason = getattr(exc, "reason", exc)
            why = f"could not reach the receiver ({type(reason).__name__})"
        if attempt + 1 < attempts and time.monotonic() + wait < deadline:
            time.sleep(wait)
        elif attempt + 1 < attempts:
            break
    print(f"tuneforge: notification not sent: {why} (the job's outcome is unchanged)", file=sys.stderr)
    return False


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def metrics_of(result: dict[str, Any] | None) -> dict[str, Any]:
    """The figures worth a message from a result.json: train loss, steps, runtime, eval before -> after."""
    result = result or {}
    out: dict[str, Any] = {}
    for key in ("train_loss", "steps", "runtime_seconds", "tokens_trained", "eval_loss_before", "eval_loss_after"):
        if result.get(key) is not None:
            out[key] = result[key]
    ev = result.get("eval") or {}
    if isinstance(ev, dict) and (ev.get("before") or ev.get("after")):
        out["eval"] = {"before": ev.get("before") or {}, "after": ev.get("after") or {}}
    return out


def outputs_of(result: dict[str, Any] | None, outputs: dict[str, Any] | None) -> dict[str, Any]:
    """Where the model went: adapter / merged / model folder, Hub repo and its URL, the output folder."""
    merged = {**(outputs or {}), **(result or {})}
    keys = ("adapter_dir", "merged_dir", "model_dir", "output_dir", "hub_repo", "hub_url", "gguf_files")
    return {k: merged[k] for k in keys if merged.get(k)}


def _text(job_id: str, stage: str, label: str, message: str, metrics: dict[str, Any], outputs: dict[str, Any],
          diagnosis: dict[str, Any] | None, cost_usd: float | None, elapsed: float | None, url: str | None) -> str:
    icon = {"COMPLETED": ":white_check_mark:", "ERROR": ":x:", "CANCELED": ":no_entry_sign:"}.get(stage, ":information_source:")
    head = f"{icon} tuneforge job {job_id} ({label}) {stage}"
    if elapsed is not None:
        head += f" after {int(elapsed // 60)}m{int(elapsed % 60):02d}s"
    if cost_usd is not None:
        head += f", about ${cost_usd:.2f}"
    lines = [head]
    if stage != "COMPLETED" and message:
        lines.append(message[:500])
    figures = []
    if "train_loss" in metrics:
        figures.append(f"train loss {_num(metrics['train_loss'])}")
    if "eval_loss_before" in metrics and "eval_loss_after" in metrics:
        figures.append(f"eval loss {_num(metrics['eval_loss_before'])} -> {_num(metrics['eval_loss_after'])}")
    for name, after in ((metrics.get("eval") or {}).get("after") or {}).items():
        before = ((metrics.get("eval") or {}).get("before") or {}).get(name)
        if name != "eval_loss" and isinstance(after, (int, float)):
            figures.append(f"{name} {_num(before) if before is not None else '?'} -> {_num(after)}")
    if figures:
        lines.append(", ".join(figures[:6]))
    if diagnosis:
        lines.append(f"diagnosis: {diagnosis.get('kind')}; fix: {diagnosis.get('fix') or ''}".rstrip())
    where = [outputs[k] for k in ("hub_repo", "adapter_dir", "merged_dir", "model_dir") if outputs.get(k)]
    if where:
        lines.append("outputs: " + ", ".join(str(w) for w in where))
    if url:
        lines.append(url)
    return "\n".join(lines)


def summary(*, job_id: str, stage: str, kind: str = "train", method: str | None = None, backend: str | None = None,
            model: str | None = None, message: str = "", error: str | None = None, result: dict[str, Any] | None = None,
            outputs: dict[str, Any] | None = None, diagnosis: dict[str, Any] | None = None,
            cost_usd: float | None = None, elapsed_seconds: float | None = None, url: str | None = None) -> dict[str, Any]:
    """The notification of a job that ended: what, how, its figures and outputs, and a `text` for chat webhooks."""
    metrics = metrics_of(result)
    outs = outputs_of(result, outputs)
    label = ", ".join(x for x in (kind if kind != "train" else None, method, backend, model) if x) or kind
    return {
        "text": _text(job_id, stage, label, message, metrics, outs, diagnosis, cost_usd, elapsed_seconds, url),
        "source": "tuneforge",
        "job_id": job_id,
        "stage": stage,
        "kind": kind,
        "method": method,
        "backend": backend,
        "model": model,
        "message": message,
        "error": error,
        "metrics": metrics,
        "outputs": outs,
        "diagnosis": diagnosis,
        "cost_usd": cost_usd,
        "elapsed_seconds": elapsed_seconds,
        "url": url,
        "finished_at": time.time(),
    }
