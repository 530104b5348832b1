# /// script
# requires-python = ">=3.10"
# dependencies = [
#     "torch>=2.4",
#     "transformers>=5.0",
#     "trl>=1.16",
#     "peft>=0.17",
#     "datasets>=4.0",
#     "accelerate>=1.10",
#     "trackio>=0.40",
#     "pyyaml>=6",
#     "rouge-score>=0.1.2",
#     "bitsandbytes>=0.45; sys_platform == 'linux'",
# ]
# ///
"""Supervised fine-tuning (SFT) with TRL + PEFT, driven by a tuneforge run config.

Usage:
    python sft.py --config run.json        (or: uv run sft.py --config run.json)

The config (JSON or YAML) is tuneforge's RunConfig: model, dataset (+ column_map), peft, train,
max_length, ... This script is static: user values only ever arrive through that file. It never reads
secrets from the config; a Hub token, when pushing, comes from the environment (HF_TOKEN).

What it does:
- loads the data (local jsonl/json/csv/parquet file or folder, or a Hub dataset), applies column_map,
  turns Alpaca and ShareGPT rows into chat messages;
- tokenizes with the model's own chat template and trains only on assistant turns, end-of-turn token
  included (masks computed here, so templates without {% generation %} markers work and the model
  learns to stop even when pad == eos);
- trains with TRL's SFTTrainer (LoRA / QLoRA / full), logging to Trackio, checkpointing;
- prints one structured event per logging step: `##tuneforge-event {"type": "progress", ...}`;
- writes result.json (eval loss before/after, train loss, runtime, tokens, peak memory, samples),
  the adapter (or full model), the merged model on request, and a model card; pushes when asked.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # its helpers travel next to it (jobs/workspace.py)
from _shared.events import EVENT_PREFIX  # noqa: E402, F401  (part of every template's surface)
from _shared.roles import ROLE_ALIASES  # noqa: E402
from _events import emit, fail  # noqa: E402
from _config import KNOWN_TOP_KEYS  # noqa: E402, F401  (part of every template's surface)
from _launch import begin, start_run  # noqa: E402
from _data import load_splits  # noqa: E402
from _model import end_of_turn_ids, load_policy, load_tokenizer, load_unsloth, lora_config, model_type  # noqa: E402
from _speed import apply_liger, apply_threads, compact_lm_head  # noqa: E402
from _speed import choose as choose_speed  # noqa: E402
from _trainer import progress_callback, save_throttle_callback, trainer_args  # noqa: E402
from _finish import before_after, train_and_finish  # noqa: E402
from _finish import write_model_card as write_card  # noqa: E402


# ---- data -----------------------------------------------------------------------------------------
def to_messages(row: dict, system_prompt: str | None) -> dict:
    """One row -> {"messages": [...]} or {"text": ...}. Alpaca and ShareGPT are converted here."""
    if "messages" in row and row["messages"]:
        msgs = [{"role": ROLE_ALIASES.get(str(m.get("role")), str(m.get("role"))), "content": m.get("content") or ""}
                for m in row["messages"]]
    elif "conversations" in row and row["conversations"]:
        msgs = [{"role": ROLE_ALIASES.get(str(m.get("from")), str(m.get("from"))), "content": m.get("value") or ""}
                for m in row["conversations"]]
    elif "instruction" in row and "output" in row:
        user = row["instruction"] or ""
        if row.get("input"):
            user = f"{user}\n\n{row['input']}"
        msgs = [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"] or ""}]
    elif "prompt" in row and "completion" in row:
        prompt, completion = row["prompt"], row["completion"]
        prompt = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        completion = completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
        msgs = list(prompt) + list(completion)
    elif "text" in row:
        return {"text": row["text"] or ""}
    else:
        raise KeyError(f"row has none of messages/conversations/instruction+output/prompt+completion/text: {sorted(row)}")
    if system_prompt and not any(m["role"] == "system" for m in msgs):
        msgs = [{"role": "system", "content": system_prompt}] + msgs
    return {"messages": msgs}


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of assistant turns (end-of-turn included).

    Rendered prefix by prefix with the model's own template, so it works without {% generation %}
    markers. Templates that rewrite earlier turns (not prefix-preserving) fall back to the last turn.
    """
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True) if i else ""
        through = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if full.startswith(through) and through.startswith(before) and len(through) > len(before):
            spans.append((len(before), len(through)))
    if not spans and messages and messages[-1]["role"] == "assistant":
        before = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        if full.startswith(before):
            spans.append((len(before), len(full)))
    return full, spans


