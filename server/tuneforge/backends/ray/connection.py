"""One connection to a Ray cluster: its address (--ray-address or RAY_ADDRESS), Ray's own job client, errors.

Every call goes through `ray.job_submission.JobSubmissionClient` (or Ray's state API for the node list):
tuneforge never writes HTTP to the cluster itself. A cluster that does not answer becomes a
TuneforgeError `ray.unreachable` naming the address and what to do, never a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from ...errors import TuneforgeError

T = TypeVar("T")

ADDRESS_ENV = "RAY_ADDRESS"
DEFAULT_PORT = 8265  # the dashboard's, where the Job Submission API listens


class RayError(TuneforgeError):
    """A Ray cluster call that failed (code ray.*)."""


def set_address(address: str | None) -> None:
    """`--ray-address` / `ray_address=`: the cluster this process talks to (the variable Ray itself reads, so
    the planner, the backend and the sweep and pipeline drivers started from here all see the same one)."""
    if address:
        os.environ[ADDRESS_ENV] = address.strip()


def address(given: str | None = None) -> str:
    """The cluster's Job Submission address as http(s)://host:port (a bare host:port gets http://)."""
    raw = (given or os.environ.get(ADDRESS_ENV) or "").strip()
    if not raw:
        raise RayError("No Ray cluster to submit to: neither --ray-address nor RAY_ADDRESS is set.",
                       "Pass --ray-address http://HEAD:8265 (the head's dashboard address), or export RAY_ADDRESS.",
                       code="ray.address_missing")
    if raw.startswith("ray://"):
        raise RayError(f"{raw} is a Ray Client address; tuneforge submits through the Job Submission API.",
                       f"Use the head's dashboard address, e.g. http://{raw[6:].split(':')[0]}:{DEFAULT_PORT}.",
                       code="ray.client_address")
    if "://" not in raw:
        raw = f"http://{raw}" if ":" in raw else f"http://{raw}:{DEFAULT_PORT}"
    return raw.rstrip("/")


def unreachable(addr: str, exc: BaseException | None = None) -> RayError:
    why = f" ({type(exc).__name__})" if exc is not None else ""
    return RayError(f"The Ray cluster at {addr} does not answer{why}.",
                    f"Check that the head is up (`ray status` on it) and that {addr} is its dashboard address "
                    "(--ray-address or RAY_ADDRESS).", code="ray.unreachable", details={"address": addr})


def is_missing(exc: BaseException) -> bool:
    """Ray's answer for a submission id it does not know (404 from the head)."""
    text = str(exc).lower()
    return "does not exist" in text or "404" in text or "not found" in text


def is_duplicate(exc: BaseException) -> bool:
    """Ray's answer for a submission id already in use."""
    return "already exists" in str(exc).lower()


@dataclass
class RayConnection:
    """Ray's job client for one address; every cluster call goes through `call`."""

    client: Any
    address: str

    @classmethod
    def open(cls, given: str | None = None) -> "RayConnection":
        addr = address(given)
        try:
            from ray.job_submission import JobSubmissionClient
        except ImportError:
            raise RayError("The ray backend needs Ray's job client, which is not installed.",
                           'Install it: pip install "tuneforge[ray]" (or pip install "ray[default]").',
                           code="ray.not_installed") from None
        try:
            client = JobSubmissionClient(addr)
        except (ConnectionError, OSError) as exc:
            raise unreachable(addr, exc) from None
        except Exception as exc:  # noqa: BLE001 - Ray raises plain exceptions for version or auth problems
            raise RayError(f"Ray's job client could not connect to {addr}: {exc}",
                           "Check the address and that the head runs a Ray version with the Job Submission API.",
                           code="ray.connect_failed", details={"address": addr}) from None
        return cls(client=client, address=addr)

    def call(self, fn: Callable[[], T], action: str) -> T:
        try:
            return fn()
        except (ConnectionError, OSError) as exc:
            raise unreachable(self.address, exc) from None
        except RayError:
            raise
        except Exception as exc:  # noqa: BLE001 - Ray answers errors as RuntimeError with the head's text
            if _connection_failure(exc):
                raise unreachable(self.address, exc) from None
            raise RayError(f"Ray could not {action}: {exc}", "Check the cluster with `ray status` and "
                           "`ray job list` on the head.", code="ray.call_failed",
                           details={"address": self.address}) from exc


def _connection_failure(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(w in text for w in ("connection refused", "failed to connect", "max retries exceeded", "connectionerror"))


def env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default
