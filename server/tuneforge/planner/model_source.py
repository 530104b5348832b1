"""Find a model's config.json: a local directory, the Hugging Face cache, or the Hub (config only, never weights)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import is_repo_id
from ..errors import TuneforgeError
from .architecture import Architecture, from_config, guess_architecture
from .hardware import hub_offline

HUB_TIMEOUT_SECONDS = 10.0


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise TuneforgeError(f"Cannot read {what} {path}: {exc}.", "Check the file exists and is readable.",
                             code="plan.model_config_unreadable") from None
    except json.JSONDecodeError as exc:
        raise TuneforgeError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON in {what}: {exc.msg}.",
                             "Fix or re-download the model's config.json.", code="plan.model_config_invalid") from None
    if not isinstance(data, dict):
        raise TuneforgeError(f"{path} does not hold a JSON object.", "Use the model's own config.json.",
                             code="plan.model_config_invalid")
    return data


def _local_config(model: str) -> tuple[dict[str, Any], str] | None:
    p = Path(model).expanduser()
    looks_local = model.startswith(("/", "./", "../", "~")) or p.exists()
    if not looks_local:
        return None
    if not p.exists():
        raise TuneforgeError(f"The model path {model!r} does not exist.", "Pass an existing model directory or a Hub id like 'Qwen/Qwen3-0.6B'.",
                             code="plan.model_not_found")
    cfg = p if p.is_file() else p / "config.json"
    if not cfg.is_file():
        raise TuneforgeError(
            f"The model directory {p} has no config.json, so its size cannot be computed.",
            "Point --model at a Hugging Face model directory (config.json + weights), e.g. one saved with save_pretrained().",
            code="plan.model_no_config",
        )
    return _read_json(cfg, "model config"), f"config.json in {cfg.parent}"


def _cached_config(repo_id: str) -> tuple[dict[str, Any], str] | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001
        return None
    if isinstance(found, str) and Path(found).is_file():
        return _read_json(Path(found), "model config"), "config.json in the Hugging Face cache"
    return None


def _hub_config(repo_id: str) -> tuple[dict[str, Any], str]:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        path = hf_hub_download(repo_id, "config.json", etag_timeout=HUB_TIMEOUT_SECONDS)
    except GatedRepoError:
        raise TuneforgeError(
            f"{repo_id} is a gated model: its config.json needs an accepted license and a token.",
            f"Accept the license on https://huggingface.co/{repo_id}, then log in with `hf auth login` (or set HF_TOKEN).",
            code="plan.model_gated",
        ) from None
    except RepositoryNotFoundError:
        raise TuneforgeError(
            f"There is no model {repo_id!r} on the Hugging Face Hub (or it is private).",
            "Check the spelling (owner/name), or log in with `hf auth login` if it is private.",
            code="plan.model_not_found",
        ) from None
    except LocalEntryNotFoundError as exc:  # a subclass of EntryNotFoundError: the Hub could not be reached
        raise _Unreachable(str(exc)) from None
    except EntryNotFoundError:
        raise TuneforgeError(
            f"{repo_id} has no config.json: it is not a transformers model tuneforge can size (GGUF-only or adapter repo?).",
            "Use the base model's repo (the one with config.json and safetensors weights).",
            code="plan.model_no_config",
        ) from None
    except (HfHubHTTPError, OSError) as exc:
        raise _Unreachable(str(exc)) from None
    return _read_json(Path(path), "model config"), "config.json from the Hugging Face Hub"


class _Unreachable(Exception):
    pass


def resolve_architecture(model: str) -> tuple[Architecture, list[str]]:
    """The model's architecture and notes on where it came from. Raises TuneforgeError when unknown."""
    if not model or not model.strip():
        raise TuneforgeError("No model given.", "Pass --model with a Hub id (e.g. Qwen/Qwen3-0.6B) or a local model directory.",
                             code="plan.no_model")
    local = _local_config(model)
    if local:
        cfg, source = local
        return from_config(cfg, source), [f"Model size computed from {source}."]
    if not is_repo_id(model):
        raise TuneforgeError(f"{model!r} is neither a local model directory nor a Hub id like 'owner/name'.",
                             "Pass a Hub model id (e.g. Qwen/Qwen3-0.6B) or the path of a model directory.",
                             code="plan.model_not_found")
    cached = _cached_config(model)
    if cached:
        cfg, source = cached
        return from_config(cfg, source), [f"Model size computed from {source}."]
    reason = "the Hub is offline (HF_HUB_OFFLINE=1)" if hub_offline() else ""
    if not reason:
        try:
            cfg, source = _hub_config(model)
            return from_config(cfg, source), [f"Model size computed from {source}."]
        except _Unreachable as exc:
            reason = f"the Hub could not be reached ({str(exc).splitlines()[0][:160]})"
    guess = guess_architecture(model)
    if guess is not None:
        return guess, [
            f"GUESS: no config.json for {model} was found locally and {reason}; its size is guessed from the name "
            "only, with a Llama-shaped stand-in. Memory and cost may be far off: rerun online, or pass a local model directory."
        ]
    raise TuneforgeError(
        f"Cannot size the model {model!r}: no config.json locally or in the Hugging Face cache, and {reason}.",
        "Run once with network access (only config.json is downloaded), or pass --model a local model directory.",
        code="plan.model_unavailable_offline",
    )