def tokenize_rows(dataset, tokenizer, max_length: int, assistant_only: bool, system_prompt: str | None,
                  column_map: dict, stop_ids: set[int]):
    """Rows -> input_ids + labels (-100 outside the trained span). Returns (dataset, stats)."""
    eos_ids = {tokenizer.eos_token_id} | stop_ids
    stats = {"rows": 0, "truncated": 0, "no_trainable": 0, "stop_trained": 0, "tokens": 0, "trained_tokens": 0,
             "fallback_full_sequence": 0}

    def encode(row):
        row = {target: row[source] for target, source in column_map.items() if source in row} | {
            k: v for k, v in row.items() if k not in column_map.values()}
        item = to_messages(row, system_prompt)
        if "text" in item:
            ids = tokenizer(item["text"], add_special_tokens=True)["input_ids"]
            if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
                ids = ids + [tokenizer.eos_token_id]
            labels = list(ids)
        else:
            text, spans = assistant_spans(tokenizer, item["messages"])
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            ids = enc["input_ids"]
            if assistant_only and not any(m["role"] == "assistant" for m in item["messages"]):
                labels = [-100] * len(ids)  # nothing to learn: dropped below, counted in no_trainable
            elif assistant_only and spans:
                labels = [tid if any(a <= s < b for a, b in spans) else -100
                          for tid, (s, _e) in zip(ids, enc["offset_mapping"])]
            else:
                labels = list(ids)
                if assistant_only:
                    stats["fallback_full_sequence"] += 1
        truncated = len(ids) > max_length
        ids, labels = ids[:max_length], labels[:max_length]
        return {"input_ids": ids, "labels": labels, "_truncated": truncated,
                "_trained": sum(1 for x in labels if x != -100),
                "_stop": any(x in eos_ids for x in labels if x != -100)}

    remove = list(dataset.column_names)
    out = dataset.map(encode, remove_columns=remove, desc="tokenizing")
    stats["rows"] = len(out)
    stats["truncated"] = int(sum(out["_truncated"]))
    stats["no_trainable"] = int(sum(1 for t in out["_trained"] if t == 0))
    stats["stop_trained"] = int(sum(out["_stop"]))
    stats["trained_tokens"] = int(sum(out["_trained"]))
    stats["tokens"] = int(sum(len(x) for x in out["input_ids"]))
    out = out.filter(lambda r: r["_trained"] > 0).remove_columns(["_truncated", "_trained", "_stop"])
    return out, stats


# ---- model card -------------------------------------------------------------------------------
def write_model_card(path: Path, cfg: dict, result: dict) -> None:
    pcfg = cfg["peft"]
    write_card(path, cfg, result, tag="sft",
               intro=f"Fine-tuned from `{cfg['model']}` with supervised fine-tuning (TRL SFTTrainer) by tuneforge {result.get('tuneforge_version') or ''}.",
               method_rows=[f"| method | sft, {pcfg['kind']} (r={pcfg['r']}, alpha={pcfg['alpha']}) |"],
               metric_rows=[before_after("eval loss", result, "eval_loss")])


def evaluate_into(trainer, result: dict, when: str) -> None:
    emit("status", message=f"evaluating ({when})")
    result[f"eval_loss_{when}"] = trainer.evaluate()["eval_loss"]


