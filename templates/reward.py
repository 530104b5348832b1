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
#     "bitsandbytes>=0.45; sys_platform == 'linux'",
# ]
# ///
"""Reward modelling with TRL + PEFT, driven by a tuneforge run config.

Usage:
    python reward.py --config run.json        (or: uv run reward.py --config run.json)

The config (JSON or YAML) is tuneforge's RunConfig: model, dataset (+ column_map), peft, train,
max_length, ... This script is static: user values only ever arrive through that file.
It never reads secrets from the config; a Hub token, when pushing, comes from the environment (HF_TOKEN).

What it does:
- loads preference rows (local jsonl/json/csv/parquet file or folder, or a Hub dataset), applies
  column_map; explicit-prompt rows (prompt/chosen/rejected, strings or message lists) and
  implicit-prompt rows (chosen/rejected full conversations, each scored whole) both work;
  string rows are rendered with the model's chat template when it has one;
- puts a one-score head on the model (AutoModelForSequenceClassification, num_labels=1, pad token set)
  and trains it with TRL's RewardTrainer (Bradley-Terry loss: chosen should outscore rejected); LoRA
  adapters use task_type SEQ_CLS, so the new head is trained and saved with them;
- prints one structured event per logging step: `##tuneforge-event {"type": "progress", ...}`;
- writes result.json (eval accuracy, margin and loss before/after, train loss, runtime, tokens, peak
  memory), the adapter (or full model), the merged model on request, and a model card.
  A reward model scores, it does not generate: eval_prompts are not answered.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _common.py travels next to this script
from _common import (  # noqa: E402
    EVENT_PREFIX, KNOWN_TOP_KEYS,  # noqa: F401  (part of every template's surface)
    before_after, choose_precision, config_from_args, emit, fail, load_splits,
    load_tokenizer, lora_config, maybe_relaunch_distributed, metric_fields, model_kwargs, progress_callback,
    save_and_finish, seed_everything, to_preference, train_into, trainer_args, tuneforge_version,
)
from _common import write_model_card as write_card  # noqa: E402

METHOD = "reward"
# TRL log key -> progress/eval event field
METRICS = {"accuracy": "accuracy", "margin": "margin"}


# ---- model, card, evaluation ------------------------------------------------------------------------
def load_scorer(cfg: dict, precision: str, on_gpu: bool, pad_token_id: int):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(cfg["model"], num_labels=1, **model_kwargs(cfg, precision, on_gpu))
    model.config.pad_token_id = pad_token_id  # the head reads the score at the last non-pad token
    return model


def write_model_card(path: Path, cfg: dict, result: dict) -> None:
    pcfg = cfg["peft"]
    write_card(path, cfg, result, tag="reward-model",
               intro=f"A reward model trained from `{cfg['model']}` (TRL RewardTrainer, one-score sequence-classification head) "
                     f"by tuneforge {result.get('tuneforge_version') or ''}. It scores a conversation: higher is preferred.",
               method_rows=[f"| method | reward model, {pcfg['kind']} (r={pcfg['r']}, alpha={pcfg['alpha']}) |"],
               metric_rows=[before_after("eval accuracy", result, "eval_accuracy"),
                            before_after("eval loss", result, "eval_loss")])


def evaluate_into(trainer, result: dict, when: str) -> None:
    emit("status", message=f"evaluating ({when})")
    metrics = trainer.evaluate()
    result[f"eval_loss_{when}"] = metrics.get("eval_loss")
    result[f"eval_accuracy_{when}"] = metrics.get("eval_accuracy")
    result[f"eval_margin_{when}"] = metrics.get("eval_margin")


def progress_events():
    return progress_callback(step_fields=lambda logs: metric_fields(logs, METRICS),
                             eval_fields=lambda logs: {"eval_loss": logs["eval_loss"], **metric_fields(logs, METRICS, "eval_")})


# ---- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    cfg = config_from_args(argv, __doc__)
    maybe_relaunch_distributed(cfg, argv, __file__)

    t_start = time.time()
    emit("status", message="loading libraries")
    import torch
    from trl import RewardConfig, RewardTrainer

    seed = seed_everything(cfg)
    out_dir = Path(cfg["output_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    tcfg, pcfg = cfg["train"], cfg["peft"]
    precision = choose_precision(tcfg.get("precision", "auto"))
    on_gpu = torch.cuda.is_available()

    tokenizer = load_tokenizer(cfg)

    emit("status", message="loading data")
    train_raw, eval_raw = load_splits(cfg["dataset"], seed)
    chat = bool(getattr(tokenizer, "chat_template", None))
    fn_kwargs = {"chat": chat, "system_prompt": cfg.get("system_prompt")}
    try:
        train_ds = train_raw.map(to_preference, fn_kwargs=fn_kwargs, remove_columns=train_raw.column_names, desc="preference rows")
        eval_ds = None
        if eval_raw is not None:
            eval_ds = eval_raw.map(to_preference, fn_kwargs=fn_kwargs, remove_columns=eval_raw.column_names, desc="preference rows")
    except KeyError as exc:
        fail(f"dataset rows do not fit reward modelling: {exc.args[0]}. It needs chosen/rejected (and optionally prompt) columns; "
             "run `tuneforge validate --method reward` on the data and use its column_map.")
    if len(train_ds) == 0:
        fail("no training rows; run `tuneforge validate --method reward` on the data")
    layout = "explicit prompt" if "prompt" in train_ds.column_names else "implicit prompt (shared prefix of chosen/rejected)"
    emit("status", message=f"{len(train_ds)} preference pairs, {layout}")

    emit("status", message="loading model")
    model = load_scorer(cfg, precision, on_gpu, tokenizer.pad_token_id)
    peft_config = lora_config(pcfg, task_type="SEQ_CLS")
    reward_args = RewardConfig(**trainer_args(cfg, out_dir, precision, on_gpu, eval_ds is not None, seed),
                               max_length=int(cfg["max_length"]))
    trainer = RewardTrainer(model=model, args=reward_args, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, peft_config=peft_config, callbacks=[progress_events()])

    result: dict = {"base_model": cfg["model"], "method": METHOD, "peft": pcfg["kind"], "precision": precision,
                    "device": "cuda" if on_gpu else "cpu", "prompt_layout": layout,
                    "train_rows": len(train_ds), "eval_rows": len(eval_ds) if eval_ds is not None else 0}
    dropped = len(train_ds) - len(trainer.train_dataset)  # TRL drops rows that do not fit max_length
    result["rows_dropped_too_long"] = dropped
    if dropped:
        emit("status", message=f"warning: TRL dropped {dropped} training rows too long for max_length={cfg['max_length']}")
    result["tuneforge_version"] = tuneforge_version()
    if cfg.get("eval_prompts"):
        emit("status", message="eval_prompts skipped: a reward model scores conversations, it does not answer prompts")
    if eval_ds is not None:
        evaluate_into(trainer, result, "before")

    train_into(trainer, result)

    if eval_ds is not None:
        evaluate_into(trainer, result, "after")
    return save_and_finish(trainer, tokenizer, peft_config, cfg, out_dir, result, t_start, write_model_card)


if __name__ == "__main__":
    raise SystemExit(main())
