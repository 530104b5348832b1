"""Training checkpoints: which one a run can continue from, and how a cloud run's is named (stdlib only).

The templates (resuming) and the server (`tuneforge jobs resume`, the local supervisor's automatic
restart) share these rules. A checkpoint is a `checkpoint-N` folder as transformers' Trainer writes it:
weights, optimizer, scheduler and RNG state, then `trainer_state.json` last. It is complete when that
state file reads back with global_step N and the weights and the optimizer are there; a folder cut
short by a kill is skipped. A cloud run's checkpoint lives in its push target as `last-checkpoint`
(transformers' hub_strategy="checkpoint"), named `hf://owner/repo/last-checkpoint`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

PREFIX = "checkpoint-"
CHECKPOINTS_DIR = "checkpoints"  # under a run's output_dir (templates/_trainer.py trainer_args)
STATE_FILE = "trainer_state.json"
HUB_SCHEME = "hf://"
HUB_FOLDER = "last-checkpoint"
WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin", "model.safetensors", "model.safetensors.index.json",
           "pytorch_model.bin", "pytorch_model.bin.index.json")
_HUB = re.compile(r"^hf://([A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})/([A-Za-z0-9][A-Za-z0-9_.-]{0,127})$")


def state_step(folder: str | Path) -> int | None:
    """The global step in a checkpoint's trainer_state.json; None when it is missing or unreadable."""
    try:
        step = json.loads((Path(folder) / STATE_FILE).read_text(encoding="utf-8")).get("global_step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) and step > 0 else None


def checkpoint_step(folder: str | Path) -> int | None:
    """The step a complete checkpoint continues from (None: not a complete checkpoint)."""
    folder = Path(folder)
    if not folder.is_dir() or not any((folder / w).is_file() for w in WEIGHTS):
        return None
    if not any(p.name.startswith("optimizer") for p in folder.iterdir()):
        return None  # weights alone (save_only_model): the optimizer and scheduler could not continue
    step = state_step(folder)
    if step is None or (folder.name.startswith(PREFIX) and folder.name != f"{PREFIX}{step}"):
        return None
    return step


def newest_complete(root: str | Path) -> Path | None:
    """The complete checkpoint-N under ROOT with the highest N (None: there is none)."""
    root = Path(root)
    if not root.is_dir():
        return None
    found = sorted((int(p.name[len(PREFIX):]), p) for p in root.iterdir()
                   if p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit())
    return next((p for _, p in reversed(found) if checkpoint_step(p) is not None), None)


def local_resume_point(output_dir: str | Path, resumed_from: str | None = None) -> tuple[str, int] | None:
    """(folder, step) of the newest complete checkpoint under OUTPUT_DIR/checkpoints, else of the local
    checkpoint the run itself resumed from (it stopped before saving one of its own); None: neither."""
    folder = newest_complete(Path(output_dir) / CHECKPOINTS_DIR)
    if folder is None and resumed_from and not resumed_from.startswith(HUB_SCHEME):
        folder = Path(resumed_from)
    step = checkpoint_step(folder) if folder is not None else None
    return (str(folder), step) if step is not None else None


def hub_location(repo_id: str, folder: str = HUB_FOLDER) -> str:
    return f"{HUB_SCHEME}{repo_id}/{folder}"


def parse_hub_location(value: str) -> tuple[str, str] | None:
    """`hf://owner/repo/folder` -> (repo id, folder); None for anything else (a local path)."""
    match = _HUB.match(value)
    return (match.group(1), match.group(2)) if match else None


def check_location(value: str) -> str:
    """A resume_from_checkpoint value: hf://owner/repo/folder, or a complete local checkpoint (absolute path)."""
    if value.startswith(HUB_SCHEME):
        if parse_hub_location(value) is None or ".." in value:
            raise ValueError(f"resume_from_checkpoint {value!r} is not hf://owner/repo/{HUB_FOLDER}")
        return value
    path = Path(value).expanduser()
    if checkpoint_step(path) is None:
        raise ValueError(f"resume_from_checkpoint {value!r} is not a complete checkpoint folder ({STATE_FILE}, "
                         "weights and optimizer state)")
    return str(path.resolve())
