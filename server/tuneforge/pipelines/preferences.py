"""The preferences stage: sample answers from the previous stage's model, score them, keep chosen/rejected pairs.

It runs `templates/preferences.py` (static, PEP 723) as an ordinary local job with a config written next to it;
the pairs it writes (OUT/preferences.jsonl, each with its margin) become the next DPO stage's data once the
doctor says they are ready for DPO, like any preference file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import TuneforgeError
from ..jobs.service import JobService
from ..jobs.workspace import job_folder, stage_template
from ..records import Job, JobSpec, new_job_id
from .spec import PreferencesStage

TEMPLATE = "preferences.py"
TIMEOUT_SECONDS = 6 * 3600


def reward_model_path(service: JobService, name: str) -> str:
    """A reward model given as a folder or Hub id as it is; given as a job id, that finished reward job's output."""
    if Path(name).expanduser().exists() or "/" in name:
        return name
    from .stages import output_model

    try:
        job = service.store.get(name)
    except TuneforgeError:
        raise TuneforgeError(f"The preferences stage's reward_model {name!r} is neither a folder nor a job id.",
                             "Give the output folder of a `tuneforge train --method reward` job, or its job id.",
                             code="pipeline.reward_model_not_found") from None
    found = output_model(job) if job.stage == "COMPLETED" and job.method == "reward" else None
    if not found:
        raise TuneforgeError(f"Job {job.job_id} is not a completed reward job ({job.method}, {job.stage}).",
                             "Train one with `tuneforge train --method reward` and name its job id once it completed.",
                             code="pipeline.reward_model_not_found", details={"job_id": job.job_id})
    return found


def submit_preferences(service: JobService, stage: PreferencesStage, model: str) -> Job:
    job_id = new_job_id()
    job_dir = job_folder(job_id)
    config = {**stage.model_dump(exclude={"kind"}), "model": model, "out": str(job_dir / "outputs")}
    if stage.reward_model:
        config["reward_model"] = reward_model_path(service, stage.reward_model)
    config_path = job_dir / "preferences.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    script, helpers = stage_template(paths.templates_dir() / TEMPLATE, job_dir)
    spec = JobSpec(script=script, args=["--config", str(config_path)], files=[config_path, *helpers],
                   timeout_seconds=TIMEOUT_SECONDS, labels={"tuneforge-job": job_id, "tuneforge-method": "preferences"})
    return service.submit(spec, backend="local", kind="preferences", job_id=job_id, job_dir=job_dir)


def preference_output(job: Job) -> dict[str, Any]:
    """The finished job's pairs file, checked by the doctor for DPO (refused with the doctor's reasons otherwise)."""
    from ..doctor.validation import validate

    result_path = Path(job.job_dir) / "outputs" / "result.json"
    if not result_path.is_file():
        raise TuneforgeError(f"The preferences job {job.job_id} left no result.json.",
                             f"See its log: tuneforge jobs logs {job.job_id}.", code="pipeline.preferences_no_result")
    result = json.loads(result_path.read_text(encoding="utf-8"))
    report = validate(result["pairs_file"], method="dpo", cache=False)
    if not report.ready:
        raise TuneforgeError(f"The generated pairs ({result['pairs_file']}) are not ready for DPO.",
                             "Raise samples or temperature, or choose a reward that tells the answers apart.",
                             code="pipeline.preferences_not_ready", details={"report": report.model_dump(mode="json")})
    return {"source": {"dataset": result["pairs_file"]}, "pairs": result.get("pairs"), "metrics": {
        "pairs": result.get("pairs"), "prompts": result.get("prompts"), "dropped": result.get("dropped"),
        "mean_margin": result.get("mean_margin")}}


__all__ = ["submit_preferences", "preference_output"]
