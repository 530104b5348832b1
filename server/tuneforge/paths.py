"""Where tuneforge keeps things: one home directory, overridable with $TUNEFORGE_HOME."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .errors import TuneforgeError
from .types import METHOD_TEMPLATES, Method


def home() -> Path:
    """$TUNEFORGE_HOME, default ~/.cache/tuneforge. Created on first use."""
    root = Path(os.environ.get("TUNEFORGE_HOME") or Path.home() / ".cache" / "tuneforge").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


#: extra directories (os.pathsep-separated) where jobs and exports may write, beside the defaults
ALLOWED_ROOTS_ENV = "TUNEFORGE_ALLOWED_ROOTS"


def allowed_roots() -> list[Path]:
    """Where an absolute output location may be: the directory the command started in, $TUNEFORGE_HOME,
    and each directory listed in $TUNEFORGE_ALLOWED_ROOTS (symlinks resolved)."""
    roots = [Path.cwd(), home()]
    roots += [Path(p).expanduser() for p in os.environ.get(ALLOWED_ROOTS_ENV, "").split(os.pathsep) if p.strip()]
    return [r.resolve() for r in roots]


def outside_allowed_roots(path: str | Path) -> str | None:
    """None when `path` (symlinks resolved) lies under an allowed root; else why not, and what to do."""
    resolved = Path(path).expanduser().resolve()
    roots = allowed_roots()
    if any(resolved == r or resolved.is_relative_to(r) for r in roots):
        return None
    return (f"{path} resolves to {resolved}, outside the places tuneforge may write "
            f"({', '.join(str(r) for r in roots)}): use a path relative to the job folder, "
            f"or add a parent of it to {ALLOWED_ROOTS_ENV}")


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


def template_path(method: Method | str) -> Path:
    """The static training script for a method."""
    try:
        name = METHOD_TEMPLATES[Method(method)]
    except ValueError:
        raise TuneforgeError(
            f"Unknown training method {method!r}.",
            f"Use one of: {', '.join(m.value for m in Method)}.",
            code="config.unknown_method",
        ) from None
    path = templates_dir() / name
    if not path.is_file():
        raise TuneforgeError(
            f"The {method} template {name} is missing from {path.parent}.",
            "Reinstall tuneforge, or point TUNEFORGE_TEMPLATE_DIR at a folder holding every template.",
            code="install.template_missing",
        )
    return path


def data_path(*parts: str) -> Path:
    """A data file shipped inside the package (demo dataset, hardware snapshot...)."""
    return Path(str(resources.files("tuneforge.data").joinpath(*parts)))
