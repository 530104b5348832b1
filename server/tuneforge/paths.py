"""Where tuneforge keeps things: one home directory, overridable with $TUNEFORGE_HOME."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .errors import TuneforgeError

METHOD_TEMPLATES = {
    "sft": "sft.py",
    "dpo": "dpo.py",
    "grpo": "grpo.py",
    "reward": "reward.py",
    "kto": "kto.py",
}


def home() -> Path:
    """$TUNEFORGE_HOME, default ~/.cache/tuneforge. Created on first use."""
    root = Path(os.environ.get("TUNEFORGE_HOME") or Path.home() / ".cache" / "tuneforge").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def jobs_dir() -> Path:
    d = home() / "jobs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def models_dir() -> Path:
    d = home() / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def templates_dir() -> Path:
    """The shipped templates, or $TUNEFORGE_TEMPLATE_DIR (a folder of reviewed replacements, for development)."""
    override = os.environ.get("TUNEFORGE_TEMPLATE_DIR")
    if override:
        return Path(override).expanduser().resolve()
    return Path(str(resources.files("tuneforge.templates")))


def template_path(method: str) -> Path:
    """The static training script for a method."""
    name = METHOD_TEMPLATES.get(method)
    if name is None:
        raise TuneforgeError(
            f"Unknown training method {method!r}.",
            f"Use one of: {', '.join(sorted(METHOD_TEMPLATES))}.",
        )
    path = templates_dir() / name
    if not path.is_file():
        raise TuneforgeError(
            f"The {method} template is not available in this version of tuneforge.",
            f"Available methods: {', '.join(m for m, n in METHOD_TEMPLATES.items() if (path.parent / n).is_file())}.",
        )
    return path


def data_path(*parts: str) -> Path:
    """A data file shipped inside the package (demo dataset, hardware snapshot...)."""
    return Path(str(resources.files("tuneforge.data").joinpath(*parts)))
