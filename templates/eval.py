# /// script
# requires-python = ">=3.10"
# dependencies = [
#     "torch>=2.4",
#     "transformers>=5.0",
#     "peft>=0.17",
#     "datasets>=4.0",
#     "accelerate>=1.10",
#     "pyyaml>=6",
#     "rouge-score>=0.1.2",
# ]
# ///
"""Evaluate one model on held-out rows with the eval block's metrics (templates/_shared/metrics.py).

Usage:
    python eval.py --model REF [--adapter DIR] --data FILE [--metrics JSON] [--out result.json]
    python eval.py --gguf FILE [--tokenizer DIR] --data FILE ...      (llama.cpp's Python runtime on PYTHONPATH)

REF is a Hub model id or a local model folder; an adapter folder alone names its base in
adapter_config.json. Decoding is greedy. Prints one event line (`##tuneforge-event {"type": "result", ...}`)
and, with --out, writes the same object: {"model", "kind", "rows", "scores", "samples"}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # its helpers travel next to it (jobs/workspace.py)
from _shared import metrics as M  # noqa: E402
from _events import emit, fail  # noqa: E402
from _heldout import evaluate_model  # noqa: E402


def load_hf(model_ref: str | None, adapter: str | None):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if adapter and not model_ref:
        cfg_file = Path(adapter) / "adapter_config.json"
        if not cfg_file.is_file():
            fail(f"{adapter} has no adapter_config.json; pass --model with the base model")
        model_ref = json.loads(cfg_file.read_text(encoding="utf-8")).get("base_model_name_or_path")
    on_gpu = torch.cuda.is_available()
    dtype = torch.bfloat16 if on_gpu and torch.cuda.is_bf16_supported() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_ref, dtype=dtype)
    if on_gpu:
        model = model.to("cuda")
    tok_dir = adapter if adapter and (Path(adapter) / "tokenizer_config.json").is_file() else model_ref
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    return model, tokenizer


def gguf_answers(path: str, tokenizer_dir: str | None, system_prompt: str | None, max_new_tokens: int, threads: int):
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_ctx=2048, n_threads=threads, verbose=False, seed=0)
    tok = None
    if tokenizer_dir:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer_dir)

    def answer(prompts: list[str]) -> list[str]:
        out = []
        for p in prompts:
            msgs = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [{"role": "user", "content": p}]
            if tok is not None and tok.chat_template:
                text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
                ids = tok(text, add_special_tokens=False)["input_ids"]
                r = llm.create_completion(ids, max_tokens=max_new_tokens, temperature=0.0, top_k=1)
                out.append(str(r["choices"][0]["text"]).strip())
            else:
                r = llm.create_chat_completion(messages=msgs, max_tokens=max_new_tokens, temperature=0.0, top_k=1)
                out.append(str(r["choices"][0]["message"]["content"] or "").strip())
        return out

    return answer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model")
    ap.add_argument("--adapter")
    ap.add_argument("--gguf")
    ap.add_argument("--tokenizer", help="a folder whose chat template formats prompts for a GGUF file")
    ap.add_argument("--label")
    ap.add_argument("--data", required=True)
    ap.add_argument("--metrics", default='["exact_match", "rouge_l"]', help="JSON list of metric names or mappings")
    ap.add_argument("--prompt-column")
    ap.add_argument("--reference-column")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--system-prompt")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if not (args.model or args.adapter or args.gguf):
        fail("give --model, --adapter or --gguf")
    specs = json.loads(args.metrics)
    if bad := M.unknown_metrics(specs):
        fail(f"unknown metric(s) {bad}; the metrics are: {M.metric_choices()}")
    block = {"path": args.data, "metrics": specs, "prompt_column": args.prompt_column,
             "reference_column": args.reference_column, "limit": args.limit}
    from _heldout import load_rows

    rows, source = load_rows(block)
    if args.gguf:
        kind, model, tokenizer = "gguf", None, None
        answer = gguf_answers(args.gguf, args.tokenizer, args.system_prompt, args.max_new_tokens, args.threads)
    else:
        from _finish import greedy_answers

        kind = "adapter" if args.adapter else "model"
        model, tokenizer = load_hf(args.model, args.adapter)

        def answer(prompts):
            return greedy_answers(model, tokenizer, prompts, args.system_prompt, args.max_new_tokens)
    emit("status", message=f"evaluating {args.label or args.gguf or args.adapter or args.model} on {len(rows)} rows")
    out = evaluate_model(answer, block, rows, model=model, tokenizer=tokenizer, system_prompt=args.system_prompt)
    result = {"model": args.label or args.gguf or args.adapter or args.model, "kind": kind, "source": source,
              "rows": len(out["prompts"]), "scores": out["scores"],
              "samples": M.samples(out["prompts"], out["references"], {"answer": out["answers"]})}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2, default=float), encoding="utf-8")
    emit("result", **{k: v for k, v in result.items() if k != "kind"}, model_kind=kind)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
