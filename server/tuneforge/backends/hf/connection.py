"""One connection to Hugging Face for the hf backend: the endpoint, the client, the token, bounded waits.

The token is read when a connection is made (HF_TOKEN or the huggingface_hub login), kept on the
connection object only, and scrubbed from everything a call returns or raises.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from .errors import call, missing_token, translate

T = TypeVar("T")


def env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def bound_session_timeouts() -> None:
    """The client waits forever by default: give its shared session finite timeouts, unless the user
    installed their own. TUNEFORGE_HF_TIMEOUT (seconds to wait for an answer) overrides 60."""
    import httpx2
    from huggingface_hub.utils import get_session

    session = get_session()
    if session.timeout.read is None or getattr(session, "_tuneforge_bounded", False):
        read = env_float("TUNEFORGE_HF_TIMEOUT", 60.0)
        session.timeout = httpx2.Timeout(read, connect=min(10.0, read))
        session._tuneforge_bounded = True  # ours to adjust again; a user's own timeouts are left alone


@dataclass
class HubConnection:
    """An authenticated client for one backend call: every Hub request goes through `call`."""

    api: Any
    token: str
    endpoint: str

    @classmethod
    def open(cls) -> "HubConnection":
        from huggingface_hub import HfApi, constants, get_token

        endpoint = (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
        if constants.is_offline_mode():
            from huggingface_hub.errors import OfflineModeIsEnabled

            raise translate(OfflineModeIsEnabled("offline"), action="reach Hugging Face Jobs", endpoint=endpoint, secret=None)
        try:
            token = get_token()
        except Exception:  # noqa: BLE001  e.g. a failed OIDC exchange
            token = None
        if not token:
            raise missing_token()
        bound_session_timeouts()
        return cls(api=HfApi(endpoint=endpoint), token=token, endpoint=endpoint)

    def call(self, fn: Callable[[], T], action: str, *, retries: int = 0) -> T:
        return call(fn, action=action, endpoint=self.endpoint, secret=self.token, retries=retries)

    def whoami(self, retries: int) -> dict[str, Any]:
        return self.call(lambda: self.api.whoami(token=self.token), "check your Hugging Face account", retries=retries)
