"""What one plan depends on: `PlanRequest`, resolved from `plan()`'s options or from an exact `RunConfig`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import RunConfig
from ..errors import TuneforgeError
from ..types import BACKENDS, METHODS, BackendName, Method

DEFAULT_BATCH = 4
DEFAULT_MAX_LENGTH = 1024
PEFT_CHOICES = ("auto", "lora", "qlora", "none")


class PlanRequest(BaseModel):
    """Everything one plan depends on (validated; unknown options are errors)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    method: Method = Method.SFT
    dataset: str | None = None
    max_length: int = Field(default=DEFAULT_MAX_LENGTH, ge=16, le=262144)
    epochs: float = Field(default=1.0, gt=0, le=100)
    max_steps: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=DEFAULT_BATCH, ge=1, le=4096)
    grad_accum: int = Field(default=1, ge=1, le=4096)
    peft: Literal["auto", "lora", "qlora", "none"] = "auto"
    lora_r: int = Field(default=16, ge=1, le=1024)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    backend: BackendName = BackendName.HF
    flavor: str | None = None
    budget_usd: float | None = Field(default=None, gt=0)
    rows: int | None = None
    gradient_checkpointing: bool | None = None
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    optimizer: Literal["adamw_torch", "adamw_8bit", "paged_adamw_8bit"] = "adamw_torch"
    num_generations: int = Field(default=4, ge=1, le=64)
    max_completion_length: int = Field(default=128, ge=1, le=32768)
    packing: bool = False
    eval_fraction: float = Field(default=0.1, ge=0, lt=0.5)
    use_doctor: bool = True


def plan_request(model: str, method: Method | str = Method.SFT, dataset: str | None = None, *, max_length: int | None = None,
                 epochs: float = 1.0, batch_size: int | None = None, peft: str = "auto", backend: str = "hf",
                 flavor: str | None = None, budget_usd: float | None = None, rows: int | None = None,
                 **options: Any) -> PlanRequest:
    """The request `plan()` answers, from its options (PlanRequest's fields), each checked with a fix."""
    if method not in METHODS:
        raise TuneforgeError(f"Unknown training method {method!r}.", f"Use one of: {', '.join(METHODS)}.",
                             code="plan.unknown_method")
    if epochs is None or epochs <= 0:
        raise TuneforgeError(f"epochs must be positive (got {epochs}).", "Pass --epochs 1 (or a fraction like 0.5).",
                             code="plan.invalid_epochs")
    if rows is not None and rows <= 0:
        raise TuneforgeError(f"rows must be positive (got {rows}).", "Pass --rows with the number of training examples.",
                             code="plan.invalid_rows")
    if budget_usd is not None and budget_usd <= 0:
        raise TuneforgeError(f"budget_usd must be positive (got {budget_usd}).", "Pass --budget-usd 5 for a $5 limit.",
                             code="plan.invalid_budget")
    if backend not in BACKENDS:
        raise TuneforgeError(f"Unknown backend {backend!r}.", "Use --backend hf (Hugging Face Jobs) or --backend local.",
                             code="plan.unknown_backend")
    if peft not in PEFT_CHOICES:
        raise TuneforgeError(f"Unknown --peft {peft!r}.", "Use auto, lora, qlora or none (full fine-tuning).",
                             code="plan.unknown_peft")
    data = dict(model=model, method=method, dataset=dataset, epochs=epochs, peft=peft, backend=backend, flavor=flavor,
                budget_usd=budget_usd, rows=rows, **options)
    if max_length is not None:
        data["max_length"] = max_length
    if batch_size is not None:
        data["batch_size"] = batch_size
    return request_from_options(data)


#: request_for_config's `dataset` when the config's dataset is the one to plan with
CONFIG_DATASET = "<config>"


def request_for_config(config: RunConfig, *, backend: str, flavor: str | None, rows: int | None = None,
                       budget_usd: float | None = None, dataset: str | None = CONFIG_DATASET) -> PlanRequest:
    """The request for exactly this config, as `train` submits it. `rows` and `budget_usd` are the plan's
    what-ifs; `dataset=None` plans without reading data (a config built for planning only)."""
    if rows is not None and rows <= 0:
        raise TuneforgeError(f"rows must be positive (got {rows}).", "Give the number of training examples.",
                             code="plan.invalid_rows")
    if budget_usd is not None and budget_usd <= 0:
        raise TuneforgeError(f"budget_usd must be positive (got {budget_usd}).", "Give a spending limit in USD, e.g. 5.",
                             code="plan.invalid_budget")
    return request_from_options(dict(
        model=config.model, method=config.method, dataset=config.dataset.path if dataset == CONFIG_DATASET else dataset,
        rows=rows, budget_usd=budget_usd, max_length=config.max_length,
        epochs=config.train.epochs, max_steps=config.train.max_steps, batch_size=config.train.per_device_batch_size,
        grad_accum=config.train.gradient_accumulation_steps, peft=config.peft.kind, lora_r=config.peft.r,
        lora_dropout=config.peft.dropout, target_modules=config.peft.target_modules, backend=backend, flavor=flavor,
        gradient_checkpointing=config.train.gradient_checkpointing, precision=config.train.precision,
        optimizer=config.train.optimizer, num_generations=config.method_args.num_generations,
        max_completion_length=config.method_args.max_completion_length, packing=config.packing,
        eval_fraction=0.0 if (config.dataset.eval_path or config.dataset.eval_split) else config.dataset.eval_fraction,
    ))


def request_from_options(data: dict[str, Any]) -> PlanRequest:
    """Validate options into a PlanRequest (None means the default, except for flavor and dataset)."""
    try:
        return PlanRequest(**{k: v for k, v in data.items() if v is not None or k in ("flavor", "dataset")})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "(options)"
            problems.append(f"{loc}: unknown option" if err["type"] == "extra_forbidden" else f"{loc}: {err['msg']}")
        raise TuneforgeError("Invalid plan options: " + "; ".join(problems) + ".",
                             "Fix the options named; `tuneforge plan --help` lists them.",
                             code="plan.invalid_options") from None
