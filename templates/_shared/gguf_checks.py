"""Whether a GGUF file passes verification: the prompts, thresholds and verdict of every GGUF export.

tuneforge's local export (tuneforge/gguf/export.py) and the cloud job (templates/gguf_export.py) both
summarise llama.cpp's verify output with `summarise`, so a file passes or fails by the same rules
wherever it was made. Standard library only: this module ships next to the job script.
"""

from __future__ import annotations

from typing import Any

#: chat prompts every file is checked on (short, so verification stays cheap)
PROMPTS = [
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "List three prime numbers.",
    "How do I boil an egg?",
]
#: greedy tokens generated per prompt, by transformers and by llama.cpp
MAX_NEW_TOKENS = 16
#: max |logit difference| against transformers for unquantized files (f16 on SmolLM2: ~0.04)
LOGIT_TOLERANCE = {"f32": 0.05, "f16": 0.25, "bf16": 1.0}
#: the tolerance is this many times larger when the reference logits were not computed in float32
REDUCED_REFERENCE_FACTOR = 4
#: unquantized files must pick transformers' most likely next token at this share of positions at least
MIN_TOP1_AGREEMENT = 0.9


def summarise(data: dict[str, Any], meta: dict[str, Any], *, quant: str, converted: bool, seconds: float,
              tolerance: dict[str, float] | None = None) -> dict[str, Any]:
    """The figures a report shows for one file, and whether it passed (`passed`, and `failed_because` when not).

    `data` is llama_worker.py's verify output for the file, `meta` the reference's JSON side file
    (hf_worker.py), `quant` the quant type's name; `converted` files (written by the converter, not the
    quantizer) are compared with transformers' logits within `tolerance` (default LOGIT_TOLERANCE).
    """
    items = data["items"]
    n = len(items)
    generated = sum(len(it["continuation"]) for it in items)
    has_logits = all("max_abs_logit_diff" in it for it in items)
    checks: dict[str, Any] = {
        "loaded": True,
        "load_seconds": data["load_seconds"],
        "prompts": n,
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
    if generated == 0:
        failed.append("generated no token for any prompt")
    checks["passed"] = not failed
    if failed:
        checks["failed_because"] = "; ".join(failed)
    return checks
