# /// script
# requires-python = ">=3.10"
# dependencies = [
#     "torch>=2.4",
#     "transformers>=5.0",
#     "peft>=0.17",
#     "accelerate>=1.10",
# ]
# ///
"""Preference pairs from a model's own answers, for a DPO stage, driven by a JSON config.

Usage:
    python preferences.py --config preferences.json

The config: model (a model folder or Hub id), prompts (a .jsonl/.json/.csv file), prompt_column,
reference_column (default: the first of answer, solution, reference, ... the row has), samples (answers per
prompt), reward ("exact_match" against the reference, a GRPO reward name: format, length, accuracy, or
"reward_model": the score of reward_model, a folder written by the reward template, adapter or full model),
temperature, max_new_tokens, min_margin, limit, seed, out (a folder). This script is static: user values only
ever arrive through that file; it reads no secrets.

What it does: for each prompt, samples `samples` answers (the chat template when the model has one), scores
each with the reward (templates/_shared/reward_functions.py, the same functions GRPO trains with), and keeps
the best as chosen and the worst as rejected when their margin is above min_margin (ties are dropped: no
preference). Writes OUT/preferences.jsonl ({prompt, chosen, rejected, margin, chosen_reward, rejected_reward})
and OUT/result.json (pairs, prompts, dropped, mean margin), one progress event per prompt.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # its helpers travel next to it (jobs/workspace.py)
from _events import emit, fail  # noqa: E402
from _shared.reward_functions import REWARDS  # noqa: E402
from _shared.rewards import REFERENCE_COLUMNS  # noqa: E402


def read_rows(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, list) else data.get("rows") or data.get("data") or []
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    fail(f"the prompts file {path} is not .jsonl, .json or .csv")
    return []


def prompt_of(row: dict, column: str) -> str | None:
    value = row.get(column)
    if value is None and isinstance(row.get("messages"), list):  # a chat row: its first user turn
        value = next((m.get("content") for m in row["messages"] if m.get("role") == "user"), None)
    return str(value) if value not in (None, "") else None


def reference_of(row: dict, column: str | None) -> str | None:
    if column:
        return row.get(column)
    for name in (*REFERENCE_COLUMNS, "completion", "output", "response"):
        if row.get(name) not in (None, ""):
            return row[name]
    if isinstance(row.get("messages"), list):  # a chat row: its last assistant turn
        return next((m.get("content") for m in reversed(row["messages"]) if m.get("role") == "assistant"), None)
    return None


def scores(reward: str, answers: list[str], reference: str | None) -> list[float]:
    columns = {REFERENCE_COLUMNS[0]: [reference] * len(answers)} if reference is not None else {}
    got = REWARDS[reward](completions=answers, **columns)
    return [float(v) if v is not None else 0.0 for v in got]


REWARD_MODEL = "reward_model"


class RewardModel:
    """A reward model's score of each (prompt, answer) conversation: the reward template's one-score head, loaded
    from its output folder (a LoRA adapter over its base, or a full model), never running the model's own code."""

    def __init__(self, path: str, device: str):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(path)
        if (folder / "adapter_config.json").is_file():
            from peft import AutoPeftModelForSequenceClassification

            self.model = AutoPeftModelForSequenceClassification.from_pretrained(path, num_labels=1)
            base = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))["base_model_name_or_path"]
        else:
            self.model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
            base = path
        has_tokenizer = any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json"))
        self.tokenizer = AutoTokenizer.from_pretrained(path if has_tokenizer or not folder.is_dir() else base)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.to(device).eval()
        self.device = device

    def __call__(self, prompt: str, answers: list[str]) -> list[float]:
        import torch

        if self.tokenizer.chat_template:
            texts = [self.tokenizer.apply_chat_template([{"role": "user", "content": prompt},
                                                         {"role": "assistant", "content": a}], tokenize=False)
                     for a in answers]
        else:
            texts = [f"{prompt}\n{a}" for a in answers]
        side, self.tokenizer.padding_side = self.tokenizer.padding_side, "right"
        try:
            batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        finally:
            self.tokenizer.padding_side = side
        with torch.no_grad():
            return [float(v) for v in self.model(**batch).logits[:, 0]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    cfg = json.loads(Path(parser.parse_args(argv).config).read_text(encoding="utf-8"))
    t_start = time.time()
    if cfg["reward"] == REWARD_MODEL and not cfg.get("reward_model"):
        fail("reward: reward_model needs reward_model (a folder written by the reward template)")
    if cfg["reward"] not in REWARDS and cfg["reward"] != REWARD_MODEL:
        fail(f"unknown reward {cfg['reward']!r}: use one of {', '.join(sorted(REWARDS))} or {REWARD_MODEL}")
    rows = read_rows(Path(cfg["prompts"]))[: cfg.get("limit") or None]
    if not rows:
        fail(f"no prompts in {cfg['prompts']}")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(int(cfg.get("seed", 42)))
    emit("status", message="loading model")
    tokenizer = AutoTokenizer.from_pretrained(cfg["model"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(cfg["model"]).to(device).eval()
    scorer = None
    if cfg["reward"] == REWARD_MODEL:
        emit("status", message=f"loading reward model {cfg['reward_model']}")
        scorer = RewardModel(cfg["reward_model"], device)
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    pairs, dropped, margins = [], 0, []
    emit("status", message=f"sampling {cfg['samples']} answers for {len(rows)} prompts")
    for i, row in enumerate(rows, 1):
        prompt = prompt_of(row, cfg.get("prompt_column") or "prompt")
        if prompt is None:
            dropped += 1
            continue
        if tokenizer.chat_template:
            text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                 add_generation_prompt=True)
        else:
            text = prompt
        inputs = tokenizer(text, return_tensors="pt", add_special_tokens=not tokenizer.chat_template).to(device)
        with torch.no_grad():
            generated = model.generate(**inputs, do_sample=True, temperature=float(cfg["temperature"]),
                                       max_new_tokens=int(cfg["max_new_tokens"]), num_return_sequences=int(cfg["samples"]),
                                       pad_token_id=tokenizer.pad_token_id)
        answers = [tokenizer.decode(g[inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip() for g in generated]
        rewards = (scorer(prompt, answers) if scorer else
                   scores(cfg["reward"], answers, reference_of(row, cfg.get("reference_column"))))
        best = max(range(len(answers)), key=lambda k: rewards[k])
        worst = min(range(len(answers)), key=lambda k: rewards[k])
        margin = rewards[best] - rewards[worst]
        if margin > float(cfg.get("min_margin", 0.0)) and answers[best] != answers[worst]:
            pairs.append({"prompt": prompt, "chosen": answers[best], "rejected": answers[worst], "margin": margin,
                          "chosen_reward": rewards[best], "rejected_reward": rewards[worst]})
            margins.append(margin)
        else:
            dropped += 1
        emit("progress", step=i, total_steps=len(rows), pairs=len(pairs))
    pairs_file = out / "preferences.jsonl"
    pairs_file.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    result = {"pairs": len(pairs), "prompts": len(rows), "dropped": dropped, "reward": cfg["reward"],
              "mean_margin": sum(margins) / len(margins) if margins else None, "pairs_file": str(pairs_file),
              "runtime_seconds": round(time.time() - t_start, 2)}
    (out / "result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    emit("result", **result)
    if not pairs:
        fail("no preference pairs: every prompt's answers scored the same (try more samples or a higher temperature)")
    emit("status", message="done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
