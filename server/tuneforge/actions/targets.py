"""Where a run's results go: the one rule that a cloud run needs a push target.

Training (actions/train.py) and the GGUF export as a Hugging Face job (actions/export.py) both call
`require_push_target`: the cloud machine and its disk are deleted when the job ends, so whatever the
job makes must be pushed to a Hub repo.
"""

from __future__ import annotations

from ..config import RunConfig
from ..errors import ConfigError
from ..types import BackendName


def require_push_target(push_target: str | RunConfig | None, backend: str, *, example: str = "your-name/model-name",
                        local_hint: str = "") -> None:
    """Refuse (config.push_target_required) a run on a backend other than local with no Hub repo to push to.

    `push_target`: the repo id, or a RunConfig (its push_to_hub)."""
    if isinstance(push_target, RunConfig):
        push_target = push_target.push_to_hub
    # ray: outputs land in the job folder's output_dir, which the cluster must share (docs/ray.md); a push is optional
    if backend not in (BackendName.LOCAL, BackendName.RAY) and not push_target:
        raise ConfigError(
            "A Hugging Face Jobs run needs somewhere to push: the cloud machine is deleted when the job ends.",
            f"Add --push-to {example} (a model repo you can write to){local_hint}.",
            code="config.push_target_required",
            details={"field": "push_to_hub"},
        )


__all__ = ["require_push_target"]
