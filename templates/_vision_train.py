"""SFT and DPO of a vision-language model: the VLM path sft.py and dpo.py take (see _vision.py for what it adds)."""

from __future__ import annotations

from _data import load_splits
from _events import emit
from _finish import note_dropped_rows, train_and_finish, warn
from _launch import start_run
from _model import end_of_turn_ids
from _trainer import metrics_callback, progress_callback, trainer_args
from _vision import (
    image_token_ids,
    load_processor,
    load_vlm,
    mask_image_tokens,
    note_vision,
    text_only_cfg,
    training_template,
    vision_rows,
    vlm_lora_config,
)


def _data(cfg: dict, seed: int, method: str):
    emit("status", message="loading data (images)")
    train_raw, eval_raw = load_splits(cfg["dataset"], seed)
    train = vision_rows(train_raw, cfg["dataset"], method)
    evals = vision_rows(eval_raw, cfg["dataset"], method) if eval_raw is not None and len(eval_raw) else None
    return train, evals


def train_sft_vlm(cfg: dict, t_start: float, *, evaluate, write_card) -> int:
    from trl import SFTConfig, SFTTrainer

    seed, out_dir, precision, on_gpu = start_run(cfg)
    result: dict = {}
    cfg = text_only_cfg(cfg, result)
    processor = load_processor(cfg)
    train_ds, eval_ds = _data(cfg, seed, "sft")
    assistant_only = bool(cfg.get("assistant_only_loss", True))
    if assistant_only:
        try:
            training_template(processor)
        except ValueError:
            assistant_only = False
            warn(result, "TRL has no training chat template for this model's template: the loss covers the whole "
                         "conversation (image tokens excluded), not only the assistant's turns")
    emit("status", message="loading model")
    model, frozen = load_vlm(cfg, precision, on_gpu, end_of_turn_ids(processor.tokenizer))
    peft_config = vlm_lora_config(cfg["peft"], model)
    args = SFTConfig(**trainer_args(cfg, out_dir, precision, on_gpu, eval_ds is not None, seed),
                     max_length=None, assistant_only_loss=assistant_only, packing=False, padding_free=False)
    # max_length None: truncating a sequence could cut an image's tokens apart (the processor refuses that)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=processor,
                         peft_config=peft_config, callbacks=[progress_callback(eval_before_training=False)])
    mask_image_tokens(trainer, image_token_ids(processor))
    result.update({"base_model": cfg["model"], "method": "sft", "peft": cfg["peft"]["kind"], "precision": precision,
                   "device": "cuda" if on_gpu else "cpu", "assistant_only_loss": assistant_only,
                   "train_rows": len(train_ds), "eval_rows": len(eval_ds) if eval_ds is not None else 0})
    note_vision(result, processor, frozen)
    return train_and_finish(trainer, processor, peft_config, cfg, out_dir, result, t_start, evaluate=evaluate,
                            has_eval=eval_ds is not None, write_card=write_card)


def train_dpo_vlm(cfg: dict, t_start: float, *, evaluate, write_card, metrics: dict) -> int:
    from trl import DPOConfig, DPOTrainer

    seed, out_dir, precision, on_gpu = start_run(cfg)
    result: dict = {}
    cfg = text_only_cfg(cfg, result)
    beta = float((cfg.get("method_args") or {}).get("beta", 0.1))
    processor = load_processor(cfg)
    train_ds, eval_ds = _data(cfg, seed, "dpo")
    emit("status", message="loading model")
    model, frozen = load_vlm(cfg, precision, on_gpu, end_of_turn_ids(processor.tokenizer))
    peft_config = vlm_lora_config(cfg["peft"], model)
    args = DPOConfig(**trainer_args(cfg, out_dir, precision, on_gpu, eval_ds is not None, seed), beta=beta,
                     max_length=None)
    trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=processor, peft_config=peft_config, callbacks=[metrics_callback(metrics)])
    mask_image_tokens(trainer, image_token_ids(processor))
    result.update({"base_model": cfg["model"], "method": "dpo", "peft": cfg["peft"]["kind"], "precision": precision,
                   "device": "cuda" if on_gpu else "cpu", "beta": beta, "prompt_layout": "explicit prompt with images",
                   "reference_model": "base with adapter disabled" if peft_config is not None else "frozen copy of the base",
                   "train_rows": len(train_ds), "eval_rows": len(eval_ds) if eval_ds is not None else 0})
    note_vision(result, processor, frozen)
    note_dropped_rows(trainer, len(train_ds), result, None)
    return train_and_finish(trainer, processor, peft_config, cfg, out_dir, result, t_start, evaluate=evaluate,
                            has_eval=eval_ds is not None, write_card=write_card)
