"""The transformers side of a GGUF export, run in its own process: merge an adapter, compute reference logits.

    python hf_worker.py merge --adapter DIR --base DIR_OR_ID --out DIR
    python hf_worker.py reference --model DIR --prompts prompts.json --out ref.npz --max-new 16

Every load passes `trust_remote_code` explicitly: False unless `--trust-remote-code` is given (the user
trusts the model's own code), so transformers never asks; tuneforge also runs it under
no_remote_code.py then.

It imports only the standard library and the training stack (torch, transformers, peft, numpy), never
tuneforge, so a cloud job can run it as a plain script. Failures print one line `ERROR: ...` on stderr
and exit 2; success prints one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
                   "chat_template.jinja", "chat_template.json", "vocab.json", "merges.txt", "added_tokens.json")


def fail(message: str) -> None:
    print(f"ERROR: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def has_tokenizer(d: Path) -> bool:
    return (d / "tokenizer.json").is_file() or (d / "tokenizer.model").is_file()


def merge(adapter: str, base: str, out: str, work_dtype: str, trust: bool = False) -> dict:
    """Merge in work_dtype (float32 when memory allows), save in the base model's own dtype."""
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    started = time.time()
    cfg = AutoConfig.from_pretrained(base, trust_remote_code=trust)
    base_dtype = getattr(cfg, "dtype", None) or getattr(cfg, "torch_dtype", None) or torch.float32
    if isinstance(base_dtype, str):
        base_dtype = getattr(torch, base_dtype, torch.float32)
    if base_dtype not in (torch.float32, torch.float16, torch.bfloat16):
        base_dtype = torch.float32
    load_dtype = base_dtype if work_dtype == "auto" else getattr(torch, work_dtype)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=load_dtype, low_cpu_mem_usage=True, trust_remote_code=trust)
    model = PeftModel.from_pretrained(model, adapter)
    merged = model.merge_and_unload().to(base_dtype)
    dtype = str(base_dtype).replace("torch.", "")
    out_dir = Path(out)
    merged.save_pretrained(out_dir)
    tok_src = adapter if has_tokenizer(Path(adapter)) else base
    tokenizer = AutoTokenizer.from_pretrained(tok_src, trust_remote_code=trust)
    tokenizer.save_pretrained(out_dir)
    # keep a chat template file that save_pretrained may not have written
    for name in ("chat_template.jinja", "chat_template.json"):
        src = Path(tok_src) / name
        if src.is_file() and not (out_dir / name).exists():
            shutil.copyfile(src, out_dir / name)
    return {"merged_dir": str(out_dir), "dtype": dtype, "merged_in": str(load_dtype).replace("torch.", ""),
            "tokenizer_from": tok_src, "seconds": round(time.time() - started, 2)}


def reference(model_dir: str, prompts_path: str, out: str, max_new: int, system: str | None, dtype_name: str,
              threads: int | None = None, trust: bool = False) -> dict:
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.time()
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    prompts = json.loads(Path(prompts_path).read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust)
    model = None
    if dtype_name != "none":  # "none": too big to load here, tokenize only (llama.cpp checks load + generate)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype_name), low_cpu_mem_usage=True,
                                                     trust_remote_code=trust)
        model.eval()
    eos: set[int] = set()
    gen_eos = getattr(model.generation_config, "eos_token_id", None) if model is not None else None
    for value in (gen_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            eos.add(value)
        elif isinstance(value, (list, tuple)):
            eos.update(int(v) for v in value)
    arrays = {}
    items = []
    for i, prompt in enumerate(prompts):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        if tokenizer.chat_template:
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = prompt
        ids = tokenizer(text, add_special_tokens=not tokenizer.chat_template)["input_ids"]
        cont: list[int] | None = None
        if model is not None:
            with torch.no_grad():
                x = torch.tensor([ids])
                logits = model(x).logits[0].float().numpy()
                gen = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=max_new, do_sample=False,
                                     eos_token_id=sorted(eos) or None, pad_token_id=tokenizer.pad_token_id)
            cont = [int(t) for t in gen[0, len(ids):].tolist()]
            while cont and cont[-1] in eos:
                cont = cont[:-1]
            arrays[f"logits_{i}"] = logits.astype(np.float32)
        items.append({"prompt": prompt, "text": text, "ids": [int(t) for t in ids], "continuation": cont,
                      "answer": tokenizer.decode(cont, skip_special_tokens=True) if cont is not None else None})
    np.savez(out, **arrays)
    meta = {"items": items, "eos": sorted(eos), "dtype": dtype_name, "max_new": max_new,
            "seconds": round(time.time() - started, 2)}
    Path(out).with_suffix(".json").write_text(json.dumps(meta), encoding="utf-8")
    return {"reference": out, "meta": str(Path(out).with_suffix(".json")), "prompts": len(items), "seconds": meta["seconds"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("merge")
    m.add_argument("--adapter", required=True)
    m.add_argument("--base", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--dtype", default="float32", choices=["float32", "auto"], help="dtype to merge in (auto: the base's)")
    r = sub.add_parser("reference")
    r.add_argument("--model", required=True)
    r.add_argument("--prompts", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--max-new", type=int, default=16)
    r.add_argument("--threads", type=int)
    r.add_argument("--system")
    r.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "none"])
    for p in (m, r):
        p.add_argument("--trust-remote-code", action="store_true", help="load the model's own code (the user trusts it)")
    args = parser.parse_args(argv)
    try:
        if args.command == "merge":
            result = merge(args.adapter, args.base, args.out, args.dtype, args.trust_remote_code)
        else:
            result = reference(args.model, args.prompts, args.out, args.max_new, args.system, args.dtype, args.threads,
                               args.trust_remote_code)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        fail(f"{type(exc).__name__}: {exc}")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
