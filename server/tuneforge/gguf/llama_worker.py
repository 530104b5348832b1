"""The llama.cpp side of a GGUF export, run in its own process with the pinned toolchain on PYTHONPATH.

    python llama_worker.py quantize --in model-F16.gguf --out model-Q4_K_M.gguf --ftype LLAMA_FTYPE_MOSTLY_Q4_K_M
    python llama_worker.py verify --gguf model-Q4_K_M.gguf --reference ref.npz [--f16 f16-verify.json] --out v.json

`quantize` calls `llama_cpp.llama_model_quantize` (the code behind the `llama-quantize` binary).
`verify` loads the file with `llama_cpp.Llama`, checks that llama.cpp tokenizes the chat prompts like
transformers, evaluates the same token ids the reference run used (logits of every position), and
generates greedily. It imports only the standard library, numpy and llama_cpp, never tuneforge.
Failures print `ERROR: ...` on stderr and exit 2; success prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time
from pathlib import Path


def fail(message: str) -> None:
    print(f"ERROR: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def quantize(src: str, dst: str, ftype: str, threads: int) -> dict:
    import llama_cpp

    started = time.time()
    value = getattr(llama_cpp, ftype, None)
    if value is None:
        fail(f"this llama.cpp has no file type {ftype}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = value
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        fail(f"llama_model_quantize returned {rc} for {ftype}")
    return {"path": dst, "bytes": os.path.getsize(dst), "seconds": round(time.time() - started, 2)}


def verify(gguf: str, reference: str, f16_result: str | None, threads: int) -> dict:
    import numpy as np
    from llama_cpp import Llama

    started = time.time()
    meta = json.loads(Path(reference).with_suffix(".json").read_text(encoding="utf-8"))
    ref = np.load(reference)
    items = meta["items"]
    eos = set(meta["eos"])
    max_new = int(meta["max_new"])
    n_ctx = max(len(it["ids"]) for it in items) + max_new + 8
    llm = Llama(model_path=gguf, n_ctx=n_ctx, n_batch=n_ctx, logits_all=True, n_threads=threads, n_threads_batch=threads,
                verbose=False)
    load_seconds = time.time() - started
    eos |= {int(llm.token_eos())} if llm.token_eos() is not None and llm.token_eos() >= 0 else set()
    f16_items = json.loads(Path(f16_result).read_text(encoding="utf-8"))["items"] if f16_result else None

    out_items = []
    for i, it in enumerate(items):
        ids = it["ids"]
        llama_ids = llm.tokenize(it["text"].encode("utf-8"), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        scores = np.asarray(llm.scores[: len(ids)], dtype=np.float32)
        row: dict = {"tokenizer_match": [int(t) for t in llama_ids] == ids, "positions": len(ids),
                     "finite": bool(np.isfinite(scores).all())}
        if f"logits_{i}" in ref.files:
            want = ref[f"logits_{i}"]
            n_vocab = min(scores.shape[1], want.shape[1])
            diff = np.abs(scores[:, :n_vocab] - want[:, :n_vocab])
            top1 = (scores[:, :n_vocab].argmax(axis=1) == want[:, :n_vocab].argmax(axis=1))
            row.update(max_abs_logit_diff=float(diff.max()), mean_abs_logit_diff=float(diff.mean()),
                       top1_agree=int(top1.sum()))
        cont: list[int] = []
        for _ in range(max_new):
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            if tok in eos:
                break
            cont.append(tok)
            llm.eval([tok])
        row["continuation"] = cont
        row["answer"] = llm.detokenize(cont).decode("utf-8", errors="replace")
        if it["continuation"] is not None:
            row["greedy_match_transformers"] = cont == it["continuation"]
        if f16_items is not None:
            row["greedy_match_f16"] = cont == f16_items[i]["continuation"]
            row["f16_continuation"] = f16_items[i]["continuation"]
            row["f16_answer"] = f16_items[i]["answer"]
        out_items.append(row)
    md = llm.metadata or {}
    return {
        "path": gguf,
        "load_seconds": round(load_seconds, 3),
        "seconds": round(time.time() - started, 2),
        "n_vocab": int(llm.n_vocab()),
        "architecture": md.get("general.architecture"),
        "chat_template_in_gguf": "tokenizer.chat_template" in md,
        "items": out_items,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quantize")
    q.add_argument("--in", dest="src", required=True)
    q.add_argument("--out", required=True)
    q.add_argument("--ftype", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--gguf", required=True)
    v.add_argument("--reference", required=True)
    v.add_argument("--f16")
    v.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "quantize":
            result = quantize(args.src, args.out, args.ftype, args.threads)
        else:
            result = verify(args.gguf, args.reference, args.f16, args.threads)
            Path(args.out).write_text(json.dumps(result), encoding="utf-8")
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        fail(f"{type(exc).__name__}: {exc}")
    print(json.dumps({k: v for k, v in result.items() if k != "items"}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
