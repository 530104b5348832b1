"""The `ray` backend: the same template and config as a Ray job on a team's own cluster (Ray Job Submission)."""

from .backend import RayBackend


def create_backend() -> RayBackend:
    return RayBackend()


__all__ = ["RayBackend", "create_backend"]
