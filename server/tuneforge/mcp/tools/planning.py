"""plan_training: hardware, memory, time and cost of a run before it starts."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ...reports.plan import Plan
from ...types import BackendName, Method
from ..errors import tool_errors


def plan_training(
    model: Annotated[str, Field(min_length=1, description="Base model: Hub id (e.g. Qwen/Qwen3-0.6B) or local model directory.")],
    method: Annotated[Method, Field(description="Training method.")] = Method.SFT,
    dataset: Annotated[str | None, Field(description="Training data (file, folder or Hub id): the plan counts its rows and tokens.")] = None,
    backend: Annotated[BackendName, Field(description="'hf' (default): Hugging Face Jobs, priced per hour; 'local': this machine.")] = BackendName.HF,
    flavor: Annotated[str | None, Field(description="Plan on this Hugging Face Jobs flavor only (e.g. a10g-large) instead of the cheapest that fits.")] = None,
    peft: Annotated[Literal["auto", "lora", "qlora", "none"], Field(description="LoRA, QLoRA, full fine-tune ('none'), or 'auto' to let the planner choose.")] = "auto",
    max_length: Annotated[int | None, Field(ge=16, le=262144, description="Max tokens per example (default 1024).")] = None,
    epochs: Annotated[float, Field(gt=0, le=100, description="Passes over the training data.")] = 1.0,
    max_steps: Annotated[int | None, Field(ge=1, description="Stop after this many optimizer steps (a short trial run).")] = None,
    batch_size: Annotated[int | None, Field(ge=1, le=4096, description="Per-device batch size (default 4).")] = None,
    budget_usd: Annotated[float | None, Field(gt=0, description="Spending limit: over it, the plan proposes fewer steps or a cheaper setup.")] = None,
) -> Plan:
    """Work out the hardware (flavor and GPU count), memory, time, cost and job timeout of a run before
    starting it, from the model's real parameter count and the dataset's real token counts, with the reasons
    and cheaper alternatives. Use after validate_dataset and before submit_training; show the user the
    flavor, hours and cost and ask before any paid (backend='hf') run."""
    from ...planner import plan

    options = {k: v for k, v in {"max_length": max_length, "max_steps": max_steps, "batch_size": batch_size,
                                 "budget_usd": budget_usd}.items() if v is not None}
    with tool_errors():
        return plan(model, method=method, dataset=dataset, backend=backend, flavor=flavor, peft=peft,
                    epochs=epochs, **options)
