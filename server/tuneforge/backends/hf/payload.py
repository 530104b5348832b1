"""What a Hugging Face job receives: the template, a cloud copy of the config, and the local inputs.

Everything travels in one bucket folder mounted at /data in the job container (the same layout
`run_uv_job` uses for local scripts), so the job runs `uv run /data/<template> --config /data/config.json`.
Local inputs are shipped next to the config, exactly the files the run reads (the job spec's inputs,
from jobs/inputs.py), and the cloud config points at their /data paths; Hub ids stay as they are. The config never holds a secret: the token
reaches the job only as the HF_TOKEN secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...errors import ConfigError
from ...records import Job, JobSpec, RunInput, UploadedFile
from ...templates._shared.checkpoints import HUB_SCHEME

MOUNT = "/data"
CLOUD_DIR = "cloud"  # in the job folder: the config exactly as uploaded
#: where each local input lands under /data
DESTINATIONS = {"model": "model", "dataset": "dataset", "eval_dataset": "eval", "eval_block": "heldout"}


@dataclass
class Payload:
    files: dict[str, Path] = field(default_factory=dict)  # path in the bucket folder -> local file
    argv: list[str] = field(default_factory=list)  # script and its arguments, as the job sees them
    config_path: Path | None = None

    @property
    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files.values())

    def uploads(self) -> list[UploadedFile]:
        return [UploadedFile(path=remote, bytes=path.stat().st_size) for remote, path in sorted(self.files.items())]


def ship(payload: Payload, run_input: RunInput, dest: str) -> str:
    """Add exactly the files the run reads from one local input; return the path the job sees."""
    root = run_input.root
    if root.is_file():
        payload.files[f"{dest}/{root.name}"] = root
        for f in run_input.files:  # files beside it that it names (a vision dataset's images), in their places
            if f != root and f.resolve().is_relative_to(root.parent.resolve()):
                payload.files[f"{dest}/{f.resolve().relative_to(root.parent.resolve()).as_posix()}"] = f
        return f"{MOUNT}/{dest}/{root.name}"
    for f in run_input.files:
        payload.files[f"{dest}/{f.relative_to(root).as_posix()}"] = f
    return f"{MOUNT}/{dest}"


def cloud_config(job: Job, spec: JobSpec, payload: Payload) -> str:
    """The job's config as the cloud job reads it (local inputs pointed at their /data copies), as JSON."""
    seen = {i.field: ship(payload, i, DESTINATIONS[i.field]) for i in spec.inputs}
    if job.config is not None:
        cfg = job.config
        dataset = cfg.dataset.model_copy(update={
            "path": seen.get("dataset", cfg.dataset.path),
            "eval_path": seen.get("eval_dataset", cfg.dataset.eval_path),
        })
        if cfg.resume_from_checkpoint and not cfg.resume_from_checkpoint.startswith(HUB_SCHEME):
            raise ConfigError(f"The cloud job cannot read the local checkpoint {cfg.resume_from_checkpoint}.",
                              "Resume from the push target's checkpoint (`tuneforge jobs resume ID` names it), or run "
                              "locally.", code="hf.local_checkpoint")
        # model_copy does not validate: the /data paths exist only in the job's container
        update = {"model": seen.get("model", cfg.model), "dataset": dataset}
        if cfg.eval is not None and "eval_block" in seen:
            update["eval"] = cfg.eval.model_copy(update={"path": seen["eval_block"]})
        return cfg.model_copy(update=update).model_dump_json(indent=2)
    if job.export is not None:
        return job.export.model_copy(update={"model": seen.get("model", job.export.model)}).model_dump_json(indent=2)
    raise ConfigError(f"Job {job.job_id} has no config to run.", "Submit it through `tuneforge train` or `tuneforge gguf`.", code="hf.no_config")


def build_payload(job: Job, spec: JobSpec) -> Payload:
    """Write the cloud config into the job folder and list every file the job needs."""
    payload = Payload()
    text = cloud_config(job, spec, payload)

    cloud_dir = Path(job.job_dir) / CLOUD_DIR
    cloud_dir.mkdir(parents=True, exist_ok=True)
    payload.config_path = cloud_dir / "config.json"
    payload.config_path.write_text(text + "\n", encoding="utf-8")

    script = Path(spec.script)
    payload.files[script.name] = script
    payload.argv = [f"{MOUNT}/{script.name}"]
    shipped = {str(Path(f)) for f in spec.files}
    args = list(spec.args)
    for i, arg in enumerate(args):
        if i > 0 and args[i - 1] == "--config":
            name = "config.json"
            if name in payload.files:
                raise ConfigError("Two files would be uploaded as config.json.", "Rename one of them.", code="hf.upload_name_clash")
            payload.files[name] = payload.config_path
            payload.argv.append(f"{MOUNT}/{name}")
        elif arg in shipped and Path(arg).is_file():
            name = Path(arg).name
            if name in payload.files:
                raise ConfigError(f"Two files would be uploaded as {name}.", "Rename one of them.", code="hf.upload_name_clash")
            payload.files[name] = Path(arg)
            payload.argv.append(f"{MOUNT}/{name}")
        else:
            payload.argv.append(arg)
    # Other shipped files (a template's helpers, _*.py and _shared/) keep their place relative to
    # the job folder, so they land in /data next to the script, which imports them.
    job_dir = Path(job.job_dir).resolve()
    config_args = {arg for i, arg in enumerate(args) if i > 0 and args[i - 1] == "--config"}
    for f in map(Path, spec.files):
        if str(f) in config_args or not f.is_file() or f in payload.files.values():
            continue
        resolved = f.resolve()
        name = resolved.relative_to(job_dir).as_posix() if resolved.is_relative_to(job_dir) else f.name
        if name in payload.files:
            raise ConfigError(f"Two files would be uploaded as {name}.", "Rename one of them.", code="hf.upload_name_clash")
        payload.files[name] = f
    return payload
