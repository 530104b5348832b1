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
"""Group relative policy optimisation (GRPO) with TRL + PEFT and real reward functions.

Usage:
    python grpo.py --config run.json        (or: uv run grpo.py --config run.json)

The config (JSON or YAML) is tuneforge's RunConfig: model, dataset (+ column_map), peft, train,
method_args (num_generations, max_completion_length, reward_functions), ... This script is static: user
values only ever arrive through that file. It never reads secrets from the config; a Hub token, when
pushing, comes from the environment (HF_TOKEN).

What it does:
- loads prompt-only rows (local jsonl/json/csv/parquet file or folder, or a Hub dataset), applies
  column_map first; string prompts are rendered with the model's chat template when it has one; the
  other columns (answer, format_regex, target_length...) reach the reward functions as keyword lists;
- scores each group of num_generations sampled completions with the built-in reward functions named
  in method_args.reward_functions (see REWARDS: format, length, accuracy, exact_match) and trains with
  TRL's GRPOTrainer; an unknown name stops the run at once, listing the known ones;
- prints one structured event per logging step: `##tuneforge-event {"type": "progress", ...}`;
- writes result.json (reward_before / reward_after: the mean reward on the held-out prompts; per-function
  rewards, train loss, runtime, tokens, peak memory, samples), the adapter (or full model), the merged
  model on request, and a model card.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # its helpers travel next to it (jobs/workspace.py)
from _shared.events import EVENT_PREFIX  # noqa: E402, F401  (part of every template's surface)
from _shared.rewards import REFERENCE_COLUMNS, unknown_rewards  # noqa: E402
from _events import emit, fail  # noqa: E402
from _shared.reward_functions import (  # noqa: E402, F401  (the reward functions, shared with the eval block)
    FORMAT_COLUMNS, NUMBER, REWARDS, THINK_FORMAT, accuracy_reward, completion_text, exact_match_reward, final_answer,
    first_column, format_reward, length_reward, normalise, reference_text, same_answer, to_number)
from _config import KNOWN_TOP_KEYS  # noqa: E402, F401  (part of every template's surface)
from _launch import begin, start_run  # noqa: E402
from _data import load_method_rows, norm_messages  # noqa: E402
from _model import end_of_turn_ids, load_policy, load_tokenizer, lora_config  # noqa: E402
from _trainer import progress_callback, trainer_args  # noqa: E402
from _finish import before_after, train_and_finish  # noqa: E402
from _finish import write_model_card as write_card  # noqa: E402

METHOD = "grpo"
# TRL log key -> progress/eval event field (per-function means are added as reward_<name>)
METRICS = {"reward": "reward", "reward_std": "reward_std", "completions/mean_length": "completion_length"}
RESERVED_COLUMNS = {"prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric", "environments"}
EVAL_ROWS_MAX = 64  # eval generates num_generations completions per prompt: keep it bounded


# ---- data -----------------------------------------------------------------------------------------
def to_prompt(row: dict, chat: bool, system_prompt: str | None) -> dict:
    """The prompt as TRL's GRPOTrainer reads it; the row's other columns stay for the reward functions."""
    prompt = row.get("prompt")
    if prompt is None or prompt == "" or prompt == []:
        raise KeyError(f"a row has no 'prompt' (columns: {sorted(row)})")
    if isinstance(prompt, list):
        prompt = norm_messages(prompt)
    elif chat:
        prompt = [{"role": "user", "content": str(prompt)}]
    if isinstance(prompt, list) and system_prompt and not any(m["role"] == "system" for m in prompt):
        prompt = [{"role": "system", "content": system_prompt}] + prompt
    return {"prompt": prompt}




def check_reward_names(names: list[str]) -> None:
    unknown = unknown_rewards(names)
    if unknown or not names:
        what = f"unknown reward function(s) {unknown}" if unknown else "no reward functions named"
        fail(f"{what} in method_args.reward_functions; the built-in ones are: {', '.join(sorted(REWARDS))}")


def check_grpo_config(cfg: dict) -> None:
    """What can be checked from the config alone: the reward names and whole groups of completions per batch."""
    margs, tcfg = cfg.get("method_args") or {}, cfg.get("train") or {}
    check_reward_names(list(margs.get("reward_functions") or []))
    num_gen = int(margs.get("num_generations", 4))
    batch = int(tcfg.get("per_device_batch_size", 4)) * int(tcfg.get("gradient_accumulation_steps", 1))
    world = int((cfg.get("launch") or {}).get("gpus") or 1)
    if (batch * world) % num_gen:
        fail(f"GRPO scores groups of num_generations={num_gen} completions per prompt, so per_device_batch_size x "
             f"gradient_accumulation_steps{' x gpus' if world > 1 else ''} ({batch * world}) must be a multiple "
             f"of {num_gen}; e.g. set per_device_batch_size to {num_gen}")


def build_rewards(names: list[str], dataset, max_completion_length: int) -> list:
    """The reward callables for these names, after checking the data holds what they read."""
    check_reward_names(names)
    columns = set(dataset.column_names)
    if {"accuracy", "exact_match"} & set(names) and not columns & set(REFERENCE_COLUMNS):
        fail(f"reward {'accuracy' if 'accuracy' in names else 'exact_match'!r} compares answers with a reference, but the "
             f"data has none of the columns {list(REFERENCE_COLUMNS)} (it has {sorted(columns)}); add one, or map yours "
             "with column_map, e.g. {\"answer\": \"your_column\"}")
    clash = sorted(columns & RESERVED_COLUMNS)
    if clash:
        fail(f"columns {clash} collide with the reward functions' own arguments; rename them with column_map")
    for col in [c for c in FORMAT_COLUMNS if c in columns][:1]:
        for i, spec in enumerate(dataset[col]):
            if spec and str(spec).strip().lower() != "json":
                try:
                    re.compile(spec)
                except re.error as exc:
                    fail(f"row {i + 1}: {col} {spec!r} is not a valid regular expression ({exc})")
    funcs = []
    for name in dict.fromkeys(names):
        func = REWARDS[name]
        if name == "length":
            func = functools.partial(length_reward, default_target=max(1, max_completion_length // 2))
        funcs.append(func)
    return funcs


# ---- progress, card, evaluation ---------------------------------------------------------------------
def reward_fields(logs: dict, prefix: str) -> dict:
    """reward, reward_std, completion_length and reward_<function> (its mean) from TRL's log keys."""
    fields = {field: logs.get(prefix + key) for key, field in METRICS.items()}
    for key, value in logs.items():
        parts = key[len(prefix):].split("/") if key.startswith(prefix + "rewards/") else []
        if len(parts) == 3 and parts[2] == "mean":
            fields["reward_" + parts[1].removesuffix("_reward")] = value
    return fields


