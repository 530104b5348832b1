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
"""Kahneman-Tversky optimisation (KTO) with TRL + PEFT, driven by a tuneforge run config.

Usage:
    python kto.py --config run.json        (or: uv run kto.py --config run.json)

The config (JSON or YAML) is tuneforge's RunConfig: model, dataset (+ column_map), peft, train,
method_args.beta, max_length, ... This script is static: user values only ever arrive through that file.
It never reads secrets from the config; a Hub token, when pushing, comes from the environment (HF_TOKEN).

What it does:
- loads unpaired rows prompt/completion/label (label: true/false, 1/0, yes/no, good/bad) or preference
  pairs (TRL splits each pair into one desirable and one undesirable row), applies column_map first;
  string rows are rendered with the model's chat template when it has one;
- weighs desirable/undesirable losses so that their ratio stays in the paper's [1, 4/3] band;
- trains with TRL's KTOTrainer; with LoRA the reference model is the base with the adapter disabled
  (no second copy in memory); beta comes from method_args.beta;
- prints one structured event per logging step: `##tuneforge-event {"type": "progress", ...}`;
- writes result.json (eval loss and reward margin before/after, train loss, runtime, tokens, peak
  memory, samples), the adapter (or full model), the merged model on request, and a model card.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # its helpers travel next to it (jobs/workspace.py)
from _shared.events import EVENT_PREFIX  # noqa: E402, F401  (part of every template's surface)
from _shared.roles import FALSE_LABELS, TRUE_LABELS  # noqa: E402
from _events import emit, fail  # noqa: E402
from _config import KNOWN_TOP_KEYS  # noqa: E402, F401  (part of every template's surface)
from _launch import begin, start_run  # noqa: E402
from _data import load_method_rows, norm_messages, to_preference  # noqa: E402
from _model import end_of_turn_ids, load_policy, load_tokenizer, lora_config  # noqa: E402
from _trainer import metrics_callback, trainer_args  # noqa: E402
from _finish import before_after, note_dropped_rows, train_and_finish  # noqa: E402
from _finish import write_model_card as write_card  # noqa: E402

METHOD = "kto"
# TRL log key -> progress/eval event field
METRICS = {"rewards/margins": "reward_margin", "kl": "kl"}


# ---- data -----------------------------------------------------------------------------------------
def to_label(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_LABELS:
        return True
    if text in FALSE_LABELS:
        return False
    raise KeyError(f"label {value!r} is neither true nor false (use true/false, 1/0, yes/no or good/bad)")


def to_unpaired(row: dict, chat: bool, system_prompt: str | None) -> dict:
    """prompt/completion/label rows for KTO; preference rows pass through to_preference (TRL unpairs them)."""
    if "chosen" in row or "rejected" in row:
        return to_preference(row, chat, system_prompt)
    missing = [k for k in ("prompt", "completion", "label") if row.get(k) is None or row.get(k) == ""]
    if missing:
        raise KeyError(f"a row lacks {missing} (columns: {sorted(row)})")
    prompt = norm_messages(row["prompt"]) if isinstance(row["prompt"], list) else str(row["prompt"])
    completion = norm_messages(row["completion"]) if isinstance(row["completion"], list) else str(row["completion"])
    if chat or isinstance(prompt, list) or isinstance(completion, list):
        prompt = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        completion = completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
        if system_prompt and not any(m["role"] == "system" for m in prompt):
            prompt = [{"role": "system", "content": system_prompt}] + prompt
    return {"prompt": prompt, "completion": completion, "label": to_label(row["label"])}


def balance_weights(n_good: int, n_bad: int) -> tuple[float, float]:
    """(desirable_weight, undesirable_weight) keeping w_d*n_good / (w_u*n_bad) within [1, 4/3] (KTO paper)."""
    if not n_good or not n_bad:
        return 1.0, 1.0
    ratio = n_good / n_bad
    if ratio < 1:
        return round(1 / ratio, 4), 1.0
    if ratio > 4 / 3:
        return 1.0, round(ratio * 3 / 4, 4)
    return 1.0, 1.0


# ---- card, evaluation -------------------------------------------------------------------------------
def write_model_card(path: Path, cfg: dict, result: dict) -> None:
    pcfg = cfg["peft"]
    write_card(path, cfg, result, tag=METHOD,
               intro=f"Fine-tuned from `{cfg['model']}` with Kahneman-Tversky optimisation (TRL KTOTrainer) by tuneforge {result.get('tuneforge_version') or ''}.",
               method_rows=[f"| method | kto (beta={result.get('beta')}), {pcfg['kind']} (r={pcfg['r']}, alpha={pcfg['alpha']}) |"],
               metric_rows=[before_after("eval loss", result, "eval_loss"),
                            f"| desirable / undesirable rows (weights) | {result.get('desirable_rows')} / {result.get('undesirable_rows')} "
                            f"({result.get('desirable_weight')} / {result.get('undesirable_weight')}) |",
                            before_after("eval reward margin", result, "eval_reward_margin")])


def evaluate_into(trainer, result: dict, when: str) -> None:
    emit("status", message=f"evaluating ({when})")
    metrics = trainer.evaluate()
    result[f"eval_loss_{when}"] = metrics.get("eval_loss")
    result[f"eval_reward_margin_{when}"] = metrics.get("eval_rewards/margins")
    result[f"eval_kl_{when}"] = metrics.get("eval_kl")


def check_kto_config(cfg: dict) -> None:
    if int(cfg["train"]["per_device_batch_size"]) < 2:  # checked before the slow imports
        fail("KTO needs per_device_batch_size >= 2 (its KL estimate pairs each row with another in the batch); "
             "raise it, and lower gradient_accumulation_steps to keep the effective batch")


# ---- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    cfg, t_start = begin(argv, __doc__, __file__, check=check_kto_config)
    from trl import KTOConfig, KTOTrainer

    seed, out_dir, precision, on_gpu = start_run(cfg)
    pcfg = cfg["peft"]
    margs = cfg.get("method_args") or {}
    beta = float(margs.get("beta", 0.1))

    tokenizer = load_tokenizer(cfg)
    end_ids = end_of_turn_ids(tokenizer)

    train_ds, eval_ds = load_method_rows(
        to_unpaired, cfg, tokenizer, seed, method="kto", what="KTO", desc="KTO rows",
        needs="KTO needs prompt/completion/label columns (or chosen/rejected pairs)")
    if "label" in train_ds.column_names:
        layout = "unpaired (prompt/completion/label)"
        n_good = int(sum(train_ds["label"]))
        n_bad = len(train_ds) - n_good
    else:
        layout = "preference pairs, unpaired by TRL"
        n_good = n_bad = len(train_ds)
    if not n_good or not n_bad:
        emit("status", message=f"warning: only {'desirable' if n_good else 'undesirable'} rows; KTO learns best from both")
    w_good, w_bad = balance_weights(n_good, n_bad)
    emit("status", message=f"{n_good} desirable / {n_bad} undesirable rows ({layout}); weights {w_good} / {w_bad}")

    emit("status", message="loading model")
    model = load_policy(cfg, precision, on_gpu, end_ids)
    peft_config = lora_config(pcfg)
    kto_args = KTOConfig(**trainer_args(cfg, out_dir, precision, on_gpu, eval_ds is not None, seed),
                         beta=beta, max_length=int(cfg["max_length"]), desirable_weight=w_good, undesirable_weight=w_bad)
    # ref_model=None: with LoRA, TRL scores the reference by disabling the adapter (no second model copy);
    # a full fine-tune gets a frozen copy of the base.
    trainer = KTOTrainer(model=model, ref_model=None, args=kto_args, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, peft_config=peft_config, callbacks=[metrics_callback(METRICS)])

    result: dict = {"base_model": cfg["model"], "method": METHOD, "peft": pcfg["kind"], "precision": precision,
                    "device": "cuda" if on_gpu else "cpu", "beta": beta, "data_layout": layout,
                    "desirable_rows": n_good, "undesirable_rows": n_bad, "desirable_weight": w_good, "undesirable_weight": w_bad,
                    "reference_model": "base with adapter disabled" if peft_config is not None else "frozen copy of the base",
                    "train_rows": len(train_ds), "eval_rows": len(eval_ds) if eval_ds is not None else 0}
    note_dropped_rows(trainer, n_good + n_bad, result, cfg["max_length"])
    return train_and_finish(trainer, tokenizer, peft_config, cfg, out_dir, result, t_start, evaluate=evaluate_into,
                            has_eval=eval_ds is not None, write_card=write_model_card)


if __name__ == "__main__":
    raise SystemExit(main())
