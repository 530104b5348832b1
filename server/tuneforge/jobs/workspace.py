"""A job's folder: where it lives, and the template with the helpers it imports, copied in.

What ran is on record: the template and its helpers travel as copies in the job folder, so the shipped
templates are never touched and a cloud backend uploads exactly what ran here. A template imports its
helpers from next to itself: every `_*.py` module beside the templates and the `_shared/` package.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import paths

SHARED_PACKAGE = "_shared"


def job_folder(job_id: str) -> Path:
    folder = paths.jobs_dir() / job_id
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def support_files(templates: Path) -> list[Path]:
    """The helper modules a template imports, relative to the templates folder."""
    helpers = sorted(p.relative_to(templates) for p in templates.glob("_*.py") if p.name != "__init__.py")
    shared = sorted(p.relative_to(templates) for p in (templates / SHARED_PACKAGE).glob("*.py"))
    return helpers + shared


def stage_template(script: Path, job_dir: Path) -> tuple[Path, list[Path]]:
    """Copy a template and its helpers into the job folder; return the copy and the helper copies."""
    copy = job_dir / script.name
    shutil.copyfile(script, copy)
    copies = []
    for rel in support_files(script.parent):
        dest = job_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(script.parent / rel, dest)
        copies.append(dest)
    return copy, copies
