"""The VLM export's worker (a subprocess with the pinned toolchain on PYTHONPATH): merge, then check both files.

    python vlm_worker.py merge --adapter A --base B --out O
    python vlm_worker.py check --model M --lm LM.gguf --mmproj P.gguf [--quantized]

`merge` folds a LoRA adapter into its vision-language base (AutoModelForImageTextToText) and saves the
model with its processor. `check` prints one JSON line: the language model GGUF against transformers on
the same text-only token ids (max abs logit difference and top-1 agreement per position; a quantized file
is only loaded and asked to generate, as tiny random models diverge under quantization) and the mmproj
GGUF read with gguf-py (its projector type and every tensor's elements, which must add up to the HF
model's vision tower plus projector).
"""

from __future__ import annotations

import argparse
import json
import sys

VISION_PARTS = ("visual", "vision_model", "vision_tower")
PROJECTOR_PARTS = ("connector", "multi_modal_projector")
PROMPT = "Describe the colour of the sky in one word."


def merge(adapter: str, base: str, out: str) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    merged.save_pretrained(out)
    AutoProcessor.from_pretrained(base, use_fast=False).save_pretrained(out)
    return {"merged": out}


def _vision_elements(model) -> int:
    total = 0
    for name, p in model.named_parameters():
        words = set(name.split("."))
        if words & set(VISION_PARTS) or words & set(PROJECTOR_PARTS):
            total += p.numel()
    return total


def check(model_dir: str, lm: str, mmproj: str, quantized: bool) -> dict:
    import numpy as np
    import torch
    from gguf import GGUFReader
    from llama_cpp import Llama
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir, use_fast=False)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": PROMPT}]}],
                                         tokenize=False, add_generation_prompt=True)
    ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        ref = model(input_ids=torch.tensor([ids])).logits[0].float().numpy()
    llm = Llama(model_path=lm, n_ctx=512, logits_all=True, verbose=False)
    llm.eval(ids)
    got = np.array(llm.scores[: len(ids)], dtype=np.float32)
    out: dict = {"positions": len(ids), "loads": True}
    if not quantized:
        out["max_abs_logit_diff"] = float(np.abs(got - ref).max())
        out["top1_agreement"] = float((got.argmax(-1) == ref.argmax(-1)).mean())
    llm.reset()
    answer = llm.create_completion(text, max_tokens=8, temperature=0.0)
    out["generates"] = bool(answer["choices"][0]["text"] is not None)
    out["sample"] = answer["choices"][0]["text"][:80]

    reader = GGUFReader(mmproj)
    fields = {f.name: f for f in reader.fields.values()}

    def field_text(name: str):
        f = fields.get(name)
        if f is None:
            return None
        value = f.parts[f.data[0]]
        return bytes(value).decode() if value.dtype == np.uint8 else value.tolist()[0]

    out["mmproj"] = {
        "tensors": len(reader.tensors),
        "elements": int(sum(int(t.n_elements) for t in reader.tensors)),
        "hf_vision_elements": _vision_elements(model),
        "projector_type": field_text("clip.projector_type") or field_text("clip.vision.projector_type"),
        "has_vision_encoder": field_text("clip.has_vision_encoder"),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("merge")
    m.add_argument("--adapter", required=True)
    m.add_argument("--base", required=True)
    m.add_argument("--out", required=True)
    c = sub.add_parser("check")
    c.add_argument("--model", required=True)
    c.add_argument("--lm", required=True)
    c.add_argument("--mmproj", required=True)
    c.add_argument("--quantized", action="store_true")
    args = parser.parse_args(argv)
    result = merge(args.adapter, args.base, args.out) if args.cmd == "merge" else check(args.model, args.lm, args.mmproj,
                                                                                       args.quantized)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
