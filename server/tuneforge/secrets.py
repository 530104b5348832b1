"""Secrets a job may touch: which environment variables hold them, how to withhold them, how to scrub them.

A leaf module. The Hugging Face token (HF_TOKEN, HUGGING_FACE_HUB_TOKEN, or the token file that
huggingface_hub reads) and a notification URL are secrets: they never go into a config, a log, a
record or a result. A local run gets the token only when it needs it; every line a job prints is
scrubbed of the values before it is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from .errors import ConfigError
from .templates._shared.notify import NOTIFY_ENV, valid_url

#: environment variables whose values are secrets
SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", NOTIFY_ENV)
#: environment variables that hold a Hugging Face token
TOKEN_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
MASK = "hf_***"
#: shorter values are not scrubbed (they would mask ordinary text)
MIN_SECRET_LENGTH = 8
#: secrets this process was handed (a --notify URL): scrubbed like the environment's
_registered: set[str] = set()


def register(value: str | None) -> None:
    """Treat this value as a secret from now on in this process: `secret_values` and `scrub` include it."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        _registered.add(value)


def notify_url(given: str | None, env: Mapping[str, str] = os.environ) -> str | None:
    """The notification URL of a run: the one given (--notify / notify=), else $TUNEFORGE_NOTIFY_URL; checked
    and registered as a secret. The error never repeats the URL."""
    url = (given or env.get(NOTIFY_ENV) or "").strip() or None
    if url is None:
        return None
    if not valid_url(url):
        where = "--notify" if given else NOTIFY_ENV
        raise ConfigError(f"The notification URL ({where}) is not an http(s) URL with a host.",
                          "Pass a webhook URL such as https://hooks.slack.com/services/..., or leave it out.",
                          code="notify.bad_url")
    register(url)
    return url


def token_file(env: Mapping[str, str] = os.environ) -> Path:
    """The token file huggingface_hub reads: $HF_TOKEN_PATH, else $HF_HOME/token."""
    if env.get("HF_TOKEN_PATH"):
        return Path(env["HF_TOKEN_PATH"]).expanduser()
    hf_home = env.get("HF_HOME") or str(Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface")
    return Path(hf_home).expanduser() / "token"


def secret_values(env: Mapping[str, str] = os.environ) -> list[str]:
    """Every secret value this process could hand to a job: secret variables and the saved token."""
    values = [env[k] for k in SECRET_ENV if env.get(k)] + sorted(_registered)
    try:
        saved = token_file(env).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        saved = ""
    if saved:
        values.append(saved)
    return sorted({v for v in values if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """The text with every secret value (and every registered one) replaced by a mask."""
    for secret in [*secrets, *sorted(_registered, key=len, reverse=True)]:
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, MASK)
    return text


def without_token(env: Mapping[str, str], *, nowhere: Path) -> dict[str, str]:
    """A copy of the environment in which no Hugging Face token can be found: the variables are removed
    and the token file is pointed at `nowhere` (a path that does not exist)."""
    out = {k: v for k, v in env.items() if k not in SECRET_ENV}
    out["HF_TOKEN_PATH"] = str(nowhere)
    return out
