"""The plan's working shown: notes (where each number comes from) and warnings (what to look at before running)."""

from __future__ import annotations

from typing import Any

from ..config import format_duration
from ..flavors import HardwareTable
from ..types import Method
from .architecture import Architecture
from .candidates import Candidate
from .dataset_stats import DatasetStats
from .hardware import LocalMachine
from .request import PlanRequest
from .timeout import CPU_TIMEOUT_FACTOR, MAX_TIMEOUT_SECONDS, TIMEOUT_FACTOR
from .workload import RunShape, device_for, gradient_checkpointing, sequences_per_row


def moe_note(arch: Architecture, n_params: float, n_active: float) -> str:
    return (f"Mixture of experts: {arch.num_experts} experts, {arch.experts_per_token} per token: "
            f"{n_active / 1e9:.2f}B of {n_params / 1e9:.2f}B parameters work on each token (time uses the active count; "
            "memory holds all experts).")


def unknown_rows_warning() -> str:
    return ("The number of rows is unknown (a dataset that is not a local file is counted only when the job "
            "reads it), so time, cost and timeout are not estimated and the job keeps the default timeout. "
            "Give a local copy of the dataset for an estimate.")


def timeout_notes(chosen: Candidate, timeout_seconds: int | None, device: str) -> tuple[list[str], list[str]]:
    """Why the timeout is what it is, and a warning when the run would outlast the 7-day job limit."""
    notes, warnings = [], []
    if timeout_seconds:
        on_cpu = device == "cpu"
        notes.append(f"Timeout {format_duration(timeout_seconds)}: training ETA x "
                     + (f"{CPU_TIMEOUT_FACTOR:g} (a shared CPU can run far slower than estimated)" if on_cpu else f"{TIMEOUT_FACTOR:g}")
                     + " + a start-up, download and save buffer, rounded up to 5 minutes, never under 15 minutes.")
    if chosen.train_hours is not None and chosen.train_hours * 3600 * TIMEOUT_FACTOR > MAX_TIMEOUT_SECONDS:
        warnings.append(f"The estimated {chosen.train_hours:.0f} h exceed the 7-day job limit: cap the run with max_steps, "
                        "fewer epochs or a faster flavor.")
    return notes, warnings


def architecture_summary(a: Architecture) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model_type": a.model_type, "layers": a.num_layers, "hidden_size": a.hidden_size,
        "intermediate_size": a.intermediate_size, "heads": a.num_heads, "kv_heads": a.num_kv_heads,
        "head_dim": a.head_dim, "vocab_size": a.vocab_size, "tied_embeddings": a.tie_word_embeddings, "source": a.source,
    }
    if a.is_moe:
        out.update(experts=a.num_experts, experts_per_token=a.experts_per_token,
                   moe_intermediate_size=a.moe_intermediate_size)
    return out


def explain(arch: Architecture, req: PlanRequest, stats: DatasetStats, work: RunShape, chosen: Candidate,
            machine: LocalMachine | None, table: HardwareTable | None) -> tuple[list[str], list[str]]:
    notes, warnings = [], []
    m = chosen.memory
    parts = [f"{k} {getattr(m, k):.2f}" for k in ("weights", "lora", "gradients", "optimizer", "activations", "logits",
                                                  "reference_model", "generation", "runtime") if getattr(m, k) > 0.005]
    precision = ("fp32 weights under bf16 autocast (as the template trains on CPU; the autocast's bf16 weight "
                 "casts count as activations)" if chosen.precision == "bf16" and device_for(req, machine) == "cpu"
                 else chosen.precision)
    notes.append(f"Memory per device (GiB): {', '.join(parts)}; total {m.total:.2f}. Sequence length {work.seq_len} "
                 f"x batch {req.batch_size}, {precision}, gradient checkpointing "
                 f"{'on' if gradient_checkpointing(req, device_for(req, machine)) else 'off'}.")
    if req.method in (Method.DPO, Method.KTO) and chosen.peft != "none":
        notes.append("No reference model in memory: with LoRA the reference is the base model with the adapter switched off.")
    if req.method == Method.GRPO:
        notes.append(f"GRPO: {req.num_generations} completions of up to {req.max_completion_length} tokens per prompt; "
                     "generation with transformers' generate (no vLLM), memory-bandwidth bound; no reference model "
                     "(TRL's default beta = 0).")
    if stats.rows is not None and work.mean_tokens is not None:
        seqs = sequences_per_row(req)
        if stats.mean_tokens is None:
            label = f"ASSUMED: no token statistics, half of max_length {req.max_length}"
        else:
            label = ("estimated" if stats.estimated else "measured") + f"; {stats.source}"
        held = (f" (of {work.rows}: {work.eval_rows} held out for eval, eval_fraction {req.eval_fraction:g})"
                if work.eval_rows else "")
        notes.append(f"Tokens: {work.train_rows} training rows{held} x {work.mean_tokens:.0f} tokens per sequence ({label}) "
                     f"x {seqs} sequence(s) per row x {req.epochs:g} epoch(s) = {work.tokens:,}"
                     + (f" (capped at {req.max_steps} steps)" if req.max_steps else "") + ".")
        if stats.estimated and stats.mean_tokens is not None:
            notes.append("Token counts are an estimate from characters; `tuneforge validate` counts them with the model's tokenizer.")
    if chosen.tokens_per_second:
        if chosen.flavor:
            notes.append(f"Throughput: {chosen.gpus} x {chosen.flavor.peak_tflops:g} TFLOPs peak x {chosen.utilisation:.0%} "
                         f"utilisation / {chosen.flops_per_token / 1e9:.2f} GFLOPs per token "
                         f"(~{'6' if chosen.peft == 'none' else '4'}N plus attention"
                         f"{', +2N recompute' if gradient_checkpointing(req, 'cuda') else ''}) = {chosen.tokens_per_second:,.0f} tokens/s.")
        else:
            notes.append(f"Throughput on this {machine.name if machine else 'machine'}: {chosen.tokens_per_second:,.0f} tokens/s "
                         f"from {chosen.flops_per_token / 1e9:.2f} GFLOPs per token at an effective "
                         f"{(machine.peak_tflops if machine else 0) * 1000:.0f} GFLOP/s (a calibration run measures it).")
    if chosen.hours is not None:
        cost = f", ${chosen.cost_usd:.2f} at ${chosen.price:.2f}/h" if chosen.cost_usd is not None else ""
        notes.append(f"Time: {chosen.train_hours * 60:.0f} min training + {chosen.overhead_minutes:.0f} min start-up, "
                     f"download, load and save{cost}.")
    if table is not None:
        notes.append(f"Prices and flavors: {table.source}.")
    if machine is not None and machine.device == "cpu":
        if machine.available_gb is not None and m.total > machine.available_gb:
            warnings.append(f"The run needs about {m.total:.1f} GiB and only {machine.available_gb:g} GB of RAM is free now.")
        if chosen.train_hours is not None and chosen.train_hours > 2:
            warnings.append(f"About {chosen.train_hours:.1f} h on this CPU: consider the hf backend (Hugging Face Jobs), "
                            "a smaller model or fewer rows.")
    return notes, warnings
