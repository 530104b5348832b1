"""submit_training: start a run, at once; a paid run only with the user's go-ahead.

submit_training and plan_training take the same run arguments (RUN_ARGUMENTS' names, one merge:
config.overrides) and resolve them with the same function (actions/resolve.py), so the plan an agent shows
the user is the plan the job runs under.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from ...config import RunConfig
from ...errors import ConfigError
from ...jobs.service import SubmitResult
from ...types import BackendName, Method
from ..errors import tool_errors

#: the flat run arguments both tools take (config.overrides.RUN_FIELDS' names)
RUN_ARGUMENTS = ("model", "dataset", "method", "column_map", "eval_dataset", "eval_fraction", "max_steps", "epochs",
                 "learning_rate", "batch_size", "grad_accum", "peft", "lora_r", "max_length", "rewards",
                 "num_generations", "max_completion_length", "push_to_hub", "merge", "timeout_seconds",
                 "max_cost_usd", "watchdog")


RayAddress = Annotated[str | None, Field(description="backend='ray' only: the Ray cluster's dashboard address, e.g. "
                                                    "http://head:8265 (default: $RAY_ADDRESS on the server).")]


def use_ray_address(address: str | None) -> None:
    """ray_address= is RAY_ADDRESS for this server process from now on (the planner and the backend read it)."""
    if address:
        from ...backends.ray.connection import set_address

        set_address(address)


def require_confirmation(backend: BackendName, confirmed: bool) -> None:
    """A Hugging Face Jobs run is billed: the agent must have shown the plan and heard the user agree."""
    if backend == BackendName.HF and not confirmed:
        raise ConfigError(
            "A Hugging Face Jobs run is billed to the user's account and needs their go-ahead.",
            "Call plan_training with backend='hf', show the user the flavor, hours and cost, ask them, "
            "then call submit_training again with confirmed=true.",
            code="train.not_confirmed",
        )


def run_config(arguments: dict[str, Any], config: RunConfig | None, config_path: str | None, *, tool: str,
               dataset_optional: bool = False) -> tuple[RunConfig, bool]:
    """The one merge: config_path, then `config`, then the flat arguments -> (RunConfig, dataset given)."""
    from ...config import load_mapping
    from ...config.overrides import merge_config, planning_config, run_overrides

    layers = (load_mapping(config_path) if config_path else None,
              config.model_dump(exclude_unset=True) if config is not None else None)
    overrides = run_overrides(arguments)
    source = config_path or f"{tool} arguments"
    if dataset_optional:
        return planning_config(*layers, overrides=overrides, source=source, required={"model": "model"},
                               missing_fix="Pass model, or a `config` / `config_path` that names one.")
    return merge_config(*layers, overrides=overrides, source=source, required={"model": "model", "dataset": "dataset"},
                        missing_fix="Pass model and dataset, or a full `config`, or a `config_path`."), True


def submit_training(
    model: Annotated[str | None, Field(description="Base model: Hub id (owner/name) or local model directory.")] = None,
    dataset: Annotated[str | None, Field(description="Training data: local file/folder or Hub dataset id.")] = None,
    method: Annotated[Method | None, Field(description="Training method (default sft).")] = None,
    backend: Annotated[BackendName, Field(description="'local' (default) runs here as a detached process; 'hf' runs on Hugging Face Jobs and is billed; 'ray' runs on the user's Ray cluster (ray_address).")] = BackendName.LOCAL,
    flavor: Annotated[str | None, Field(description="Hugging Face Jobs hardware flavor (default: the plan's).")] = None,
    ray_address: RayAddress = None,
    confirmed: Annotated[bool, Field(description="Set true only after the user saw the plan's cost and agreed; required for backend='hf'.")] = False,
    notify: Annotated[str | None, Field(description="A webhook URL (e.g. a Slack incoming webhook) that gets a JSON summary with a `text` field when the job ends, however it ends; default: $TUNEFORGE_NOTIFY_URL on the server. A secret: never stored or echoed.")] = None,
    config: Annotated[RunConfig | None, Field(description="A full training config (all RunConfig fields); the flat arguments override it.")] = None,
    config_path: Annotated[str | None, Field(description="A YAML/JSON training config file on this machine; the flat arguments and `config` override it.")] = None,
    column_map: Annotated[dict[str, str] | None, Field(description="Target column -> source column, as validate_dataset proposes.")] = None,
    eval_dataset: Annotated[str | None, Field(description="A separate eval file or Hub id.")] = None,
    eval_fraction: Annotated[float | None, Field(ge=0, lt=0.5, description="Share of rows held out for eval when no eval_dataset is given (default 0.1).")] = None,
    max_steps: Annotated[int | None, Field(ge=1, description="Stop after this many optimizer steps.")] = None,
    epochs: Annotated[float | None, Field(gt=0, le=100, description="Passes over the training data (default 1).")] = None,
    learning_rate: Annotated[float | None, Field(gt=0, lt=1, description="Peak learning rate (default 2e-4 for LoRA; 2e-5 when peft='auto' chooses a full fine-tune).")] = None,
    batch_size: Annotated[int | None, Field(ge=1, le=4096, description="Per-device batch size (default 4).")] = None,
    grad_accum: Annotated[int | None, Field(ge=1, le=4096, description="Gradient accumulation steps (default 1).")] = None,
    peft: Annotated[Literal["lora", "qlora", "none", "auto"] | None, Field(description="LoRA (default), QLoRA, a full fine-tune ('none'), or 'auto': the planner's choice, as plan_training shows it.")] = None,
    lora_r: Annotated[int | None, Field(ge=1, le=1024, description="LoRA rank (default 16).")] = None,
    max_length: Annotated[int | None, Field(ge=16, le=262144, description="Max tokens per example; longer ones are truncated (default 1024).")] = None,
    rewards: Annotated[list[str] | None, Field(description="GRPO reward functions: accuracy, exact_match, format, length. Default: accuracy when the data has a reference column (answer, solution, ...); otherwise required.")] = None,
    num_generations: Annotated[int | None, Field(ge=2, le=64, description="GRPO completions per prompt (default 4).")] = None,
    max_completion_length: Annotated[int | None, Field(ge=1, le=32768, description="GRPO completion length in tokens (default 128).")] = None,
    push_to_hub: Annotated[str | None, Field(description="Hub repo id (your-name/model) to push the result to; required for backend='hf'.")] = None,
    merge: Annotated[bool | None, Field(description="Also save the LoRA adapter merged into the base model (needed for GGUF of the full model).")] = None,
    timeout_seconds: Annotated[int | None, Field(ge=60, le=7 * 24 * 3600, description="Job time limit (default: the plan's estimate with a margin).")] = None,
    max_cost_usd: Annotated[float | None, Field(gt=0, description="Spending limit in USD: refused when the plan's estimate exceeds it; a paid job stops (after a checkpoint) when its cost reaches it. Local runs are free: never stopped.")] = None,
    max_restarts: Annotated[int | None, Field(ge=0, le=10, description="After a timeout or a preemption, resume from the last checkpoint automatically, at most this many times (default 0; on hf each restart is a new billed job, started at the next job_status/wait_for_job call).")] = None,
    watchdog: Annotated[bool | None, Field(description="false: do not stop a run whose loss is NaN/inf or exploding (on by default: it saves a checkpoint and fails with 'divergence: ...').")] = None,
) -> SubmitResult:
    """Start a fine-tuning job and return at once with its id, URL, output folder and estimated cost.
    Use only after validate_dataset and plan_training with the same arguments (the job runs under that plan),
    and - for backend='hf', which costs money - only after the user agreed to the plan's cost (then pass
    confirmed=true). Give either model + dataset, a `config`, or a `config_path`. Afterwards tell the user
    the job id, the URL and how to check it, and any warnings (e.g. the GRPO reward chosen); do not poll
    unless they ask."""
    from ...actions.train import require_push_target, start_training

    arguments = dict(model=model, dataset=dataset, method=method, column_map=column_map, eval_dataset=eval_dataset,
                     eval_fraction=eval_fraction, max_steps=max_steps, epochs=epochs, learning_rate=learning_rate,
                     batch_size=batch_size, grad_accum=grad_accum, peft=peft, lora_r=lora_r, max_length=max_length,
                     rewards=rewards, num_generations=num_generations, max_completion_length=max_completion_length,
                     push_to_hub=push_to_hub, merge=merge, timeout_seconds=timeout_seconds, max_cost_usd=max_cost_usd,
                     watchdog=watchdog)
    with tool_errors():
        use_ray_address(ray_address)
        run_cfg, _ = run_config({**arguments, "max_restarts": max_restarts}, config, config_path, tool="submit_training")
        require_push_target(run_cfg, backend)
        require_confirmation(backend, confirmed)
        result = start_training(run_cfg, backend=backend, flavor=flavor, notify=notify)
    where = f" and the URL {result.url}" if result.url else ""
    return result.model_copy(update={"next": (
        f"Tell the user the job id {result.job_id}{where}; check it with job_status(job_id='{result.job_id}') "
        f"only when they ask (CLI: tuneforge jobs status {result.job_id}).")})
