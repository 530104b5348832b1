"""Does a run need the user's Hugging Face token? Only to push, or to read a Hub repo that is not public.

Local runs get the token only when this says so (the local supervisor withholds it otherwise), so a
training script that needs nothing from the Hub never sees it.
"""

from __future__ import annotations

from pathlib import Path

from ..config import RunConfig


def hub_refs(config: RunConfig) -> list[tuple[str, str]]:
    """(repo type, id) of every Hub repo the run reads (local paths are absolute once validated)."""
    refs = [("model", config.model), ("dataset", config.dataset.path), ("dataset", config.dataset.eval_path)]
    return [(kind, ref) for kind, ref in refs if ref and not Path(ref).is_absolute()]


def is_public(kind: str, repo_id: str) -> bool:
    """True when the repo can be read without a token (asked anonymously; any failure counts as no)."""
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(repo_id, token=False) if kind == "model" else HfApi().dataset_info(repo_id, token=False)
    except Exception:  # noqa: BLE001  gated, private, missing or unreachable: let the run have the token
        return False
    return not getattr(info, "gated", False) and not getattr(info, "private", False)


def needs_hub_token(config: RunConfig) -> bool:
    if config.push_to_hub:
        return True
    refs = hub_refs(config)
    if not refs:
        return False
    from huggingface_hub import constants

    if constants.is_offline_mode():
        return False  # nothing can be fetched: the local cache needs no token
    return not all(is_public(kind, ref) for kind, ref in refs)
