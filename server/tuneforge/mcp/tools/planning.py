"""plan_training: hardware, memory, time and cost of a run before it starts; the plan submit_training runs under."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ...config import RunConfig
from ...reports.plan import Plan
from ...types import BackendName, Method
from ..errors import tool_errors
from .training import RayAddress, run_config, use_ray_address


def plan_training(
    model: Annotated[str | None, Field(description="Base model: Hub id (e.g. Qwen/Qwen3-0.6B) or local model directory.")] = None,
    dataset: Annotated[str | None, Field(description="Training data (file, folder or Hub id): the plan counts its rows and tokens and runs the submit checks.")] = None,
    method: Annotated[Method | None, Field(description="Training method (default sft).")] = None,
    backend: Annotated[BackendName, Field(description="'local' (default): this machine, free; 'hf': Hugging Face Jobs, priced per hour; 'ray': the user's Ray cluster (ray_address), planned on its nodes.")] = BackendName.LOCAL,
    flavor: Annotated[str | None, Field(description="Plan on this Hugging Face Jobs flavor only (e.g. a10g-large) instead of the cheapest that fits.")] = None,
    ray_address: RayAddress = None,
    config: Annotated[RunConfig | None, Field(description="A full training config (all RunConfig fields); the flat arguments override it.")] = None,
    config_path: Annotated[str | None, Field(description="A YAML/JSON training config file on this machine; the flat arguments and `config` override it.")] = None,
    column_map: Annotated[dict[str, str] | None, Field(description="Target column -> source column, as validate_dataset proposes.")] = None,
    eval_dataset: Annotated[str | None, Field(description="A separate eval file or Hub id.")] = None,
    eval_fraction: Annotated[float | None, Field(ge=0, lt=0.5, description="Share of rows held out for eval when no eval_dataset is given (default 0.1).")] = None,
    max_steps: Annotated[int | None, Field(ge=1, description="Stop after this many optimizer steps (a short trial run).")] = None,
    epochs: Annotated[float | None, Field(gt=0, le=100, description="Passes over the training data (default 1).")] = None,
    learning_rate: Annotated[float | None, Field(gt=0, lt=1, description="Peak learning rate (default 2e-4 for LoRA; 2e-5 when peft='auto' chooses a full fine-tune).")] = None,
    batch_size: Annotated[int | None, Field(ge=1, le=4096, description="Per-device batch size (default 4).")] = None,
    grad_accum: Annotated[int | None, Field(ge=1, le=4096, description="Gradient accumulation steps (default 1).")] = None,
    peft: Annotated[Literal["lora", "qlora", "none", "auto"] | None, Field(description="LoRA (default), QLoRA, full fine-tune ('none'), or 'auto' to let the planner choose.")] = None,
    lora_r: Annotated[int | None, Field(ge=1, le=1024, description="LoRA rank (default 16).")] = None,
    max_length: Annotated[int | None, Field(ge=16, le=262144, description="Max tokens per example (default 1024).")] = None,
    rewards: Annotated[list[str] | None, Field(description="GRPO reward functions: accuracy, exact_match, format, length (default: accuracy when the data has a reference column).")] = None,
    num_generations: Annotated[int | None, Field(ge=2, le=64, description="GRPO completions per prompt (default 4).")] = None,
    max_completion_length: Annotated[int | None, Field(ge=1, le=32768, description="GRPO completion length in tokens (default 128).")] = None,
    push_to_hub: Annotated[str | None, Field(description="Hub repo id (your-name/model) the run pushes to; required for backend='hf'.")] = None,
    merge: Annotated[bool | None, Field(description="Also save the LoRA adapter merged into the base model.")] = None,
    timeout_seconds: Annotated[int | None, Field(ge=60, le=7 * 24 * 3600, description="Job time limit (default: the plan's estimate with a margin).")] = None,
    max_cost_usd: Annotated[float | None, Field(gt=0, description="Spending limit in USD: refused when the plan's estimate exceeds it; a paid job stops (after a checkpoint) when its cost reaches it. Local runs are free: never stopped.")] = None,
    watchdog: Annotated[bool | None, Field(description="false: do not stop a run whose loss is NaN/inf or exploding (on by default: it saves a checkpoint and fails with 'divergence: ...').")] = None,
    rows: Annotated[int | None, Field(ge=1, description="Plan for this many rows (instead of, or without, the dataset's count).")] = None,
    budget_usd: Annotated[float | None, Field(gt=0, description="Spending limit: over it, the plan proposes fewer steps or a cheaper setup.")] = None,
) -> Plan:
    """Work out the hardware (flavor and GPU count), memory, time, cost and job timeout of a run before
    starting it, from the model's real parameter count and the dataset's real token counts, with the reasons
    and cheaper alternatives. Takes the same arguments as submit_training and resolves them the same way:
    this is the plan the job will run under. Use after validate_dataset and before submit_training; show the
    user the flavor, hours and cost (and any warnings) and ask before any paid (backend='hf') run."""
    from ...actions.calibrate import plan_run

    arguments = dict(model=model, dataset=dataset, method=method, column_map=column_map, eval_dataset=eval_dataset,
                     eval_fraction=eval_fraction, max_steps=max_steps, epochs=epochs, learning_rate=learning_rate,
                     batch_size=batch_size, grad_accum=grad_accum, peft=peft, lora_r=lora_r, max_length=max_length,
                     rewards=rewards, num_generations=num_generations, max_completion_length=max_completion_length,
                     push_to_hub=push_to_hub, merge=merge, timeout_seconds=timeout_seconds, max_cost_usd=max_cost_usd,
                     watchdog=watchdog)
    with tool_errors():
        use_ray_address(ray_address)
        run_cfg, dataset_given = run_config(arguments, config, config_path, tool="plan_training", dataset_optional=True)
        return plan_run(run_cfg, backend=backend, flavor=flavor, dataset_given=dataset_given, rows=rows,
                        budget_usd=budget_usd)
