"""The model a training template trains: its tokenizer, end-of-turn tokens, loading (QLoRA, GPU) and LoRA config."""

from __future__ import annotations

import os

from _events import emit, fail
from _shared.roles import END_OF_TURN_TOKENS


def load_tokenizer(cfg: dict):
    """The model's tokenizer, its pad token set (eos when it has none)."""
    from transformers import AutoTokenizer

    emit("status", message="loading tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(cfg["model"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def end_of_turn_ids(tokenizer) -> set[int]:
    """Token ids of the chat templates' end-of-turn markers this tokenizer knows."""
    end_ids = set()
    for tok in END_OF_TURN_TOKENS:
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            end_ids.add(tid)
    return end_ids


def model_kwargs(cfg: dict, precision: str, on_gpu: bool) -> dict:
    """from_pretrained keyword arguments: dtype, 4-bit quantization for QLoRA, this process's GPU."""
    import torch

    kwargs = {"dtype": torch.bfloat16 if (on_gpu and precision == "bf16") else (torch.float16 if precision == "fp16" else torch.float32)}
    if cfg["peft"]["kind"] == "qlora":
        if not on_gpu:
            fail("QLoRA needs a CUDA GPU (bitsandbytes 4-bit); use peft kind 'lora' on CPU")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    if on_gpu:  # straight onto this process's GPU (not through host RAM); needed for 4-bit loading
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    return kwargs


def load_policy(cfg: dict, precision: str, on_gpu: bool, end_ids: set[int]):
    """The causal LM to train; generation stops at the chat template's end-of-turn tokens too."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(cfg["model"], **model_kwargs(cfg, precision, on_gpu))
    if model.generation_config is not None and end_ids:
        eos = model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        model.generation_config.eos_token_id = sorted(set(eos) | end_ids)
    return model


def lora_config(pcfg: dict, task_type: str = "CAUSAL_LM"):
    """A peft LoraConfig for lora/qlora, None for a full fine-tune."""
    if pcfg["kind"] not in ("lora", "qlora"):
        return None
    from peft import LoraConfig

    return LoraConfig(r=int(pcfg["r"]), lora_alpha=int(pcfg["alpha"]), lora_dropout=float(pcfg["dropout"]),
                      target_modules=pcfg["target_modules"], task_type=task_type)
