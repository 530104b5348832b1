"""Starting a training run: config + plan + backend -> a job. Shared by the CLI, MCP and Python API."""

from __future__ import annotations

import importlib.util
from typing import Any

from ..config import RunConfig
from ..errors import MissingDependency, TuneforgeError
from ..jobs.service import JobService, SubmitResult

TRAIN_PACKAGES = ("torch", "transformers", "trl", "peft", "datasets")


def check_local_training_deps() -> None:
    """Fail before submitting, not minutes later in the job log (find_spec imports nothing)."""
    for pkg in TRAIN_PACKAGES:
        if importlib.util.find_spec(pkg) is None:
            raise MissingDependency(pkg, "train")


def make_plan(config: RunConfig, backend: str, flavor: str | None) -> dict[str, Any] | None:
    """The planner's view of this run, or None when no planner is available. Raises when it cannot fit."""
    try:
        from ..planner import plan_for_config  # type: ignore[attr-defined]
    except ImportError:
        return None
    plan = plan_for_config(config, backend=backend, flavor=flavor)
    return plan.model_dump(mode="json") if hasattr(plan, "model_dump") else dict(plan)


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
    if backend == "local":
        check_local_training_deps()
    if backend == "hf" and not config.push_to_hub:
        raise TuneforgeError(
            "A Hugging Face Jobs run needs somewhere to push: the cloud machine is deleted when the job ends.",
            "Add --push-to your-name/model-name (a model repo you can write to).",
        )
    plan = None if skip_plan else make_plan(config, backend, flavor)
    gpus, distributed, price = 1, None, None
    if plan:
        flavor = flavor or plan.get("flavor")
        gpus = int(plan.get("gpus") or 1)
        distributed = plan.get("distributed")
        price = plan.get("price_per_hour")
        warnings.extend(plan.get("warnings") or [])
        if plan.get("timeout_seconds") and "timeout_seconds" not in config.model_fields_set:
            config = config.model_copy(update={"timeout_seconds": int(plan["timeout_seconds"])})
    if backend == "hf" and flavor and "launch" not in config.model_fields_set:
        from ..backends.hf_flavors import launch_for_flavor

        launch = launch_for_flavor(flavor, distributed, config.launch)
        config = config.model_copy(update={"launch": launch})
        gpus = launch.gpus
    if backend == "hf" and plan is None:
        warnings.append("No plan was made (model info unavailable): flavor and timeout are used as given, "
                        "with no time or cost estimate.")
    job = service.submit_training(
        config, backend=backend, plan=plan, flavor=flavor, price_per_hour=price, gpus=gpus, distributed=distributed
    )
    return SubmitResult(
        job_id=job.job_id,
        backend=job.backend,
        stage=job.stage,
        url=job.url,
        backend_job_id=job.backend_job_id,
        job_dir=job.job_dir,
        output_dir=job.config.get("output_dir"),
        flavor=job.flavor,
        timeout_seconds=job.timeout_seconds,
        estimated_hours=(plan or {}).get("hours"),
        estimated_cost_usd=(plan or {}).get("cost_usd"),
        warnings=warnings,
        next=f"tuneforge jobs status {job.job_id}  (or: tuneforge jobs wait {job.job_id})",
    )
