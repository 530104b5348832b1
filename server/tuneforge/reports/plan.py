"""The Plan (a leaf model: it imports nothing of tuneforge): what `tuneforge plan` answers, what `train` records with every job."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class MemoryBreakdown(BaseModel):
    """Peak memory per device, by component, in GiB."""

    total: float
    weights: float
    lora: float
    gradients: float
    optimizer: float
    activations: float
    logits: float
    reference_model: float
    generation: float
    runtime: float


class Alternative(BaseModel):
    """Another way to run the same job, with its numbers and why it was not chosen (or when to prefer it)."""

    flavor: str | None
    gpus: int
    peft: str
    distributed: Literal["ddp", "fsdp"] | None = None
    fits: bool
    memory_gb: float = Field(description="Predicted peak per device (GiB).")
    vram_gb: float | None = Field(default=None, description="Memory per device of that hardware (GB).")
    hours: float | None = None
    cost_usd: float | None = None
    why: str


class Calibration(BaseModel):
    """A short local canary through the real template, next to the prediction for the same run."""

    steps: int
    rows: int
    batch_size: int
    seq_len: int
    device: str
    predicted_peak_gb: float
    measured_peak_gb: float | None
    peak_error_pct: float | None
    predicted_tokens_per_second: float | None
    measured_tokens_per_second: float | None
    runtime_seconds: float | None
    train_loss: float | None = None
    job_id: str
    measured_by: str


class PastRun(BaseModel):
    """A run of the same model on the same data, from the ledger, as the plan mentions it."""

    run_id: str
    stage: str
    summary: str = Field(description="What it ran with and how it ended, in one line.")
    notes: list[str] = Field(default_factory=list, description="What was learned (`tuneforge runs note`).")
    learning_rate: float | None = None


class Plan(BaseModel):
    model: str
    params_b: float = Field(description="Total parameters, billions.")
    params_guessed: bool = Field(default=False, description="True when the size is guessed from the model's name "
                                 "(no config.json found): memory, time and cost may be far off.")
    active_params_b: float | None = Field(default=None, description="Parameters used per token (MoE), billions.")
    architecture: dict[str, Any]
    method: str
    peft: str
    lora_r: int | None = None
    backend: str
    flavor: str | None
    gpus: int
    distributed: Literal["ddp", "fsdp"] | None = None
    vram_gb: float | None = Field(description="The chosen hardware's total accelerator memory (RAM for CPU training), GB.")
    memory_gb: MemoryBreakdown = Field(description="Predicted peak memory per device, by component (GiB).")
    headroom_pct: float | None = None
    precision: str
    gradient_checkpointing: bool
    batch_size: int
    gradient_accumulation_steps: int = 1
    max_length: int
    seq_len: int = Field(description="Padded sequence length the memory peak is computed for.")
    rows: int | None = Field(description="Rows in the dataset (or given), before the eval hold-out.")
    train_rows: int | None = Field(default=None, description="Rows trained on: rows minus eval_rows.")
    eval_rows: int | None = Field(default=None, description="Rows held out for eval (eval_fraction of rows when no "
                                  "eval set is given).")
    epochs: float
    steps: int | None
    max_steps: int | None = Field(default=None, description="Set when the run is capped (by the config or the budget).")
    tokens: int | None = Field(description="Tokens trained: rows x mean tokens per row x epochs (x sequences per row).")
    tokens_per_second: float | None
    utilisation: float | None = None
    flops_per_token: float | None = None
    train_hours: float | None = None
    overhead_minutes: float | None = Field(default=None, description="Start-up, model download/load, save and push.")
    hours: float | None = Field(description="Billed time: training plus overhead.")
    price_per_hour: float | None
    cost_usd: float | None
    timeout: str | None
    timeout_seconds: int | None
    reward_functions: list[str] | None = Field(default=None, description="GRPO: the reward functions the run uses.")
    budget_usd: float | None = None
    within_budget: bool | None = None
    alternatives: list[Alternative] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    hardware_source: str | None = None
    dataset_source: str | None = None
    calibration: Calibration | None = None
    past_runs: list[PastRun] = Field(default_factory=list, description="Past runs of the same model and data (the ledger): failures and noted runs first.")
