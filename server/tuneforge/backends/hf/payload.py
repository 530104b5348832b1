"""What a Hugging Face job receives: the template, a cloud copy of the config, and the local inputs.

Everything travels in one bucket folder mounted at /data in the job container (the same layout
`run_uv_job` uses for local scripts), so the job runs `uv run /data/<template> --config /data/config.json`.
Local inputs (a model folder, dataset files) are shipped next to the config and the cloud config
points at their /data paths; Hub ids stay as they are. The config never holds a secret: the token
reaches the job only as the HF_TOKEN secret.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..records import Job
from ..records import JobSpec

MOUNT = "/data"
CLOUD_DIR = "cloud"  # in the job folder: the config exactly as uploaded


@dataclass
class Payload:
    files: dict[str, Path] = field(default_factory=dict)  # path in the bucket folder -> local file
    argv: list[str] = field(default_factory=list)  # script and its arguments, as the job sees them
    config: dict[str, Any] = field(default_factory=dict)  # the cloud config
    config_path: Path | None = None

    @property
    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files.values())


def _is_local(ref: str) -> bool:
    return ref.startswith("/")  # RunConfig resolves every local path to an absolute one


def _ship(payload: Payload, ref: str, dest: str, what: str) -> str:
    """Add a local file or folder to the payload; return the path the job sees. Hub ids pass through."""
    if not _is_local(ref):
        return ref
    path = Path(ref)
    if path.is_file():
        payload.files[f"{dest}/{path.name}"] = path
        return f"{MOUNT}/{dest}/{path.name}"
    if path.is_dir():
        found = [
            f for f in sorted(path.rglob("*"))
            if f.is_file() and not any(part.startswith(".") for part in f.relative_to(path).parts)
        ]
        if not found:
            raise ConfigError(f"The {what} folder {ref} holds no files to upload.", f"Point {what} at a folder with files, or at a Hub id.")
        for f in found:
            payload.files[f"{dest}/{f.relative_to(path).as_posix()}"] = f
        return f"{MOUNT}/{dest}"
    raise ConfigError(f"The {what} path {ref} no longer exists.", f"Check the path, or use a Hub id for the {what}.")


def build_payload(job: Job, spec: JobSpec) -> Payload:
    """Write the cloud config into the job folder and list every file the job needs."""
    if not job.config.get("push_to_hub"):
        raise ConfigError(
            "A Hugging Face Jobs run needs somewhere to push: the cloud machine is deleted when the job ends.",
            "Add --push-to your-name/model-name (a model repo you can write to).",
        )
    payload = Payload()
    cloud = copy.deepcopy(job.config)
    cloud["model"] = _ship(payload, cloud["model"], "model", "model")
    dataset = cloud.get("dataset") or {}
    if dataset.get("path"):  # a GGUF export job (kind "gguf") has no dataset
        dataset["path"] = _ship(payload, dataset["path"], "dataset", "dataset")
    if dataset.get("eval_path"):
        dataset["eval_path"] = _ship(payload, dataset["eval_path"], "eval", "eval dataset")
    payload.config = cloud

    cloud_dir = Path(job.job_dir) / CLOUD_DIR
    cloud_dir.mkdir(parents=True, exist_ok=True)
    payload.config_path = cloud_dir / "config.json"
    payload.config_path.write_text(json.dumps(cloud, indent=2) + "\n", encoding="utf-8")

    script = Path(spec.script)
    payload.files[script.name] = script
    payload.argv = [f"{MOUNT}/{script.name}"]
    shipped = {str(Path(f)) for f in spec.files}
    args = list(spec.args)
    for i, arg in enumerate(args):
        if i > 0 and args[i - 1] == "--config":
            name = "config.json"
            if name in payload.files:
                raise ConfigError("Two files would be uploaded as config.json.", "Rename one of them.")
            payload.files[name] = payload.config_path
            payload.argv.append(f"{MOUNT}/{name}")
        elif arg in shipped and Path(arg).is_file():
            name = Path(arg).name
            if name in payload.files:
                raise ConfigError(f"Two files would be uploaded as {name}.", "Rename one of them.")
            payload.files[name] = Path(arg)
            payload.argv.append(f"{MOUNT}/{name}")
        else:
            payload.argv.append(arg)
    # Other shipped files (a template's _common.py) land in /data next to the script, which imports them.
    config_args = {arg for i, arg in enumerate(args) if i > 0 and args[i - 1] == "--config"}
    for f in map(Path, spec.files):
        if str(f) in config_args or not f.is_file() or payload.files.get(f.name) == f:
            continue
        if f.name in payload.files:
            raise ConfigError(f"Two files would be uploaded as {f.name}.", "Rename one of them.")
        payload.files[f.name] = f
    return payload
