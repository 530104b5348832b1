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


def model_type(cfg: dict) -> str | None:
    """The model's architecture family (config.json's model_type), for the speed choices; None when unreadable."""
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(cfg["model"]).model_type
    except Exception:  # noqa: BLE001 - the model load below reports a real problem
        return None


def model_kwargs(cfg: dict, precision: str, on_gpu: bool, attention: str | None = None) -> dict:
    """from_pretrained keyword arguments: dtype, attention, 4-bit quantization for QLoRA, this process's GPU."""
    import torch

    kwargs = {"dtype": torch.bfloat16 if (on_gpu and precision == "bf16") else (torch.float16 if precision == "fp16" else torch.float32)}
    if attention:
        kwargs["attn_implementation"] = attention
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


def load_policy(cfg: dict, precision: str, on_gpu: bool, end_ids: set[int], attention: str | None = None):
    """The causal LM to train; generation stops at the chat template's end-of-turn tokens too."""
    from transformers import AutoModelForCausalLM

    kwargs = model_kwargs(cfg, precision, on_gpu, attention)
    try:
        model = AutoModelForCausalLM.from_pretrained(cfg["model"], **kwargs)
    except (ImportError, ValueError) as exc:
        if not attention or attention == "sdpa":
            raise
        emit("status", message=f"speed: {attention} unavailable ({str(exc)[:160]}); using sdpa")
        model = AutoModelForCausalLM.from_pretrained(cfg["model"], **{**kwargs, "attn_implementation": "sdpa"})
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


def load_unsloth(cfg: dict, precision: str, max_length: int):
    """(model with LoRA, tokenizer) through Unsloth's FastLanguageModel, or None (with an event) when it cannot."""
    pcfg = cfg["peft"]
    try:
        import torch
        from unsloth import FastLanguageModel

        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=cfg["model"], max_seq_length=max_length, load_in_4bit=pcfg["kind"] == "qlora",
            dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
        if pcfg["kind"] in ("lora", "qlora"):
            targets = pcfg["target_modules"]
            if targets == "all-linear":
                targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
            model = FastLanguageModel.get_peft_model(model, r=int(pcfg["r"]), lora_alpha=int(pcfg["alpha"]),
                                                     lora_dropout=float(pcfg["dropout"]), target_modules=targets,
                                                     use_gradient_checkpointing="unsloth", random_state=int(cfg.get("seed", 42)))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return model, tokenizer
    except Exception as exc:  # noqa: BLE001 - any failure: the transformers engine, said once
        emit("status", message=f"speed: unsloth unavailable ({type(exc).__name__}: {str(exc)[:160]}); using transformers")
        return None
