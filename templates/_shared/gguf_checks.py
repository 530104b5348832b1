"""Whether a GGUF file passes verification: the prompts, thresholds and verdict of every GGUF export.

tuneforge's local export (tuneforge/gguf/export.py) and the cloud job (templates/gguf_export.py) both
summarise llama.cpp's verify output with `summarise`, so a file passes or fails by the same rules
wherever it was made. Standard library only: this module ships next to the job script.

The gate: every file answers the eval prompts greedily (a training job's RunConfig.eval_prompts, topped
up with the built-in PROMPTS to at least MIN_PROMPTS; else PROMPTS), and so does the Hugging Face model
with transformers. On one prompt the two **agree** when their greedy continuations are identical token
for token over the first AGREE_TOKENS tokens (= MAX_NEW_TOKENS, the whole continuation generated; the
end-of-turn token ends an answer, so an answer that stops must stop at the same place). A file passes
the gate when it agrees on at least MIN_AGREEMENT[quant] of the prompts (a share, 0..1; callers may
override per type). When transformers could not run the model (too large for the memory there),
quantized files are compared with the f16 file's answers instead, and `agreement_with` says so.
Top-1 next-token agreement (llama.cpp's most likely next token = transformers', over every prompt
position) is reported beside it.
"""

from __future__ import annotations

from typing import Any

#: the built-in chat prompts every file is checked on when the export has no eval prompts of its own
#: (a training job's RunConfig.eval_prompts are used instead): 24 short, generic ones, so one prompt is
#: ~4% of the agreement figure and verification stays cheap
PROMPTS = [
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "List three prime numbers.",
    "How do I boil an egg?",
    "What is 12 times 7?",
    "Translate 'good morning' into Spanish.",
    "Give me a synonym for 'happy'.",
    "Why is the sky blue?",
    "Write a haiku about autumn.",
    "What does a CPU do?",
    "Name the largest planet in the solar system.",
    "Write a Python function that adds two numbers.",
    "What is the boiling point of water in Celsius?",
    "Suggest a name for a pet cat.",
    "Explain what a noun is in one sentence.",
    "Who wrote Romeo and Juliet?",
    "How many days are in a leap year?",
    "Give one tip for sleeping better.",
    "What is photosynthesis?",
    "Convert 5 kilometers to meters.",
    "Write a short greeting for a birthday card.",
    "What is the opposite of 'cold'?",
    "Name three colors of the rainbow.",
    "What is the square root of 81?",
]
#: fewer prompts than this makes a coarse figure (one prompt = more than 5%): a job's eval prompts are topped up
MIN_PROMPTS = 20
#: greedy tokens generated per prompt, by transformers and by llama.cpp
MAX_NEW_TOKENS = 16
#: two greedy answers agree when these first tokens are identical (the whole continuation)
AGREE_TOKENS = MAX_NEW_TOKENS
#: the gate: share of prompts whose greedy answer must agree with the model's, per file type. The issue's
#: figures for f16/bf16 (95%), q8_0 (90%), q5_k_m and q4_k_m (80%); the others by bits per weight: f32 like
#: f16, q6_k 85%, the other 5-bit types 80%, the other 4-bit types 75%, 3-bit 60%, q2_k 50%.
MIN_AGREEMENT = {
    "f32": 0.95, "f16": 0.95, "bf16": 0.95,
    "q8_0": 0.90, "q6_k": 0.85,
    "q5_k_m": 0.80, "q5_k_s": 0.80, "q5_1": 0.80, "q5_0": 0.80, "q4_k_m": 0.80,
    "q4_k_s": 0.75, "q4_1": 0.75, "q4_0": 0.75,
    "q3_k_l": 0.60, "q3_k_m": 0.60, "q3_k_s": 0.60, "q2_k": 0.50,
}
#: a type missing from the table (none today) gets this
DEFAULT_MIN_AGREEMENT = 0.75
#: max |logit difference| against transformers for unquantized files (f16 on SmolLM2: ~0.04)
LOGIT_TOLERANCE = {"f32": 0.05, "f16": 0.25, "bf16": 1.0}
#: the tolerance is this many times larger when the reference logits were not computed in float32
REDUCED_REFERENCE_FACTOR = 4
#: unquantized files must pick transformers' most likely next token at this share of positions at least
MIN_TOP1_AGREEMENT = 0.9
#: disagreeing answers shown in a report, at most
SHOWN_DISAGREEMENTS = 3


def eval_prompts(own: list[str] | None) -> tuple[list[str], str]:
    """The prompts a file is checked on and where they come from: `own` (a job's eval prompts), topped up with
    the built-in PROMPTS to MIN_PROMPTS when shorter; the built-in ones when there are none."""
    own = [p for p in (own or []) if p.strip()]
    if not own:
        return list(PROMPTS), "built-in"
    if len(own) >= MIN_PROMPTS:
        return own, "job eval_prompts"
    extra = [p for p in PROMPTS if p not in own][:MIN_PROMPTS - len(own)]
    return own + extra, f"job eval_prompts ({len(own)}) + built-in ({len(extra)})"


