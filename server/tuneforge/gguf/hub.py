"""Pushing a finished GGUF folder to the Hub: the verified files, the Modelfile and a model card."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import TuneforgeError

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


def check_can_push(repo_id: str) -> None:
    """Fail fast (before any conversion) when a push could not happen."""
    if not REPO_ID.match(repo_id):
        raise TuneforgeError(f"--push-to {repo_id!r} is not a Hub repo id.", "Write it as owner/name, e.g. me/my-model-GGUF.", code="gguf.bad_push_target")
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise TuneforgeError(f"Cannot push to {repo_id}: the Hugging Face Hub is in offline mode (HF_HUB_OFFLINE=1).",
                             "Unset HF_HUB_OFFLINE and run again with network access, or drop --push-to.", code="hf.offline")
    if not get_token():
        raise TuneforgeError(f"Cannot push to {repo_id}: no Hugging Face token found.",
                             "Log in with `hf auth login` or set HF_TOKEN in the environment (a token with write access).", code="hf.no_token")


def push(folder: Path, repo_id: str, files: list[str], *, private: bool | None = None) -> str:
    """Create the repo if needed and upload these GGUF files (names in folder), the Modelfile and README.md."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    check_can_push(repo_id)
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), allow_patterns=[*files, "Modelfile", "README.md"],
                          commit_message="GGUF export by tuneforge")
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        fix = ("Use a token with write access to that namespace (`hf auth login`)." if status in (401, 403)
               else "Check the repo id and the network, then run again.")
        raise TuneforgeError(f"Pushing to {repo_id} failed (HTTP {status}).", fix, code="hf.push_failed") from None
    except OSError as exc:
        raise TuneforgeError(f"Pushing to {repo_id} failed: {exc}.", "Check the network, then run again.", code="hf.push_failed") from None
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return f"{endpoint}/{repo_id}"
