"""Small files a backend keeps in a job's folder: its own polling state (a JSON object per backend) and the
template's result.json read into the record's outputs. Shared by the local, hf and ray backends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_state(job_dir: str | Path, name: str) -> dict[str, Any]:
    """The backend's state file in the job folder ({} when missing or unreadable)."""
    try:
        return json.loads((Path(job_dir) / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_state(job_dir: str | Path, name: str, **values: Any) -> None:
    """Merge `values` into the state file (nothing when the job folder is gone)."""
    path = Path(job_dir) / name
    if path.parent.is_dir():
        path.write_text(json.dumps({**read_state(job_dir, name), **values}), encoding="utf-8")


def with_result(outputs: dict[str, Any], output_dir: str | Path) -> dict[str, Any]:
    """`outputs` with the template's result.json under "result" (or "result_error" when it is not JSON)."""
    result = Path(output_dir) / "result.json"
    if result.is_file():
        try:
            outputs["result"] = json.loads(result.read_text(encoding="utf-8"))
        except ValueError:
            outputs["result_error"] = f"{result} is not valid JSON"
    return outputs
