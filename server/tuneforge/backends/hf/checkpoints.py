"""Where a Hugging Face job's checkpoint is, and which step it holds: the push target's `last-checkpoint`.

Every hf training job has a push target (actions/targets.py), and the templates push each checkpoint to it
in full (transformers' hub_strategy="checkpoint": weights, optimizer, scheduler, RNG and trainer state in
`last-checkpoint/`), so a continuation job downloads it from there. There is no second place: the
jobs-artifacts bucket is mounted read-only and holds only what was uploaded for the run.
"""

from __future__ import annotations

import json
import tempfile

from ...templates._shared.checkpoints import HUB_FOLDER, STATE_FILE, hub_location
from .connection import HubConnection
from .errors import HubError

RETRIES = 2


def hub_checkpoint(repo_id: str, folder: str = HUB_FOLDER) -> tuple[str, int] | None:
    """(hf://repo/last-checkpoint, its global step), or None when the repo holds no checkpoint there."""
    from huggingface_hub import hf_hub_download

    hub = HubConnection.open()
    with tempfile.TemporaryDirectory(prefix="tuneforge-ckpt-") as tmp:  # read once, never cached: it changes every save
        try:
            path = hub.call(lambda: hf_hub_download(repo_id, f"{folder}/{STATE_FILE}", token=hub.token,
                                                    endpoint=hub.endpoint, local_dir=tmp),
                            f"read the checkpoint in {repo_id}", retries=RETRIES)
        except HubError as err:
            if err.status == 404 or err.code == "hf.not_found":
                return None
            raise
        try:
            with open(path, encoding="utf-8") as fh:
                step = json.load(fh).get("global_step")
        except (OSError, ValueError, AttributeError):
            return None
    return (hub_location(repo_id, folder), step) if isinstance(step, int) and step > 0 else None


__all__ = ["hub_checkpoint"]
