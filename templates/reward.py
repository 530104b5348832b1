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
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # its helpers travel next to it (jobs/workspace.py)
from _shared.events import EVENT_PREFIX  # noqa: E402, F401  (part of every template's surface)
from _events import emit  # noqa: E402
from _config import KNOWN_TOP_KEYS  # noqa: E402, F401  (part of every template's surface)
from _launch import begin, start_run  # noqa: E402
from _data import load_method_rows, to_preference  # noqa: E402
from _model import load_tokenizer, lora_config, model_kwargs  # noqa: E402
from _trainer import metrics_callback, trainer_args  # noqa: E402
from _finish import before_after, note_dropped_rows, train_and_finish  # noqa: E402
from _finish import write_model_card as write_card  # noqa: E402

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


# ---- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    cfg, t_start = begin(argv, __doc__, __file__)
    from trl import RewardConfig, RewardTrainer

    seed, out_dir, precision, on_gpu = start_run(cfg)
    pcfg = cfg["peft"]

    tokenizer = load_tokenizer(cfg)

    train_ds, eval_ds = load_method_rows(
        to_preference, cfg, tokenizer, seed, method="reward", what="reward modelling", desc="preference rows",
        needs="It needs chosen/rejected (and optionally prompt) columns")
    layout = "explicit prompt" if "prompt" in train_ds.column_names else "implicit prompt (shared prefix of chosen/rejected)"
    emit("status", message=f"{len(train_ds)} preference pairs, {layout}")

    emit("status", message="loading model")
    model = load_scorer(cfg, precision, on_gpu, tokenizer.pad_token_id)
    peft_config = lora_config(pcfg, task_type="SEQ_CLS")
    reward_args = RewardConfig(**trainer_args(cfg, out_dir, precision, on_gpu, eval_ds is not None, seed),
                               max_length=int(cfg["max_length"]))
    trainer = RewardTrainer(model=model, args=reward_args, train_dataset=train_ds, eval_dataset=eval_ds,
                            processing_class=tokenizer, peft_config=peft_config, callbacks=[metrics_callback(METRICS)])

    result: dict = {"base_model": cfg["model"], "method": METHOD, "peft": pcfg["kind"], "precision": precision,
                    "device": "cuda" if on_gpu else "cpu", "prompt_layout": layout,
                    "train_rows": len(train_ds), "eval_rows": len(eval_ds) if eval_ds is not None else 0}
    note_dropped_rows(trainer, len(train_ds), result, cfg["max_length"])
    return train_and_finish(trainer, tokenizer, peft_config, cfg, out_dir, result, t_start, evaluate=evaluate_into,
                            has_eval=eval_ds is not None, write_card=write_model_card, answer_prompts=False)


if __name__ == "__main__":
    raise SystemExit(main())
