"""What a run looks like once the dataset is known: the template's settings, sequence lengths, steps and tokens.

The rules here are the training templates' own (gradient checkpointing on GPUs, bf16 where the GPU has
it, a batch padded to its longest row), so that the memory model sees the run the template will run.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from ..types import Method
from .dataset_stats import DatasetStats
from .hardware import LocalMachine
from .memory import Workload
from .request import PlanRequest

DEFAULT_GRPO_PROMPT = 256
#: methods that train two sequences per row (chosen and rejected; KTO's mismatched KL batch)
PAIRED_METHODS = (Method.DPO, Method.REWARD, Method.KTO)


class RunShape(BaseModel):
    """Dataset-derived quantities shared by every candidate."""

    rows: int | None
    train_rows: int | None
    eval_rows: int | None = None
    mean_tokens: float | None
    seq_len: int
    padded_len: float | None
    steps: int | None
    tokens: int | None
    compute_tokens: float | None
    eval_tokens: float


def device_for(req: PlanRequest, machine: LocalMachine | None) -> str:
    """'cuda' or 'cpu': this machine's (or a CPU-only Ray cluster node's) device, a GPU on Hugging Face Jobs."""
    return machine.device if (req.backend in ("local", "ray") and machine) else "cuda"


def gradient_checkpointing(req: PlanRequest, device: str) -> bool:
    """The template's rule: on for GPUs, off on CPU, unless the config says."""
    return req.gradient_checkpointing if req.gradient_checkpointing is not None else device == "cuda"


def training_precision(req: PlanRequest, bf16: bool, device: str) -> str:
    """The template's rule: bf16 where the GPU has it (autocast on CPU), else fp16, unless the config says."""
    if req.precision != "auto":
        return req.precision
    if device == "cpu":
        return "bf16"  # autocast over fp32 weights on CPUs with AVX512-BF16 (the template's choice)
    return "bf16" if bf16 else "fp16"


def weights_precision(precision: str, device: str) -> str:
    """The precision a plan reports: the dtype the weights load in. bf16 on CPU is autocast over fp32 weights
    (the template's choice), so a CPU plan says fp32 and the memory note says bf16 autocast."""
    return "fp32" if device == "cpu" and precision == "bf16" else precision


def held_out_rows(rows: int, eval_fraction: float) -> int:
    """Rows the template holds out for eval when no eval set is given: datasets' train_test_split takes
    ceil(fraction x rows), from 10 rows up."""
    return math.ceil(rows * eval_fraction) if rows >= 10 and eval_fraction > 0 else 0


def grpo_prompt_length(req: PlanRequest, stats: DatasetStats) -> int:
    if stats.max_tokens:
        return int(min(req.max_length, math.ceil(stats.max_tokens * (1.1 if stats.estimated else 1.0))))
    return min(req.max_length, DEFAULT_GRPO_PROMPT)


def sequence_length(req: PlanRequest, stats: DatasetStats) -> int:
    """The padded length the memory peak is computed for: the longest row (packing: max_length)."""
    if req.method == Method.GRPO:
        return min(req.max_length, grpo_prompt_length(req, stats)) + req.max_completion_length
    if req.packing or not stats.max_tokens:
        return req.max_length
    longest = stats.max_tokens * (1.1 if stats.estimated else 1.0)
    return int(min(req.max_length, max(16, math.ceil(longest))))


def sequences_per_row(req: PlanRequest) -> int:
    if req.method == Method.GRPO:
        return req.num_generations
    return 2 if req.method in PAIRED_METHODS else 1


def workload_for(req: PlanRequest, stats: DatasetStats, *, peft: str, device: str, precision: str, gpus: int,
                 sharding: str) -> Workload:
    """The memory model's view of the run on one device."""
    return Workload(
        method=req.method, peft=peft, lora_r=req.lora_r, target_modules=req.target_modules, batch_size=req.batch_size,
        seq_len=sequence_length(req, stats), prompt_len=grpo_prompt_length(req, stats),
        completion_len=req.max_completion_length, num_generations=req.num_generations,
        gradient_checkpointing=gradient_checkpointing(req, device), precision=precision, device=device,
        optimizer=req.optimizer, lora_dropout=req.lora_dropout, gpus=gpus, sharding=sharding,
        images_per_sequence=stats.images_per_row or 0.0,
    )


def run_shape(req: PlanRequest, stats: DatasetStats, gpus: int) -> RunShape:
    """Rows, steps and tokens of the run on `gpus` data-parallel GPUs."""
    seq_len = sequence_length(req, stats)
    if stats.rows is None:
        return RunShape(rows=None, train_rows=None, mean_tokens=None, seq_len=seq_len, padded_len=None, steps=None,
                        tokens=None, compute_tokens=None, eval_tokens=0.0)
    rows = stats.rows
    eval_rows = held_out_rows(rows, req.eval_fraction)
    train_rows = max(1, rows - eval_rows)
    if req.method == Method.GRPO:
        mean = min(req.max_length, stats.mean_tokens or DEFAULT_GRPO_PROMPT) + req.max_completion_length
    else:
        mean = min(float(req.max_length), stats.mean_tokens or req.max_length / 2)
    # Without packing, a batch is padded to its longest row: between the mean and the p95 for batches > 1.
    if req.packing or req.batch_size == 1:
        padded = mean
    else:
        p95 = min(float(req.max_length), stats.p95_tokens or mean * 1.5)
        padded = min(float(seq_len), mean + (p95 - mean) * (1 - 1 / req.batch_size))
    rows_per_step = req.batch_size * req.grad_accum * max(1, gpus)
    steps = math.ceil(train_rows / rows_per_step * req.epochs)
    if req.max_steps:
        steps = min(steps, req.max_steps)
    epochs_done = steps * rows_per_step / train_rows
    seqs = sequences_per_row(req)
    tokens = int(train_rows * min(req.epochs, epochs_done) * mean * seqs)
    compute_tokens = train_rows * min(req.epochs, epochs_done) * padded * seqs
    eval_tokens = 2 * eval_rows * mean * (2 if req.method in PAIRED_METHODS else 1)  # before and after
    return RunShape(rows=rows, train_rows=train_rows, eval_rows=eval_rows, mean_tokens=mean, seq_len=seq_len, padded_len=padded,
                    steps=steps, tokens=tokens, compute_tokens=compute_tokens, eval_tokens=eval_tokens)
