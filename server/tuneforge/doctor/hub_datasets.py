"""Datasets on the Hugging Face Hub, streamed with `datasets` (train split); refused at once when Hub
access is off. A Hub source is never cached (its identity is not a local file's)."""

from __future__ import annotations

import os
from typing import Iterator

from ..errors import MissingDependency, TuneforgeError
from .row_records import Item, Record


def hub_offline() -> bool:
    """HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def read_hub_dataset(hub_id: str) -> Iterator[Item]:
    """Every row of the dataset's train split; a row number stands for the line."""
    if hub_offline():
        raise TuneforgeError(
            f"{hub_id!r} is not a local file, and Hugging Face Hub access is off (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set).",
            "Pass a local file or directory, or unset HF_HUB_OFFLINE to stream the dataset from the Hub.",
            code="dataset.hub_offline",
        )
    try:
        from huggingface_hub import HfApi

        HfApi().dataset_info(hub_id, timeout=15)
    except Exception as exc:
        raise _hub_error(hub_id, exc) from None
    try:
        import datasets
    except ImportError:
        raise MissingDependency("datasets", "train") from None
    try:
        stream = datasets.load_dataset(hub_id, split="train", streaming=True)
        row = 0
        for value in stream:
            row += 1
            yield Record(row, dict(value))
    except TuneforgeError:
        raise
    except Exception as exc:
        raise _hub_error(hub_id, exc) from None


def _hub_error(hub_id: str, exc: Exception) -> TuneforgeError:
    name = type(exc).__name__
    if "NotFound" in name or "404" in str(exc):
        return TuneforgeError(f"No dataset {hub_id!r} on the Hugging Face Hub (or it is private).",
                              "Check the id on huggingface.co/datasets, or log in with `hf auth login` for a private one.",
                              code="dataset.hub_not_found")
    if "Gated" in name or "401" in str(exc) or "403" in str(exc):
        return TuneforgeError(f"The dataset {hub_id!r} needs access rights.",
                              "Accept its terms on huggingface.co and log in with `hf auth login`.",
                              code="dataset.hub_gated")
    return TuneforgeError(f"Cannot read {hub_id!r} from the Hub ({name}: {str(exc)[:200]}).",
                          "Check the network and the dataset id, or download it and validate the local files.",
                          code="dataset.hub_unreachable")
