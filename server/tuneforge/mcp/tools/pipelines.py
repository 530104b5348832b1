"""The pipeline tools: run_pipeline, plan_pipeline, pipeline_status, list_pipelines, cancel_pipeline, resume_pipeline."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from ...records.pipelines import PipelinePlan, PipelineStatus
from ..errors import tool_errors
from .training import RayAddress, use_ray_address

PipelineId = Annotated[str, Field(description="A pipeline id (pl-...) or a unique start of one.", min_length=4, max_length=64)]


class PipelineStarted(BaseModel):
    pipeline_id: str
    state: str
    plan: PipelinePlan = Field(description="Per stage: hardware, hours, cost and time limit; and the totals.")
    next: str


class PipelineList(BaseModel):
    pipelines: list[PipelineStatus]
    count: int


def _spec(path: str | None, pipeline: dict[str, Any] | None):
    from ...errors import TuneforgeError
    from ...pipelines.spec import absolute_paths, load_spec, parse_spec

    if path:
        return load_spec(path)
    if pipeline:
        from pathlib import Path

        return absolute_paths(parse_spec(pipeline, "pipeline"), Path.cwd())
    raise TuneforgeError("No pipeline given.", "Pass path (a pipeline file) or pipeline (its contents as an object).",
                         code="pipeline.missing")


def plan_pipeline(
    path: Annotated[str | None, Field(description="A pipeline file (YAML or JSON).")] = None,
    pipeline: Annotated[dict[str, Any] | None, Field(description="The pipeline itself: {model, config, stages: [...]}.")] = None,
    backend: Annotated[Literal["local", "hf", "ray"], Field(description="Where the stages would run.")] = "local",
    ray_address: RayAddress = None,
) -> PipelinePlan:
    """Hardware, time, cost and time limit of every stage of a pipeline and in total; runs nothing (later stages
    are planned on the base model's architecture). Use before run_pipeline, and show the user the totals before a
    paid (hf) pipeline."""
    from ...actions.pipeline import plan_pipeline as plan

    with tool_errors():
        use_ray_address(ray_address)
        return plan(_spec(path, pipeline), backend=backend)


def run_pipeline(
    path: Annotated[str | None, Field(description="A pipeline file (YAML or JSON).")] = None,
    pipeline: Annotated[dict[str, Any] | None, Field(description="The pipeline itself: {model, config, stages: [...]}.")] = None,
    backend: Annotated[Literal["local", "hf", "ray"], Field(description="Where the stages run.")] = "local",
    ray_address: RayAddress = None,
    confirmed: Annotated[bool, Field(description="Set true only after the user saw the plan's TOTAL cost and agreed; "
                                               "required once for backend='hf' (not per stage).")] = False,
    notify: Annotated[str | None, Field(description="A webhook told when the pipeline ends, with every stage's "
                                                      "result (a secret: never stored or echoed).")] = None,
) -> PipelineStarted:
    """Start a multi-stage pipeline (e.g. SFT, then DPO on the SFT model, then a Q4_K_M GGUF): every stage is planned,
    the pipeline is recorded and a detached driver advances the stages; answers at once. Stages: train (method,
    dataset, overrides), eval (eval block), preferences (sample and score answers into DPO pairs), gguf (quants,
    push_to). Use when the user asks for several steps in one go ("SFT, then DPO, then a GGUF"). Afterwards tell
    the user the pipeline id and check it with pipeline_status when asked."""
    from ...actions.pipeline import run_pipeline as run

    with tool_errors():
        use_ray_address(ray_address)
        started, plan = run(_spec(path, pipeline), backend=backend, confirmed=confirmed or backend == "local",
                            notify_url=notify, source=path)
    return PipelineStarted(pipeline_id=started.pipeline_id, state=started.state, plan=plan,
                           next=f"tuneforge pipeline status {started.pipeline_id}")


def pipeline_status(pipeline_id: PipelineId) -> PipelineStatus:
    """Each stage's state, job, progress, metrics before/after and GGUF files of one pipeline; a pipeline whose
    driver stopped (machine restart, kill) is carried on from where it was by this call. Use when the user asks
    how a pipeline is doing, or for its results."""
    from ...actions.pipeline import pipeline_status as status

    with tool_errors():
        return status(pipeline_id)


def list_pipelines(limit: Annotated[int, Field(ge=1, le=100, description="At most this many, newest first.")] = 20) -> PipelineList:
    """Recent pipelines, newest first, each with its state and its stages' states and jobs. Use when the user
    asks what pipelines exist or has lost a pipeline id."""
    from ...actions.pipeline import list_pipelines as listing

    with tool_errors():
        items = listing(limit)
    return PipelineList(pipelines=items, count=len(items))


def cancel_pipeline(pipeline_id: PipelineId) -> PipelineStatus:
    """Stop a pipeline: its driver, the running stage's job (local or cloud) and the stages after it; completed
    stages keep their outputs and resume_pipeline can carry on later. Use only when the user asks to stop it."""
    from ...actions.pipeline import cancel_pipeline as cancel

    with tool_errors():
        return cancel(pipeline_id)


def resume_pipeline(pipeline_id: PipelineId) -> PipelineStatus:
    """Carry on a failed or canceled pipeline from its record: completed stages are kept (never redone), the failed
    or canceled stage gets a new job and the rest follow. Use after fixing what made a stage fail (its message)."""
    from ...actions.pipeline import resume_pipeline as resume

    with tool_errors():
        return resume(pipeline_id)
