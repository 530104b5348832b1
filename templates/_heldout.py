"""The eval block's model side: held-out rows, greedy answers, perplexity and GRPO rewards, scored
with _shared/metrics.py. Used by every training template (through _finish.py) and by eval.py."""

from __future__ import annotations

import math
from typing import Any

from _shared import metrics as M

DEFAULT_METRICS = ("exact_match", "rouge_l")


def load_rows(block: dict, dataset_cfg: dict | None = None) -> tuple[list[dict], str]:
    """The held-out rows of an eval block: its `path` (a file, or a Hub dataset with `split`), else
    the run's dataset at `split`. Returns (rows, where they came from)."""
    path = block.get("path") or (dataset_cfg or {}).get("path")
    split = block.get("split") or "test"
    if not path:
        raise ValueError("the eval block names no path and the run has no dataset")
    rows: list[dict]
    try:
        rows, source = M.read_rows(str(path)), str(path)
    except ValueError:
        from datasets import load_dataset

        if str(path).endswith(".parquet"):
            rows, source = list(load_dataset("parquet", data_files=str(path), split="train")), str(path)
        else:
            rows, source = list(load_dataset(str(path), split=split)), f"{path} [{split}]"
    limit = block.get("limit")
    return (rows[: int(limit)] if limit else rows), source


def perplexity_rows(model, tokenizer, prompts: list[str], references: list[Any], system_prompt: str | None
                    ) -> tuple[list[float | None], list[int]]:
    """Summed NLL and token count of each reference given its chat-formatted prompt."""
    import torch

    nlls: list[float | None] = []
    counts: list[int] = []
    model.eval()
    for prompt, ref in zip(prompts, references):
        if ref is None or not str(ref):
            nlls.append(None)
            counts.append(0)
            continue
        head = tokenizer.apply_chat_template(
            ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [{"role": "user", "content": prompt}],
            tokenize=False, add_generation_prompt=True)
        p_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
        r_ids = tokenizer(str(ref), add_special_tokens=False)["input_ids"]
        if not r_ids:
            nlls.append(None)
            counts.append(0)
            continue
        ids = torch.tensor([p_ids + r_ids], device=model.device)
        labels = ids.clone()
        labels[0, : len(p_ids)] = -100
        with torch.no_grad():
            loss = model(input_ids=ids, labels=labels).loss
        value = float(loss) * len(r_ids)
        nlls.append(value if math.isfinite(value) else None)
        counts.append(len(r_ids))
    return nlls, counts


def reward_scores(names: list[str], answers: list[str], rows: list[dict]) -> dict[str, list]:
    """GRPO's reward functions (templates/grpo.py) on the answers, each row's columns as keyword lists."""
    wanted = [n[len(M.REWARD_PREFIX):] for n in names if n.startswith(M.REWARD_PREFIX)]
    if not wanted:
        return {}
    from _shared.reward_functions import REWARDS

    columns = {k for r in rows for k in r}
    kwargs = {c: [r.get(c) for r in rows] for c in columns if c not in ("completions", "prompts", "completion_ids")}
    return {M.REWARD_PREFIX + n: list(REWARDS[n](answers, **kwargs)) for n in wanted}


def evaluate_model(answer_fn, block: dict, rows: list[dict], *, model=None, tokenizer=None, system_prompt: str | None = None
                   ) -> dict:
    """One model's metrics on the held-out rows: {"scores": {metric: mean}, "answers": [...], "prompts", "references"}.

    `answer_fn(prompts) -> answers` does the greedy decoding (transformers or llama.cpp); perplexity
    needs `model` and `tokenizer` (None for a GGUF file)."""
    specs = list(block.get("metrics") or DEFAULT_METRICS)
    prompts, refs, kept = M.prompts_and_references(rows, block.get("prompt_column"), block.get("reference_column"))
    answers = answer_fn(prompts) if prompts else []
    per_row = M.score_answers(specs, answers, refs)
    per_row.update(reward_scores([M.metric_name(s) for s in specs], answers, kept))
    scores = M.aggregate(per_row)
    if any(M.metric_name(s) == "perplexity" for s in specs):
        scores["perplexity"] = (M.perplexity(*perplexity_rows(model, tokenizer, prompts, refs, system_prompt))
                                if model is not None else None)
    return {"scores": scores, "answers": answers, "prompts": prompts, "references": refs}
