"""The `local` backend: each job runs detached on this machine under a supervisor (runner.py)."""

from .backend import LocalBackend


def create_backend() -> LocalBackend:
    return LocalBackend()


__all__ = ["LocalBackend", "create_backend"]
