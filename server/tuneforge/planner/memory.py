"""Peak training memory from first principles, one component at a time.

Every component is a formula over the architecture and the run (method, PEFT, batch, sequence length,
precision, device), written the way the tuneforge templates actually train (TRL trainers, PEFT LoRA in
fp32 over a frozen base, AdamW, bitsandbytes NF4 for QLoRA). All values are bytes; the plan shows GiB.

Components:
  weights          base weights in the load dtype: 2 bytes in bf16/fp16, 4 in fp32 (CPU "bf16" runs load fp32
                   weights under bf16 autocast), NF4 for QLoRA linears
  lora             LoRA adapter weights (fp32: PEFT upcasts adapters of a bf16 model)
  gradients        adapter gradients (LoRA) or full gradients in the weight dtype
  optimizer        AdamW moments (2 per trainable parameter, same dtype as the parameter; 8-bit: 2 bytes)
  activations      tensors saved for backward: per layer and token, or only layer inputs plus one layer
                   when gradient checkpointing recomputes them; under CPU bf16 autocast also each linear's
                   bf16 cast of its fp32 weight
  logits           the LM head: TRL 1.16's SFT/DPO/KTO/GRPO trainers score tokens in tiles of at most 4096
                   tokens x 32768 vocabulary entries (a fused head: never batch x seq x vocab at once); the
                   reward model has a one-wide score head
  reference_model  a frozen copy for DPO/KTO full fine-tuning (LoRA switches the adapter off instead: 0)
  generation       GRPO rollouts: the KV cache of num_generations x (prompt + completion) tokens
  runtime          CUDA context and allocator slack on GPUs; the Python/torch/transformers process on CPU
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ..reports.plan import MemoryBreakdown
from ..types import Method
from .architecture import (
    Architecture,
    count_parameters,
    linear_parameters,
    lora_parameters,
)
from .vision import vision_activation_bytes

GiB = 1024**3

# bitsandbytes NF4 with double quantization: 4 bits + an 8-bit absmax per 64 weights + fp32 per 256 absmax.
NF4_BYTES_PER_PARAM = 0.5 + 1 / 64 + 4 / (64 * 256)
# TRL 1.16 fused LM head (trl/kernels/chunked_logprob.py): tiles of this many tokens x vocabulary entries.
LOGIT_TILE_TOKENS = 4096
LOGIT_TILE_VOCAB = 32768
# Bytes per tile element alive at the peak. On CUDA the Triton kernel folds a bf16 tile in place (plus the
# backward's recomputed tile and its gradient); on CPU the torch fallback makes fp32 copies (float, exp,
# products, masks): fitted on this project's CPU measurements.
TILE_BYTES = {"cuda": 6.0, "cpu": 27.0}
# GPU runtime: CUDA context + cuBLAS workspaces (not in torch's allocator) and allocator fragmentation.
CUDA_CONTEXT_BYTES = 0.8 * GiB
CUDA_FRAGMENTATION = 0.08
# CPU runtime: python + torch + transformers + trl + peft + datasets + trackio + tokenizer + data (0.45-0.5 GiB
# measured before the model loads; fitted to 0.62 with the trainer's own state), and glibc keeping freed blocks
# (a share of the dynamic tensors). Fitted on 8 template runs (tiny Llama, SmolLM2-135M): all within ±8%.
CPU_PROCESS_BYTES = 0.62 * GiB
CPU_ALLOCATOR_SLACK = 0.12


class Workload(BaseModel):
    """What the memory model needs to know about one run (per device)."""

    method: Method = Method.SFT
    peft: Literal["lora", "qlora", "none"] = "lora"
    lora_r: int = 16
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    batch_size: int = Field(default=4, ge=1, description="Per-device batch (rows).")
    seq_len: int = Field(default=1024, ge=1, description="Longest padded sequence in a micro-batch.")
    prompt_len: int = Field(default=256, ge=1, description="GRPO prompt length.")
    completion_len: int = Field(default=128, ge=1, description="GRPO completion length.")
    num_generations: int = Field(default=4, ge=1)
    gradient_checkpointing: bool = True
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    device: Literal["cuda", "cpu"] = "cuda"
    optimizer: Literal["adamw_torch", "adamw_8bit", "paged_adamw_8bit"] = "adamw_torch"
    lora_dropout: float = 0.05
    gpus: int = 1
    sharding: Literal["none", "ddp", "fsdp"] = "none"
    reference_model: bool = Field(default=False, description="GRPO with beta > 0 keeps a reference model.")
    images_per_sequence: float = Field(default=0.0, ge=0, description="A VLM's images per sequence (its tower's forward).")

    @property
    def cpu_autocast(self) -> bool:
        """bf16 on CPU: the template loads fp32 weights and trains under bf16 autocast."""
        return self.device == "cpu" and self.precision == "bf16"

    @property
    def weight_bytes(self) -> float:
        """Bytes per base weight as the template loads it: 4 in fp32 (which CPU bf16 runs load: autocast over
        fp32 weights), 2 in bf16/fp16. The same precision gives the same bytes on every device."""
        return 4.0 if self.precision == "fp32" or self.cpu_autocast else 2.0

    @property
    def act_bytes(self) -> float:
        """Bytes per saved activation element: 16-bit on GPUs. On CPU, bf16 autocast over fp32 weights keeps the
        residual stream, norms and element-wise ops in fp32: 4 bytes fits the measurements (within 8%)."""
        return 2.0 if self.device == "cuda" and self.precision != "fp32" else 4.0


def sequences_per_step(w: Workload) -> tuple[int, int]:
    """(sequences in one forward, their padded length) for the method."""
    if w.method in (Method.DPO, Method.REWARD):
        return 2 * w.batch_size, w.seq_len  # chosen + rejected, concatenated
    if w.method == Method.KTO:
        return 2 * w.batch_size, w.seq_len  # the batch and its mismatched KL batch
    if w.method == Method.GRPO:
        return max(w.batch_size, w.num_generations), w.prompt_len + w.completion_len
    return w.batch_size, w.seq_len


def activation_bytes_per_token_layer(a: Architecture, w: Workload) -> float:
    """Bytes a decoder layer saves for backward, per token, without checkpointing.

    Counted tensor by tensor for a Llama-style block with SDPA/flash attention (no seq x seq scores):
    two RMSNorms (fp32 input copy + normalized output), q/k/v after RoPE and the attention output,
    the gated MLP's gate, up, silu(gate) and product, and for LoRA the dropout mask plus the dropped-out
    input each adapter keeps (q, k, v, o, gate, up, down)."""
    h, i, kv, q = a.hidden_size, a.intermediate_size, a.kv_dim, a.q_dim
    if a.is_moe:  # routed tokens go through experts_per_token experts (+ a shared expert)
        i = a.moe_intermediate_size * a.experts_per_token + a.shared_expert_intermediate_size
    e = w.act_bytes
    norms = a.norms_per_layer * (4 * h + e * h)
    attention = e * (q + 2 * kv) + e * q + 4 * a.num_heads / 64  # q, k, v, output, logsumexp
    mlp = e * (4 * i if a.gated_mlp else 2 * i)
    per = norms + attention + mlp
    if w.peft == "none":
        per += e * i  # the down projection's input, kept for the weight gradient
    else:
        lora_inputs = 5 * h + q + i
        per += lora_inputs * (e + (1 if w.lora_dropout > 0 else 0))
    return per


def memory_breakdown(a: Architecture, w: Workload) -> MemoryBreakdown:
    n = count_parameters(a)
    g = max(1, w.gpus)
    shard = g if w.sharding == "fsdp" else 1
    wb = w.weight_bytes

    # -- weights
    if w.peft == "qlora":
        dense_part = n - linear_parameters(a)
        weights = linear_parameters(a) * NF4_BYTES_PER_PARAM + dense_part * 2.0
    else:
        weights = n * wb
    weights /= shard
    # fp32 weights under bf16 autocast (CPU): each linear's 16-bit cast is saved for the backward pass like an
    # activation (counted there, so that `weights` is the load dtype's bytes on every device)
    autocast_copies = linear_parameters(a) * 2.0 if (w.cpu_autocast and w.peft != "qlora") else 0.0

    # -- trainable parameters, gradients, optimizer
    lora = grads = optim = 0.0
    if w.peft == "none":
        trained = n - (a.vision.tower_parameters if a.vision is not None else 0)  # a VLM's vision tower stays frozen
        grads = trained * wb / shard
        per_state = 1.0 if w.optimizer != "adamw_torch" else wb
        optim = 2 * trained * per_state / shard
    else:
        lp = lora_parameters(a, w.lora_r, w.target_modules)
        lora = lp * 4.0
        grads = lp * 4.0
        optim = lp * (8.0 if w.optimizer == "adamw_torch" else 2.0)

    # -- activations
    seqs, length = sequences_per_step(w)
    tokens = seqs * length
    per_layer = activation_bytes_per_token_layer(a, w)
    if w.gradient_checkpointing:
        # layer inputs kept for every layer, one layer's activations live during its recompute
        acts = tokens * (a.num_layers * a.hidden_size * w.act_bytes + per_layer)
    else:
        acts = tokens * a.num_layers * per_layer
    acts += tokens * a.hidden_size * 4  # embedding output / final norm in fp32
    if a.vision is not None and w.images_per_sequence:  # the frozen tower's forward over the step's images
        acts += vision_activation_bytes(a.vision, seqs * w.images_per_sequence, w.act_bytes)
    if w.device == "cpu" and w.precision == "fp32":
        # fp32 SDPA on CPU with a padding mask takes the math path: seq x seq probabilities kept per layer
        # (measured: SmolLM2 at 2 x 944 tokens needs ~2 GiB more in fp32 than in bf16)
        acts += a.num_layers * seqs * a.num_heads * length * length * 4.0

    # -- logits (the fused LM head's tiles; CUDA scores only positions with a label, the CPU path all)
    if w.method == Method.REWARD:
        logits = tokens * 4.0  # a scalar score per position before pooling
    else:
        scored = seqs * w.completion_len if (w.method == Method.GRPO and w.device == "cuda") else tokens
        tile_tokens = min(scored, LOGIT_TILE_TOKENS)
        logits = tile_tokens * min(a.vocab_size, LOGIT_TILE_VOCAB) * TILE_BYTES[w.device]
        logits += tokens * a.hidden_size * 4  # fp32 gradient of the head's input
        if w.peft == "none":
            logits += a.vocab_size * a.hidden_size * 4 / shard  # fp32 gradient accumulator of the head's weight

    # -- reference model
    reference = 0.0
    if w.method in (Method.DPO, Method.KTO) and w.peft == "none":
        reference = n * wb / shard
    if w.method == Method.GRPO and w.reference_model and w.peft == "none":
        reference = n * wb / shard

    # -- generation (GRPO rollouts)
    generation = 0.0
    if w.method == Method.GRPO:
        gen_seqs = max(w.batch_size, w.num_generations)
        kv_cache = 2 * a.num_layers * a.kv_dim * 2.0 * gen_seqs * (w.prompt_len + w.completion_len)
        generation = kv_cache + gen_seqs * a.vocab_size * 4.0 * 2  # last-position logits + sampling probs

    if w.device == "cuda":
        runtime = CUDA_CONTEXT_BYTES + CUDA_FRAGMENTATION * (weights + lora + grads + optim + acts + logits
                                                             + reference + generation)
    else:
        runtime = CPU_PROCESS_BYTES + CPU_ALLOCATOR_SLACK * (acts + logits)
    acts += autocast_copies
    tensors = weights + lora + grads + optim + acts + logits + reference + generation
    total = tensors + runtime
    return MemoryBreakdown(
        total=_gib(total), weights=_gib(weights), lora=_gib(lora), gradients=_gib(grads), optimizer=_gib(optim),
        activations=_gib(acts), logits=_gib(logits), reference_model=_gib(reference), generation=_gib(generation),
        runtime=_gib(runtime),
    )


def allocated_bytes(m: MemoryBreakdown, w: Workload) -> float:
    """What torch.cuda.max_memory_allocated should show: everything but the CUDA context and slack."""
    tensors = m.total - m.runtime
    return tensors * GiB


def _gib(x: float) -> float:
    return round(x / GiB, 3)