# ---- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    cfg, t_start = begin(argv, __doc__, __file__)
    from _vision import is_vlm

    if is_vlm(cfg):  # a vision-language model: its processor, images and a frozen vision tower (_vision_train.py)
        from _vision_train import train_sft_vlm

        return train_sft_vlm(cfg, t_start, evaluate=evaluate_into, write_card=write_model_card)
    from datasets import DatasetDict  # noqa: F401  (import check)
    from trl import SFTConfig, SFTTrainer

    seed, out_dir, precision, on_gpu = start_run(cfg)
    pcfg, dcfg = cfg["peft"], cfg["dataset"]
    speed = choose_speed(cfg, on_gpu, model_type(cfg))  # throughput knobs, one place (_speed.py)
    apply_threads(speed)

    tokenizer = load_tokenizer(cfg)
    end_ids = end_of_turn_ids(tokenizer)

    emit("status", message="loading data")
    train_raw, eval_raw = load_splits(dcfg, seed, map_columns=False)  # column_map is applied row by row below
    column_map = dcfg.get("column_map") or {}
    max_length = int(cfg["max_length"])
    assistant_only = bool(cfg.get("assistant_only_loss", True))
    try:
        train_ds, data_stats = tokenize_rows(train_raw, tokenizer, max_length, assistant_only, cfg.get("system_prompt"),
                                             column_map, end_ids)
        eval_ds = None
        if eval_raw is not None and len(eval_raw):
            eval_ds, _ = tokenize_rows(eval_raw, tokenizer, max_length, assistant_only, cfg.get("system_prompt"),
                                       column_map, end_ids)
    except KeyError as exc:
        fail(f"dataset rows do not fit SFT: {exc}. Run `tuneforge validate` on the data and use its column_map.")
    if len(train_ds) == 0:
        fail("no training rows with trainable tokens; run `tuneforge validate` on the data")
    if data_stats["fallback_full_sequence"]:
        emit("status", message=f"warning: {data_stats['fallback_full_sequence']} rows trained on the full sequence "
                               "(chat template not prefix-preserving)")

    emit("status", message="loading model")
    peft_config = lora_config(pcfg)
    unsloth = load_unsloth(cfg, precision, max_length) if speed["engine"] == "unsloth" else None
    if unsloth is not None:
        model = unsloth[0]  # LoRA already applied by Unsloth
    else:
        model = load_policy(cfg, precision, on_gpu, end_ids, speed["attention"])
        if speed["liger"]:
            apply_liger(model)
    if speed["compact_lm_head"]:
        compact_lm_head()
    sft_args = SFTConfig(
        **trainer_args(cfg, out_dir, precision, on_gpu, eval_ds is not None, seed, speed=speed),
        max_length=None if speed["padding_free"] else max_length,  # rows are truncated to max_length above
        packing=bool(cfg.get("packing")),
        padding_free=speed["padding_free"],
        assistant_only_loss=False,  # masks are computed above, from the model's own template
        completion_only_loss=False,
        dataset_text_field="text",
    )
    trainer = SFTTrainer(model=model, args=sft_args, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, peft_config=None if unsloth is not None else peft_config,
                         callbacks=[cb for cb in (progress_callback(eval_before_training=False), save_throttle_callback(cfg)) if cb])

    result: dict = {"base_model": cfg["model"], "method": "sft", "peft": pcfg["kind"], "precision": precision,
                    "device": "cuda" if on_gpu else "cpu", "data": data_stats, "speed": speed,
                    "processes": int(os.environ.get("WORLD_SIZE", "1")),
                    "train_rows": len(train_ds), "eval_rows": len(eval_ds) if eval_ds is not None else 0}
    return train_and_finish(trainer, tokenizer, peft_config, cfg, out_dir, result, t_start, evaluate=evaluate_into,
                            has_eval=eval_ds is not None, write_card=write_model_card)


if __name__ == "__main__":
    raise SystemExit(main())
