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
"""Direct preference optimisation (DPO) with TRL + PEFT, driven by a tuneforge run config.

Usage:
    python dpo.py --config run.json        (or: uv run dpo.py --config run.json)

The config (JSON or YAML) is tuneforge's RunConfig: model, dataset (+ column_map), peft, train,
method_args.beta, max_length, ... This script is static: user values only ever arrive through that file.
It never reads secrets from the config; a Hub token, when pushing, comes from the environment (HF_TOKEN).

What it does:
- loads preference rows (local jsonl/json/csv/parquet file or folder, or a Hub dataset), applies
  column_map; explicit-prompt rows (prompt/chosen/rejected, strings or message lists) and
  implicit-prompt rows (chosen/rejected full conversations: TRL splits off the shared prefix) both work;
  string rows are rendered with the model's chat template when it has one;
- trains with TRL's DPOTrainer; with LoRA the reference model is the base with the adapter disabled
  (no second copy in memory); beta comes from method_args.beta;
- prints one structured event per logging step: `##tuneforge-event {"type": "progress", ...}`;
- writes result.json (eval loss and reward accuracy before/after, train loss, runtime, tokens, peak
  memory, samples), the adapter (or full model), the merged model on request, and a model card.
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
from _model import end_of_turn_ids, load_policy, load_tokenizer, lora_config  # noqa: E402
from _trainer import metrics_callback, trainer_args  # noqa: E402
from _finish import before_after, note_dropped_rows, train_and_finish  # noqa: E402
from _finish import write_model_card as write_card  # noqa: E402

METHOD = "dpo"
# TRL log key -> progress/eval event field
METRICS = {"rewards/accuracies": "reward_accuracy", "rewards/margins": "reward_margin"}


# ---- card, evaluation -------------------------------------------------------------------------------
def write_model_card(path: Path, cfg: dict, result: dict) -> None:
    pcfg = cfg["peft"]
    write_card(path, cfg, result, tag=METHOD,
               intro=f"Fine-tuned from `{cfg['model']}` with direct preference optimisation (TRL DPOTrainer) by tuneforge {result.get('tuneforge_version') or ''}.",
               method_rows=[f"| method | dpo (beta={result.get('beta')}), {pcfg['kind']} (r={pcfg['r']}, alpha={pcfg['alpha']}) |"],
               metric_rows=[before_after("eval loss", result, "eval_loss"),
                            before_after("eval reward accuracy", result, "eval_reward_accuracy")])


def evaluate_into(trainer, result: dict, when: str) -> None:
    emit("status", message=f"evaluating ({when})")
    metrics = trainer.evaluate()
    result[f"eval_loss_{when}"] = metrics.get("eval_loss")
    result[f"eval_reward_accuracy_{when}"] = metrics.get("eval_rewards/accuracies")
    result[f"eval_reward_margin_{when}"] = metrics.get("eval_rewards/margins")


# ---- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    cfg, t_start = begin(argv, __doc__, __file__)
    from _vision import is_vlm

    if is_vlm(cfg):  # a vision-language model: its processor, images and a frozen vision tower (_vision_train.py)
        from _vision_train import train_dpo_vlm

        return train_dpo_vlm(cfg, t_start, evaluate=evaluate_into, write_card=write_model_card, metrics=METRICS)
    from trl import DPOConfig, DPOTrainer

    seed, out_dir, precision, on_gpu = start_run(cfg)
    pcfg = cfg["peft"]
    margs = cfg.get("method_args") or {}
    beta = float(margs.get("beta", 0.1))

    tokenizer = load_tokenizer(cfg)
    end_ids = end_of_turn_ids(tokenizer)

    train_ds, eval_ds = load_method_rows(
        to_preference, cfg, tokenizer, seed, method="dpo", what="DPO", desc="preference rows",
        needs="DPO needs chosen/rejected (and optionally prompt) columns")
    layout = "explicit prompt" if "prompt" in train_ds.column_names else "implicit prompt (shared prefix of chosen/rejected)"
    emit("status", message=f"{len(train_ds)} preference pairs, {layout}")

    emit("status", message="loading model")
    model = load_policy(cfg, precision, on_gpu, end_ids)
    peft_config = lora_config(pcfg)
    dpo_args = DPOConfig(**trainer_args(cfg, out_dir, precision, on_gpu, eval_ds is not None, seed),
                         beta=beta, max_length=int(cfg["max_length"]))
    # ref_model=None: with LoRA, TRL scores the reference by disabling the adapter (no second model copy);
    # a full fine-tune gets a frozen copy of the base.
    trainer = DPOTrainer(model=model, ref_model=None, args=dpo_args, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, peft_config=peft_config, callbacks=[metrics_callback(METRICS)])

    result: dict = {"base_model": cfg["model"], "method": METHOD, "peft": pcfg["kind"], "precision": precision,
                    "device": "cuda" if on_gpu else "cpu", "beta": beta, "prompt_layout": layout,
                    "reference_model": "base with adapter disabled" if peft_config is not None else "frozen copy of the base",
                    "train_rows": len(train_ds), "eval_rows": len(eval_ds) if eval_ds is not None else 0}
    note_dropped_rows(trainer, len(train_ds), result, cfg["max_length"])
    return train_and_finish(trainer, tokenizer, peft_config, cfg, out_dir, result, t_start, evaluate=evaluate_into,
                            has_eval=eval_ds is not None, write_card=write_model_card)


if __name__ == "__main__":
    raise SystemExit(main())
