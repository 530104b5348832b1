"""Training throughput: the one place that turns the config's `speed` block (and padding_free, gradient
checkpointing, optimizer) into what a run does, per device and installed packages.

Every knob is None (auto) by default; the rules, from benchmarks/bench_sft.py on CPU and the packages'
own support matrices on GPU:

  padding_free      on unless packing: TRL flattens each batch into one row with position_ids.
                    transformers >= 5 builds the per-row (block-diagonal) causal mask from position_ids for
                    sdpa and eager, and flash-attention kernels take the boundaries directly, so it is exact
                    for every attention implementation; off where transformers lacks packed-sequence masks.
  group_by_length   on when batches are padded (padding-free off) and hold more than one row: rows of similar
                    length share a batch, less padding.
  compact_lm_head   TRL's fused LM head scores every position on a CPU (a choice made for Neuron's compiler);
                    on a CPU this scores only the positions with a label, as it does on CUDA.
  cpu_threads       None: torch's default; an int sets torch.set_num_threads (0 leaves it).
  liger             on CUDA when liger_kernel is installed: its RMSNorm, RoPE and SwiGLU kernels on the model
                    (the fused cross-entropy stays TRL's own fused LM head).
  attention         auto: flash_attention_2 on CUDA when flash_attn is installed, else sdpa.
  fused_optimizer   on CUDA: adamw_torch_fused instead of adamw_torch.
  engine            transformers; unsloth where it is installed, on CUDA, for the architectures it patches.

Where a package or kernel is missing, the run goes on without it and says so in one status event line
("speed: ... unavailable (...); using ...").
"""

from __future__ import annotations

import importlib.util

from _events import emit

UNSLOTH_MODEL_TYPES = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3", "granite", "cohere"}
LIGER_MODEL_TYPES = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3", "granite",
                     "olmo2", "glm4"}


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _packed_masks_supported() -> bool:
    """transformers builds block-diagonal causal masks from position_ids (no attention_mask) for every attention."""
    try:
        from transformers import masking_utils
    except ImportError:
        return False
    return hasattr(masking_utils, "find_packed_sequence_indices")


def choose(cfg: dict, on_gpu: bool, model_type: str | None = None) -> dict:
    """The run's speed decisions: {knob: value}, each announced in one status event."""
    speed = dict(cfg.get("speed") or {})
    tcfg = cfg.get("train") or {}
    batch = int(tcfg.get("per_device_batch_size") or 1)
    notes = []
    out: dict = {}

    pf = cfg.get("padding_free")
    if pf is None:
        pf = not bool(cfg.get("packing"))  # packing (bfd) is padding-free already
    if pf and not _packed_masks_supported():
        notes.append("padding-free unavailable (this transformers builds no packed-sequence masks); padded batches")
        pf = False
    out["padding_free"] = bool(pf)

    group = speed.get("group_by_length")  # padding-free batches hold no padding to save: keep the random order
    out["group_by_length"] = (batch > 1 and not pf) if group is None else bool(group)

    compact = speed.get("compact_lm_head")
    out["compact_lm_head"] = (not on_gpu) if compact is None else bool(compact) and not on_gpu

    threads = speed.get("cpu_threads")
    out["cpu_threads"] = int(threads) if (threads and not on_gpu) else None

    liger = speed.get("liger")
    want_liger = on_gpu if liger is None else bool(liger)
    if want_liger and not on_gpu:
        notes.append("liger unavailable (its kernels are Triton, CUDA only); plain PyTorch layers")
        want_liger = False
    elif want_liger and not installed("liger_kernel"):
        if liger:  # asked for explicitly: say so
            notes.append("liger unavailable (liger_kernel is not installed: pip install liger-kernel); plain PyTorch layers")
        want_liger = False
    elif want_liger and model_type and model_type not in LIGER_MODEL_TYPES:
        notes.append(f"liger unavailable (no kernels for model type {model_type!r}); plain PyTorch layers")
        want_liger = False
    out["liger"] = want_liger

    attn = speed.get("attention") or "auto"
    if attn == "auto":
        attn = "flash_attention_2" if (on_gpu and installed("flash_attn")) else "sdpa"
    elif attn.startswith("flash_attention") and not (on_gpu and installed("flash_attn")):
        why = "no CUDA GPU" if not on_gpu else "flash_attn is not installed: pip install flash-attn"
        notes.append(f"{attn} unavailable ({why}); using sdpa")
        attn = "sdpa"
    out["attention"] = attn

    fused = speed.get("fused_optimizer")
    optim = tcfg.get("optimizer") or "adamw_torch"
    if (on_gpu if fused is None else bool(fused)) and optim == "adamw_torch":
        optim = "adamw_torch_fused"  # torch's fused AdamW runs on CUDA and (torch >= 2.4) on CPU
    out["optimizer"] = optim

    grad_ckpt = tcfg.get("gradient_checkpointing")
    out["gradient_checkpointing"] = on_gpu if grad_ckpt is None else bool(grad_ckpt)

    engine = speed.get("engine") or "transformers"
    if engine in ("unsloth", "auto"):
        why = None
        if not on_gpu:
            why = "no CUDA GPU"
        elif not installed("unsloth"):
            why = "unsloth is not installed: pip install unsloth"
        elif model_type and model_type not in UNSLOTH_MODEL_TYPES:
            why = f"model type {model_type!r} is not one it patches"
        if why:
            if engine == "unsloth":
                notes.append(f"unsloth unavailable ({why}); using transformers")
            engine = "transformers"
        else:
            engine = "unsloth"
    out["engine"] = engine

    for note in notes:
        emit("status", message=f"speed: {note}")
    emit("status", message="speed: " + ", ".join(f"{k}={v}" for k, v in out.items()))
    return out


def apply_threads(decisions: dict) -> None:
    if decisions.get("cpu_threads"):
        import torch

        torch.set_num_threads(int(decisions["cpu_threads"]))


def compact_lm_head() -> bool:
    """Score only labelled positions in TRL's fused LM head on a CPU too (TRL compacts only on Triton devices).

    TRL decides per call with `trl.trainer.utils._use_triton(device)`; the kernel itself looks up its own copy
    in trl.kernels.chunked_logprob, so only the compaction changes. False (and an event) where TRL has no such hook."""
    try:
        from trl.trainer import utils as trl_utils
    except ImportError:
        return False
    original = getattr(trl_utils, "_use_triton", None)
    if original is None or not hasattr(trl_utils, "add_fused_lm_head"):
        emit("status", message="speed: compact_lm_head unavailable (this TRL has no fused LM head); every position scored")
        return False
    if getattr(original, "_tuneforge_compact", False):
        return True

    def use_compaction(device, _original=original):
        return getattr(device, "type", None) == "cpu" or _original(device)

    use_compaction._tuneforge_compact = True
    trl_utils._use_triton = use_compaction
    return True


def apply_liger(model) -> bool:
    """Liger's layer kernels on a loaded model (before PEFT wraps it); False, with an event, when they fail."""
    try:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        _apply_liger_kernel_to_instance(model=model, fused_linear_cross_entropy=False, cross_entropy=False)
        return True
    except Exception as exc:  # noqa: BLE001 - any failure means plain layers, said once
        emit("status", message=f"speed: liger unavailable ({type(exc).__name__}: {str(exc)[:120]}); plain PyTorch layers")
        return False
