"""Starting a training run: config + plan + backend -> a job. Shared by the CLI, MCP and the Python API.

The plan is made once, here, and the job runs under it: its flavor, its launch (GPUs and strategy), its
price and its timeout. Backends receive the result and do not work any of it out again.
"""

from __future__ import annotations

import importlib.util

from ..config import RunConfig
from ..errors import ConfigError, MissingDependency
from ..flavors import launch_for_flavor
from ..jobs.service import JobService, SubmitResult
from ..planner import plan_for_config
from ..reports.plan import Plan
from ..types import BackendName

TRAIN_PACKAGES = ("torch", "transformers", "trl", "peft", "datasets")


def check_local_training_deps() -> None:
    """Fail before submitting, not minutes later in the job log (find_spec imports nothing)."""
    for pkg in TRAIN_PACKAGES:
        if importlib.util.find_spec(pkg) is None:
            raise MissingDependency(pkg, "train")


def require_push_target(config: RunConfig, backend: str) -> None:
    """A cloud run needs somewhere to push: the machine and its disk are deleted when the job ends."""
    if backend != BackendName.LOCAL and not config.push_to_hub:
        raise ConfigError(
            "A Hugging Face Jobs run needs somewhere to push: the cloud machine is deleted when the job ends.",
            "Add --push-to your-name/model-name (a model repo you can write to).",
            code="config.push_target_required",
            details={"field": "push_to_hub"},
        )


def resolve_launch(config: RunConfig, backend: str, flavor: str | None, plan: Plan | None) -> RunConfig:
    """The config the job runs with: the plan's timeout unless one was given, the flavor's launch on hf."""
    if plan is not None and plan.timeout_seconds and "timeout_seconds" not in config.model_fields_set:
        config = config.model_copy(update={"timeout_seconds": plan.timeout_seconds})
    if backend != BackendName.HF or not flavor:
        return config
    if "launch" in config.model_fields_set:
        return config  # given by the user: the job service checks it against the flavor
    distributed = plan.distributed if plan is not None else None
    return config.model_copy(update={"launch": launch_for_flavor(flavor, distributed, config.launch)})


def start_training(
    config: RunConfig,
    *,
    backend: str = "local",
    flavor: str | None = None,
    service: JobService | None = None,
    skip_plan: bool = False,
) -> SubmitResult:
    service = service or JobService()
    warnings: list[str] = []
    if backend == BackendName.LOCAL:
        check_local_training_deps()
    require_push_target(config, backend)
    plan = None if skip_plan else plan_for_config(config, backend=backend, flavor=flavor)
    if plan is not None:
        flavor = flavor or plan.flavor
        warnings.extend(plan.warnings)
    elif backend == BackendName.HF:
        warnings.append("No plan was made (model info unavailable): flavor and timeout are used as given, "
                        "with no time or cost estimate.")
    config = resolve_launch(config, backend, flavor, plan)
    job = service.submit_training(
        config, backend=backend, plan=plan, flavor=flavor, price_per_hour=plan.price_per_hour if plan is not None else None,
        gpus=config.launch.gpus,
        distributed=plan.distributed if plan is not None else None,
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
        next=f"tuneforge jobs status {job.job_id}  (or: tuneforge jobs wait {job.job_id})",
    )
