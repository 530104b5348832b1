"""Hub failures as TuneforgeErrors with a fix, retries for idempotent calls, and token scrubbing.

Every call the hf backend makes to Hugging Face goes through `call()`: it retries (with backoff and
Retry-After) only when asked to, i.e. for calls that can be repeated safely (inspect, logs, list,
whoami, cancel, uploads to fixed paths), and turns whatever the client raised into one TuneforgeError
whose text never holds the token.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Callable, TypeVar

from ...errors import TuneforgeError
from ...secrets import scrub as scrub_secrets

T = TypeVar("T")

TOKENS_URL = "https://huggingface.co/settings/tokens"
BILLING_URL = "https://huggingface.co/settings/billing"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class HubError(TuneforgeError):
    """A Hugging Face request failed; `status` is the HTTP status (None: no answer)."""

    default_code = "hf.error"

    def __init__(self, message: str, fix: str | None = None, *, code: str, status: int | None = None, retryable: bool = False):
        super().__init__(message, fix, code=code, details={"http_status": status} if status else None)
        self.status = status
        self.retryable = retryable


def backoff_seconds() -> float:
    """Base delay between retries (doubles each time). TUNEFORGE_HF_BACKOFF overrides it (tests use 0)."""
    try:
        return max(0.0, float(os.environ.get("TUNEFORGE_HF_BACKOFF", "2")))
    except ValueError:
        return 2.0


def scrub(text: str, secret: str | None) -> str:
    return scrub_secrets(text, [secret])


def status_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    value = getattr(response, "headers", {}).get("Retry-After") if response is not None else None
    try:
        return min(60.0, float(value)) if value is not None else None
    except ValueError:
        return None


def server_message(exc: BaseException, secret: str | None) -> str:
    msg = getattr(exc, "server_message", None) or ""
    return scrub(" ".join(str(msg).split())[:300], secret)


def translate(exc: BaseException, *, action: str, endpoint: str, secret: str | None) -> HubError:
    """What went wrong, in words, with what to do next. Never the token."""
    import httpx2
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalTokenNotFoundError,
        OfflineModeIsEnabled,
    )

    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, OfflineModeIsEnabled):
        return HubError(
            f"Cannot {action}: offline mode is on (HF_HUB_OFFLINE=1), and Hugging Face Jobs runs in the cloud.",
            "Unset HF_HUB_OFFLINE (and TRANSFORMERS_OFFLINE) for this command, or use --backend local.", code="hf.offline",
        )
    if isinstance(exc, LocalTokenNotFoundError):
        return missing_token()
    if isinstance(exc, httpx2.TimeoutException):
        return HubError(
            f"Cannot {action}: Hugging Face ({endpoint}) did not answer in time ({type(exc).__name__}).",
            "Check your network or proxy and retry; the Hub status is at https://status.huggingface.co.",
            retryable=True, code="hf.timeout",
        )
    if isinstance(exc, (httpx2.TransportError, ConnectionError)):
        return HubError(
            f"Cannot {action}: could not connect to Hugging Face at {endpoint} ({type(exc).__name__}).",
            "Check your network connection, proxy and HF_ENDPOINT, then retry.",
            retryable=True, code="hf.unreachable",
        )
    if isinstance(exc, HfHubHTTPError):
        status = status_of(exc)
        detail = server_message(exc, secret)
        said = f" Hugging Face said: {detail}" if detail else ""
        if status == 401:
            return HubError(
                f"Cannot {action}: Hugging Face rejected the token (401: invalid or expired).{said}",
                f"Create a token with write access at {TOKENS_URL} and set HF_TOKEN to it, or run `hf auth login --force`.",
                status=status, code="hf.auth_invalid",
            )
        if status == 402:
            return HubError(
                f"Cannot {action}: Hugging Face Jobs needs a paid plan or credits (402 Payment Required).{said}",
                f"Subscribe to PRO or add credits / a payment method at {BILLING_URL}, or train here with --backend local.",
                status=status, code="hf.payment_required",
            )
        if status == 403:
            return HubError(
                f"Cannot {action}: Hugging Face refused it (403 Forbidden).{said}",
                f"Use a token with write access (a fine-grained token needs the Jobs permission; {TOKENS_URL}) "
                f"for a namespace you belong to, and check that the account has a paid plan or credits ({BILLING_URL}).",
                status=status, code="hf.forbidden",
            )
        if status == 404:
            return HubError(
                f"Cannot {action}: Hugging Face has no such resource (404).{said}",
                "The job may have been deleted, or the token belongs to another account: check `hf auth whoami` "
                "and the job URL.",
                status=status, code="hf.not_found",
            )
        if status == 409:
            return HubError(
                f"Cannot {action}: it conflicts with something that already exists (409 Conflict).{said}",
                "Check `tuneforge jobs list` for a job submitted already; retry with a new job if none runs.",
                status=status, code="hf.conflict",
            )
        if status == 429:
            wait = retry_after(exc)
            return HubError(
                f"Cannot {action}: Hugging Face is rate-limiting this account (429 Too Many Requests).{said}",
                f"Wait {f'{wait:.0f} s' if wait else 'a minute'} and retry; poll less often (e.g. `tuneforge jobs wait` instead of a loop).",
                status=status,
                retryable=True, code="hf.rate_limited",
            )
        if status is not None and status >= 500:
            return HubError(
                f"Cannot {action}: Hugging Face had a server error ({status}).{said}",
                "Retry in a few minutes; the Hub status is at https://status.huggingface.co.",
                status=status,
                retryable=True, code="hf.server_error",
            )
        if status == 400 or status == 422:
            return HubError(
                f"Cannot {action}: Hugging Face rejected the request ({status}).{said}",
                "Check the flavor, timeout and labels (see `hf jobs hardware` for flavors).",
                status=status, code="hf.bad_request",
            )
        return HubError(f"Cannot {action}: Hugging Face answered HTTP {status}.{said}", "Retry; if it persists, check the job URL.", status=status, code="hf.http_error")
    text = scrub(f"{type(exc).__name__}: {exc}", secret)
    return HubError(f"Cannot {action}: unexpected failure talking to Hugging Face ({text[:300]}).", "Retry; if it persists, report it.", code="hf.unexpected")


def missing_token() -> HubError:
    return HubError(
        "No Hugging Face token found: Hugging Face Jobs needs one to run and push your model.",
        f"Create a token with write access at {TOKENS_URL}, then set HF_TOKEN or run `hf auth login`.", code="hf.token_missing",
    )


def call(
    fn: Callable[[], T],
    *,
    action: str,
    endpoint: str,
    secret: str | None,
    retries: int = 0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run one Hub call; retry retryable failures `retries` times (only for calls safe to repeat)."""
    attempt = 0
    while True:
        try:
            # Nothing a Hub call prints may reach stdout: it is the CLI's JSON and the MCP server's channel.
            with contextlib.redirect_stdout(sys.stderr):
                return fn()
        except TuneforgeError:
            raise
        except Exception as exc:  # noqa: BLE001  every failure becomes a HubError with a fix
            err = translate(exc, action=action, endpoint=endpoint, secret=secret)
            if not err.retryable or attempt >= retries:
                raise err from None
            delay = retry_after(exc) or backoff_seconds() * (2**attempt)
            attempt += 1
            sleep(delay)
