"""Training time from FLOPs per token over the hardware's peak, at a stated utilisation.

Per trained token: a forward pass costs 2 FLOPs per (active) weight, the backward 4 (input and weight
gradients) for full fine-tuning, 2 for LoRA (the frozen base needs no weight gradient), plus attention
(causal: 2 x context x attention width per layer forward, x3 with backward). Gradient checkpointing adds
one more forward. DPO/KTO add a reference forward; GRPO adds generation, which is bound by memory
bandwidth (every decode step reads all weights) and by the generate loop's per-step overhead.
"""

from __future__ import annotations

from pydantic import BaseModel

from ..types import Method
from .architecture import (
    Architecture,
    count_active_parameters,
    embedding_parameters,
    lm_head_parameters,
)

# Model FLOPs utilisation assumed for transformers + TRL training (not a tuned Megatron run): small models
# cannot fill a big GPU, QLoRA spends time dequantising, several GPUs lose some time to communication.
DECODE_STEP_OVERHEAD_S = 0.03  # transformers' generate loop per token step (python + kernel launches)


class Throughput(BaseModel):
    flops_per_token: float
    tokens_per_second: float
    utilisation: float
    generation_seconds_per_row: float = 0.0


def utilisation(params: float, peft: str, device: str, gpus: int = 1) -> float:
    if device == "cpu":
        return 1.0  # the CPU's figure is already an effective, measured rate
    u = 0.20 if params < 1e9 else 0.30 if params < 7e9 else 0.38
    if peft == "qlora":
        u *= 0.7
    if gpus > 1:
        u *= 0.85
    return u


def compute_parameters(a: Architecture) -> float:
    """Weights that multiply each token: active parameters minus the input embedding lookup (the LM head stays)."""
    n = count_active_parameters(a) - embedding_parameters(a)
    if lm_head_parameters(a) == 0:  # tied: the embedding matrix is also the LM head
        n += a.vocab_size * a.hidden_size
    return float(n)


def train_flops_per_token(a: Architecture, *, peft: str, context: float, gradient_checkpointing: bool,
                          method: str, head: bool = True) -> float:
    n = compute_parameters(a)
    if not head:  # reward models score with a 1-wide head instead of the vocabulary
        n -= a.vocab_size * a.hidden_size
    attn = 2 * context * a.q_dim * a.num_layers  # causal forward, per token
    forward = 2 * n + attn
    backward = (2 * n if peft != "none" else 4 * n) + 2 * attn
    flops = forward + backward
    if gradient_checkpointing:
        flops += forward
    if method in (Method.DPO, Method.KTO):
        flops += forward  # reference log-probs (adapter off, or the reference model)
    return flops


def training_throughput(a: Architecture, *, peft: str, context: float, gradient_checkpointing: bool, method: str,
                        peak_tflops: float, gpus: int, device: str, params: float) -> Throughput:
    flops = train_flops_per_token(a, peft=peft, context=context, gradient_checkpointing=gradient_checkpointing,
                                  method=method, head=method != Method.REWARD)
    u = utilisation(params, peft, device, gpus)
    rate = peak_tflops * 1e12 * max(1, gpus) * u
    return Throughput(flops_per_token=flops, tokens_per_second=rate / flops if flops else 0.0, utilisation=u)


def generation_seconds(a: Architecture, *, weight_bytes: float, bandwidth_gbs: float, completion_len: int,
                       sequences: int, batch: int, device: str) -> float:
    """Time to sample `sequences` completions of `completion_len` tokens, `batch` at a time."""
    if sequences <= 0:
        return 0.0
    read_time = weight_bytes / (bandwidth_gbs * 1e9 * 0.6) if bandwidth_gbs else 0.0
    per_step = max(read_time, 0.0) + (DECODE_STEP_OVERHEAD_S if device == "cuda" else 0.01)
    batches = -(-sequences // max(1, batch))
    return batches * completion_len * per_step
