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
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _common.py travels next to this script
from _common import (  # noqa: E402
    EVENT_PREFIX, KNOWN_TOP_KEYS,  # noqa: F401  (part of every template's surface)
    before_after, choose_precision, config_from_args, emit, end_of_turn_ids, fail, load_policy, load_splits,
    load_tokenizer, lora_config, maybe_relaunch_distributed, metric_fields, progress_callback, sample_answers,
    save_and_finish, seed_everything, to_preference, train_into, trainer_args, tuneforge_version,
)
from _common import write_model_card as write_card  # noqa: E402

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
    from trl import DPOConfig, DPOTrainer

    seed = seed_everything(cfg)
    out_dir = Path(cfg["output_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    tcfg, pcfg = cfg["train"], cfg["peft"]
    margs = cfg.get("method_args") or {}
    beta = float(margs.get("beta", 0.1))
    precision = choose_precision(tcfg.get("precision", "auto"))
    on_gpu = torch.cuda.is_available()

    tokenizer = load_tokenizer(cfg)
    end_ids = end_of_turn_ids(tokenizer)

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
        fail(f"dataset rows do not fit DPO: {exc.args[0]}. DPO needs chosen/rejected (and optionally prompt) columns; "
             "run `tuneforge validate --method dpo` on the data and use its column_map.")
    if len(train_ds) == 0:
        fail("no training rows; run `tuneforge validate --method dpo` on the data")
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
                         processing_class=tokenizer, peft_config=peft_config, callbacks=[progress_events()])

    result: dict = {"base_model": cfg["model"], "method": METHOD, "peft": pcfg["kind"], "precision": precision,
                    "device": "cuda" if on_gpu else "cpu", "beta": beta, "prompt_layout": layout,
                    "reference_model": "base with adapter disabled" if peft_config is not None else "frozen copy of the base",
                    "train_rows": len(train_ds), "eval_rows": len(eval_ds) if eval_ds is not None else 0}
    dropped = len(train_ds) - len(trainer.train_dataset)  # TRL drops rows that do not fit max_length
    result["rows_dropped_too_long"] = dropped
    if dropped:
        emit("status", message=f"warning: TRL dropped {dropped} training rows too long for max_length={cfg['max_length']}")
    result["tuneforge_version"] = tuneforge_version()
    sample_answers(trainer, tokenizer, cfg, result, "before")
    if eval_ds is not None:
        evaluate_into(trainer, result, "before")

    train_into(trainer, result)

    if eval_ds is not None:
        evaluate_into(trainer, result, "after")
    sample_answers(trainer, tokenizer, cfg, result, "after")
    return save_and_finish(trainer, tokenizer, peft_config, cfg, out_dir, result, t_start, write_model_card)


if __name__ == "__main__":
    raise SystemExit(main())
