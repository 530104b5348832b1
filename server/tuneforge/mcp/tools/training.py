"""submit_training: start a run, at once; a paid run only with the user's go-ahead."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from ...config import RunConfig
from ...errors import ConfigError
from ...jobs.service import SubmitResult
from ...types import BackendName, Method
from ..errors import tool_errors


def require_confirmation(backend: BackendName, confirmed: bool) -> None:
    """A Hugging Face Jobs run is billed: the agent must have shown the plan and heard the user agree."""
    if backend == BackendName.HF and not confirmed:
        raise ConfigError(
            "A Hugging Face Jobs run is billed to the user's account and needs their go-ahead.",
            "Call plan_training with backend='hf', show the user the flavor, hours and cost, ask them, "
            "then call submit_training again with confirmed=true.",
            code="train.not_confirmed",
        )


def submit_training(
    model: Annotated[str | None, Field(description="Base model: Hub id or local model directory.")] = None,
    dataset: Annotated[str | None, Field(description="Training data: local file/folder or Hub dataset id.")] = None,
    method: Annotated[Method | None, Field(description="Training method (default sft).")] = None,
    backend: Annotated[BackendName, Field(description="'local' runs here as a detached process; 'hf' runs on Hugging Face Jobs and is billed.")] = BackendName.LOCAL,
    flavor: Annotated[str | None, Field(description="Hugging Face Jobs hardware flavor (default: the plan's).")] = None,
    confirmed: Annotated[bool, Field(description="Set true only after the user saw the plan's cost and agreed; required for backend='hf'.")] = False,
    config: Annotated[RunConfig | None, Field(description="A full training config (all RunConfig fields); the flat arguments override it.")] = None,
    config_path: Annotated[str | None, Field(description="A YAML/JSON training config file on this machine; the flat arguments and `config` override it.")] = None,
    column_map: Annotated[dict[str, str] | None, Field(description="Target column -> source column, as validate_dataset proposes.")] = None,
    eval_dataset: Annotated[str | None, Field(description="A separate eval file or Hub id.")] = None,
    max_steps: Annotated[int | None, Field(ge=1, description="Stop after this many optimizer steps.")] = None,
    epochs: Annotated[float | None, Field(gt=0, le=100, description="Passes over the training data (default 1).")] = None,
    learning_rate: Annotated[float | None, Field(gt=0, lt=1, description="Peak learning rate (default 2e-4, suited to LoRA).")] = None,
    peft: Annotated[Literal["lora", "qlora", "none"] | None, Field(description="LoRA (default), QLoRA or a full fine-tune.")] = None,
    max_length: Annotated[int | None, Field(ge=16, le=262144, description="Max tokens per example; longer ones are truncated (default 1024).")] = None,
    push_to_hub: Annotated[str | None, Field(description="Hub repo id (your-name/model) to push the result to; required for backend='hf'.")] = None,
    merge: Annotated[bool | None, Field(description="Also save the LoRA adapter merged into the base model (needed for GGUF of the full model).")] = None,
    timeout_seconds: Annotated[int | None, Field(ge=60, le=7 * 24 * 3600, description="Job time limit (default: the plan's estimate with a margin).")] = None,
) -> SubmitResult:
    """Start a fine-tuning job and return at once with its id, URL, output folder and estimated cost.
    Use only after validate_dataset and plan_training, and - for backend='hf', which costs money - only
    after the user agreed to the plan's cost (then pass confirmed=true). Give either model + dataset,
    a `config`, or a `config_path`. Afterwards tell the user the job id, the URL and how to check it;
    do not poll unless they ask."""
    from ...actions.train import require_push_target, start_training
    from ...config import load_mapping
    from ...config.overrides import merge_config

    overrides: dict[str, Any] = {
        "model": model, "method": method, "max_length": max_length, "push_to_hub": push_to_hub, "merge": merge,
        "timeout_seconds": timeout_seconds, "dataset.path": dataset, "dataset.eval_path": eval_dataset,
        "dataset.column_map": column_map, "train.max_steps": max_steps, "train.epochs": epochs,
        "train.learning_rate": learning_rate, "peft.kind": peft,
    }
    with tool_errors():
        run_config = merge_config(
            load_mapping(config_path) if config_path else None,
            config.model_dump(exclude_unset=True) if config is not None else None,
            overrides=overrides, source=config_path or "submit_training arguments",
            required={"model": "model", "dataset": "dataset"},
            missing_fix="Pass model and dataset, or a full `config`, or a `config_path`.")
        require_push_target(run_config, backend)
        require_confirmation(backend, confirmed)
        result = start_training(run_config, backend=backend, flavor=flavor)
    where = f" and the URL {result.url}" if result.url else ""
    return result.model_copy(update={"next": (
        f"Tell the user the job id {result.job_id}{where}; check it with job_status(job_id='{result.job_id}') "
        f"only when they ask (CLI: tuneforge jobs status {result.job_id}).")})