def min_agreement_for(quant: str, overrides: dict[str, float] | None = None) -> float:
    """The gate's threshold for this file type: the override, else MIN_AGREEMENT."""
    if overrides and quant in overrides:
        return float(overrides[quant])
    return MIN_AGREEMENT.get(quant, DEFAULT_MIN_AGREEMENT)


def answers_agree(answer: list[int], reference: list[int]) -> bool:
    """The definition of agreement on one prompt: the same first AGREE_TOKENS greedy tokens (stops included)."""
    return list(answer[:AGREE_TOKENS]) == list(reference[:AGREE_TOKENS])


def agreement(items: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any] | None:
    """Agreement of a file's greedy answers with transformers' (else the f16 file's), or None with neither."""
    refs = meta["items"]
    if all(r.get("continuation") is not None for r in refs):
        against, wanted = "transformers", [r["continuation"] for r in refs]
    elif all("f16_continuation" in it for it in items):
        against, wanted = "f16", [it["f16_continuation"] for it in items]
    else:
        return None
    agree = [answers_agree(it["continuation"], w) for it, w in zip(items, wanted)]
    shown = [{"prompt": r["prompt"], "answer": it["answer"], f"{against}_answer": (r.get("answer") if against == "transformers"
                                                                                     else it.get("f16_answer"))}
             for it, r, ok in zip(items, refs, agree) if not ok][:SHOWN_DISAGREEMENTS]
    return {"agreement": round(sum(agree) / len(agree), 4), "agreeing_prompts": sum(agree), "agreement_with": against,
            "disagreements": shown}


def summarise(data: dict[str, Any], meta: dict[str, Any], *, quant: str, converted: bool, seconds: float,
              tolerance: dict[str, float] | None = None, min_agreement: dict[str, float] | None = None,
              prompt_source: str | None = None) -> dict[str, Any]:
    """The figures a report shows for one file, and whether it passed (`passed`, and `failed_because` when not).

    `data` is llama_worker.py's verify output for the file, `meta` the reference's JSON side file
    (hf_worker.py), `quant` the quant type's name; `converted` files (written by the converter, not the
    quantizer) are compared with transformers' logits within `tolerance` (default LOGIT_TOLERANCE).
    Every file must pass the agreement gate: `min_agreement` overrides MIN_AGREEMENT per type.
    """
    items = data["items"]
    n = len(items)
    generated = sum(len(it["continuation"]) for it in items)
    has_logits = all("max_abs_logit_diff" in it for it in items)
    checks: dict[str, Any] = {
        "loaded": True,
        "load_seconds": data["load_seconds"],
        "prompts": n,
        "prompt_source": prompt_source or "built-in",
        "tokenizer_match": sum(it["tokenizer_match"] for it in items) / n,
        "finite_logits": all(it["finite"] for it in items),
        "generated_tokens": generated,
        "chat_template_in_gguf": data["chat_template_in_gguf"],
        "reference_dtype": meta.get("dtype"),
        "sample": {"prompt": meta["items"][0]["prompt"], "answer": items[0]["answer"],
                   "transformers_answer": meta["items"][0]["answer"]},
        "verify_seconds": round(seconds, 2),
    }
    if has_logits:
        positions = sum(it["positions"] for it in items)
        checks["max_abs_logit_diff"] = round(max(it["max_abs_logit_diff"] for it in items), 5)
        checks["mean_abs_logit_diff"] = round(sum(it["mean_abs_logit_diff"] * it["positions"] for it in items) / positions, 5)
        checks["top1_agreement"] = round(sum(it["top1_agree"] for it in items) / positions, 4)
        checks["greedy_match_transformers"] = sum(it["greedy_match_transformers"] for it in items) / n
    if "greedy_match_f16" in items[0]:
        checks["greedy_match_f16"] = sum(it["greedy_match_f16"] for it in items) / n
    gate = agreement(items, meta)
    threshold = min_agreement_for(quant, min_agreement)
    if gate is not None:
        checks.update(gate, min_agreement=threshold)
    failed: list[str] = []
    if not checks["finite_logits"]:
        failed.append("non-finite logits (NaN or inf)")
    if converted:
        if checks["tokenizer_match"] < 1.0:
            failed.append("llama.cpp tokenizes the chat prompts differently from transformers")
        if has_logits:
            tol = (tolerance or LOGIT_TOLERANCE)[quant] * (REDUCED_REFERENCE_FACTOR if meta.get("dtype") != "float32" else 1)
            checks["tolerance"] = tol
            if checks["max_abs_logit_diff"] > tol:
                failed.append(f"max |logit diff| {checks['max_abs_logit_diff']:.4f} > {tol}")
            if checks["top1_agreement"] < MIN_TOP1_AGREEMENT:
                failed.append(f"top-1 agreement {checks['top1_agreement']:.1%} < {MIN_TOP1_AGREEMENT:.0%}")
    if gate is not None and gate["agreement"] < threshold:
        failed.append(f"greedy answers agree with {gate['agreement_with']} on {gate['agreeing_prompts']}/{n} prompts "
                      f"({gate['agreement']:.1%}), under the {threshold:.0%} required for {quant}")
    if generated == 0:
        failed.append("generated no token for any prompt")
    checks["passed"] = not failed
    if failed:
        checks["failed_because"] = "; ".join(failed)
    return checks
