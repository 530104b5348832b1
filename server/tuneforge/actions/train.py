"""Starting a training run: config + plan + backend -> a job. Shared by the CLI, MCP and the Python API.

The run is resolved once (actions/resolve.py: the checks, peft auto, GRPO rewards, the plan) and the job
runs under that plan: its flavor, its launch (GPUs and strategy), its price and its timeout, recorded as
job.plan. Backends receive the result and do not work any of it out again.
"""

from __future__ import annotations

import importlib.util

from .. import secrets
from ..config import RunConfig
from ..errors import MissingDependency
from ..jobs.service import JobService, SubmitResult
from ..types import BackendName
from .resolve import DEFAULT_BACKEND, resolve_launch, resolve_run
from .targets import require_push_target

__all__ = ["start_training", "require_push_target", "check_local_training_deps", "resolve_launch", "TRAIN_PACKAGES"]

TRAIN_PACKAGES = ("torch", "transformers", "trl", "peft", "datasets")


def check_local_training_deps() -> None:
    """Fail before submitting, not minutes later in the job log (find_spec imports nothing)."""
    for pkg in TRAIN_PACKAGES:
        if importlib.util.find_spec(pkg) is None:
            raise MissingDependency(pkg, "train")


def start_training(
    config: RunConfig,
    *,
    backend: str = DEFAULT_BACKEND,
    flavor: str | None = None,
    service: JobService | None = None,
    skip_plan: bool = False,
    notify: str | None = None,
) -> SubmitResult:
    """Check, plan (resolve_run: the same resolution `plan` shows) and submit; nothing is created on a refusal.
    `notify`: a webhook URL (else $TUNEFORGE_NOTIFY_URL) that gets the summary when the job ends (a secret)."""
    service = service or JobService()
    notify_url = secrets.notify_url(notify)
    if backend == BackendName.LOCAL:
        check_local_training_deps()
    require_push_target(config.push_to_hub, backend)
    resolved = resolve_run(config, backend=backend, flavor=flavor, submit=True, skip_plan=skip_plan)
    plan, config, flavor = resolved.plan, resolved.config, resolved.flavor
    # the plan's warnings, then what was chosen for the user (GRPO rewards, peft auto's learning rate)
    warnings = list(resolved.warnings) + [n for n in resolved.notes if n not in resolved.warnings]
    if plan is None and backend == BackendName.HF:
        warnings.append("No plan was made (model info unavailable): flavor and timeout are used as given, "
                        "with no time or cost estimate.")
    job = service.submit_training(
        config, backend=backend, plan=plan, flavor=flavor, price_per_hour=plan.price_per_hour if plan is not None else None,
        gpus=config.launch.gpus,
        distributed=plan.distributed if plan is not None else None,
        notify_url=notify_url,
    )
    return SubmitResult(
        job_id=job.job_id,
        backend=job.backend,
        stage=job.stage,
        url=job.url,
        backend_job_id=job.backend_job_id,
        job_dir=job.job_dir,
        output_dir=job.config.output_dir if job.config else None,
        flavor=job.flavor,
        timeout_seconds=job.timeout_seconds,
        estimated_hours=plan.hours if plan is not None else None,
        estimated_cost_usd=plan.cost_usd if plan is not None else None,
        warnings=warnings,
        uploads=job.uploads,
        notify=job.notify,
        next=f"tuneforge jobs status {job.job_id}  (or: tuneforge jobs wait {job.job_id})",
    )