def progress_events():
    return progress_callback(step_fields=lambda logs: reward_fields(logs, ""),
                             eval_fields=lambda logs: reward_fields(logs, "eval_"), eval_key="eval_reward")


def write_model_card(path: Path, cfg: dict, result: dict) -> None:
    pcfg = cfg["peft"]
    write_card(path, cfg, result, tag=METHOD,
               intro=f"Fine-tuned from `{cfg['model']}` with group relative policy optimisation (TRL GRPOTrainer) "
                     f"by tuneforge {result.get('tuneforge_version') or ''}.",
               method_rows=[f"| method | grpo, {pcfg['kind']} (r={pcfg['r']}, alpha={pcfg['alpha']}) |",
                            f"| rewards | {', '.join(result.get('reward_functions') or [])} ({result.get('num_generations')} completions "
                            f"per prompt, up to {result.get('max_completion_length')} tokens) |"],
               metric_rows=[before_after("mean eval reward", result, "reward")])


def evaluate_into(trainer, result: dict, when: str) -> None:
    emit("status", message=f"evaluating ({when})")
    report_to = list(trainer.args.report_to or [])
    # TRL's GRPO profiler logs straight to Trackio, which has no open run outside train(): keep it out here
    trainer.args.report_to = [r for r in report_to if r != "trackio"]
    try:
        fields = reward_fields(trainer.evaluate(), "eval_")
    finally:
        trainer.args.report_to = report_to
    result[f"reward_{when}"] = fields.pop("reward")  # mean reward on the held-out prompts
    result[f"rewards_{when}"] = {k.removeprefix("reward_"): v for k, v in fields.items()
                                 if k.startswith("reward_") and k != "reward_std"}


# ---- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    cfg, t_start = begin(argv, __doc__, __file__, check=check_grpo_config)  # a typo or a bad batch size fails at once
    from trl import GRPOConfig, GRPOTrainer

    seed, out_dir, precision, on_gpu = start_run(cfg)
    tcfg, pcfg = cfg["train"], cfg["peft"]
    margs = cfg.get("method_args") or {}
    reward_names = list(margs.get("reward_functions") or [])
    num_gen = int(margs.get("num_generations", 4))
    max_completion = int(margs.get("max_completion_length", 128))

    tokenizer = load_tokenizer(cfg)
    end_ids = end_of_turn_ids(tokenizer)

    # the other columns stay: the reward functions read them
    train_ds, eval_ds = load_method_rows(
        to_prompt, cfg, tokenizer, seed, method="grpo", what="GRPO", desc="prompts", noun="prompts",
        remove_columns=False, needs="GRPO needs a prompt column (other columns feed the rewards)")
    reward_funcs = build_rewards(reward_names, train_ds, max_completion)
    if eval_ds is not None and len(eval_ds) > EVAL_ROWS_MAX:
        eval_ds = eval_ds.select(range(EVAL_ROWS_MAX))
    batch = int(tcfg["per_device_batch_size"])
    emit("status", message=f"{len(train_ds)} prompts; rewards: {', '.join(reward_names)}; {num_gen} completions each")

    emit("status", message="loading model")
    model = load_policy(cfg, precision, on_gpu, end_ids)
    peft_config = lora_config(pcfg)
    grpo_args = GRPOConfig(**{
        **trainer_args(cfg, out_dir, precision, on_gpu, eval_ds is not None, seed),
        "per_device_eval_batch_size": num_gen * max(1, -(-batch // num_gen)),  # whole groups of completions
        "include_num_input_tokens_seen": "no",  # GRPOTrainer counts prompt + completion tokens itself
        "num_generations": num_gen,
        "max_completion_length": max_completion,
        "beta": 0.0,  # no KL term, no reference model (TRL's default, as in DAPO / Dr. GRPO)
        "log_completions": False,
    })
    trainer = GRPOTrainer(model=model, reward_funcs=reward_funcs, args=grpo_args, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, peft_config=peft_config, callbacks=[progress_events()])

    result: dict = {"base_model": cfg["model"], "method": METHOD, "peft": pcfg["kind"], "precision": precision,
                    "device": "cuda" if on_gpu else "cpu", "reward_functions": list(dict.fromkeys(reward_names)),
                    "num_generations": num_gen, "max_completion_length": max_completion, "kl_beta": 0.0,
                    "train_rows": len(train_ds), "eval_rows": len(eval_ds) if eval_ds is not None else 0}
    return train_and_finish(trainer, tokenizer, peft_config, cfg, out_dir, result, t_start, evaluate=evaluate_into,
                            has_eval=eval_ds is not None, write_card=write_model_card)


if __name__ == "__main__":
    raise SystemExit(main())
