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
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _common.py travels next to this script
from _common import (  # noqa: E402
    EVENT_PREFIX, KNOWN_TOP_KEYS,  # noqa: F401  (part of every template's surface)
    before_after, choose_precision, config_from_args, emit, end_of_turn_ids, fail, load_policy, load_splits,
    load_tokenizer, lora_config, maybe_relaunch_distributed, metric_fields, progress_callback, sample_answers,
    save_and_finish, seed_everything, norm_messages, to_preference, train_into, trainer_args, tuneforge_version,
)
from _common import write_model_card as write_card  # noqa: E402

METHOD = "kto"
# TRL log key -> progress/eval event field
METRICS = {"rewards/margins": "reward_margin", "kl": "kl"}
TRUE_LABELS = {"true", "1", "1.0", "yes", "y", "good", "desirable", "positive", "pos", "chosen", "accepted", "up"}
FALSE_LABELS = {"false", "0", "0.0", "no", "n", "bad", "undesirable", "negative", "neg", "rejected", "down"}


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


def progress_events():
    return progress_callback(step_fields=lambda logs: metric_fields(logs, METRICS),
                             eval_fields=lambda logs: {"eval_loss": logs["eval_loss"], **metric_fields(logs, METRICS, "eval_")})


# ---- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    cfg = config_from_args(argv, __doc__)
    if int(cfg["train"]["per_device_batch_size"]) < 2:  # checked before the slow imports
        fail("KTO needs per_device_batch_size >= 2 (its KL estimate pairs each row with another in the batch); "
             "raise it, and lower gradient_accumulation_steps to keep the effective batch")
    maybe_relaunch_distributed(cfg, argv, __file__)

    t_start = time.time()
    emit("status", message="loading libraries")
    import torch
    from trl import KTOConfig, KTOTrainer

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
        train_ds = train_raw.map(to_unpaired, fn_kwargs=fn_kwargs, remove_columns=train_raw.column_names, desc="KTO rows")
        eval_ds = None
        if eval_raw is not None:
            eval_ds = eval_raw.map(to_unpaired, fn_kwargs=fn_kwargs, remove_columns=eval_raw.column_names, desc="KTO rows")
    except KeyError as exc:
        fail(f"dataset rows do not fit KTO: {exc.args[0]}. KTO needs prompt/completion/label columns (or chosen/rejected "
             "pairs); run `tuneforge validate --method kto` on the data and use its column_map.")
    if len(train_ds) == 0:
        fail("no training rows; run `tuneforge validate --method kto` on the data")
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
                         processing_class=tokenizer, peft_config=peft_config, callbacks=[progress_events()])

    result: dict = {"base_model": cfg["model"], "method": METHOD, "peft": pcfg["kind"], "precision": precision,
                    "device": "cuda" if on_gpu else "cpu", "beta": beta, "data_layout": layout,
                    "desirable_rows": n_good, "undesirable_rows": n_bad, "desirable_weight": w_good, "undesirable_weight": w_bad,
                    "reference_model": "base with adapter disabled" if peft_config is not None else "frozen copy of the base",
                    "train_rows": len(train_ds), "eval_rows": len(eval_ds) if eval_ds is not None else 0}
    dropped = n_good + n_bad - len(trainer.train_dataset)  # TRL drops rows that do not fit max_length
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
