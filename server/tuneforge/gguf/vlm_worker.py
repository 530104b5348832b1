"""The VLM export's worker (a subprocess with the pinned toolchain on PYTHONPATH): merge, then check both files.

    python vlm_worker.py merge --adapter A --base B --out O
    python vlm_worker.py check --model M --lm LM.gguf --mmproj P.gguf [--quantized]

`merge` folds a LoRA adapter into its vision-language base (AutoModelForImageTextToText) and saves the
model with its processor. `check` prints one JSON line:
- the language model GGUF against transformers on the same text-only token ids (max abs logit difference
  and top-1 agreement per position; a quantized file is only loaded and asked to generate, as tiny random
  models diverge under quantization);
- the mmproj GGUF read with gguf-py (its projector type and every tensor's elements, which must add up to
  the HF model's vision tower plus projector);
- `image`: the pair asked about images through libmtmd (llama.cpp's multimodal library, the code behind
  llama-mtmd-cli and llama-server --mmproj). Per image: the prompt's positions (text plus the image's
  tokens, as llama.cpp lays them out) against the processor's, the next-token logits after the image
  against transformers', and a short greedy answer from each. Two different images must change the
  logits by more than llama.cpp and transformers differ on one image, or the image never reached the model.
"""

from __future__ import annotations

import argparse
import json
import sys

VISION_PARTS = ("visual", "vision_model", "vision_tower")
PROJECTOR_PARTS = ("connector", "multi_modal_projector")
PROMPT = "Describe the colour of the sky in one word."
IMAGE_PROMPT = "What colour is this picture?"
#: the images asked about: solid colours (no resampling differences between PIL and llama.cpp)
IMAGE_COLOURS = {"red": (220, 20, 20), "blue": (20, 20, 220)}
ANSWER_TOKENS = 8


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
    out["image"] = image_check(model, processor, llm, mmproj)
    return out


def _image_size(model) -> int:
    vision = getattr(model.config, "vision_config", None)
    return int(getattr(vision, "image_size", 0) or 224)


def image_check(model, processor, llm, mmproj: str) -> dict:
    """Ask transformers and llama.cpp (libmtmd, with the mmproj file) about the same images."""
    import ctypes
    import io

    import numpy as np
    import torch
    from llama_cpp import llama_cpp as lc
    from llama_cpp import mtmd_cpp as mt
    from PIL import Image

    params = mt.mtmd_context_params_default()
    params.use_gpu = False
    params.print_timings = False
    params.n_threads = 2
    ctx = mt.mtmd_init_from_file(mmproj.encode(), llm.model, params)
    if not ctx:
        return {"loads": False, "error": "libmtmd could not load the mmproj file with this language model"}
    out: dict = {"loads": True, "vision": bool(mt.mtmd_support_vision(ctx)), "images": {}}
    marker = mt.mtmd_default_marker().decode()
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"},
                                                                       {"type": "text", "text": IMAGE_PROMPT}]}],
                                         tokenize=False, add_generation_prompt=True)
    side = _image_size(model)
    n_vocab = llm.n_vocab()
    logits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        for name, rgb in IMAGE_COLOURS.items():
            image = Image.new("RGB", (side, side), rgb)
            inputs = processor(text=text, images=[image], return_tensors="pt")
            with torch.no_grad():
                ref = model(**inputs).logits[0, -1].float().numpy()
                ref_answer = model.generate(**inputs, max_new_tokens=ANSWER_TOKENS, do_sample=False)[0][
                    inputs["input_ids"].shape[1]:].tolist()
            png = io.BytesIO()
            image.save(png, format="PNG")
            data = png.getvalue()
            buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
            bitmap = mt.mtmd_helper_bitmap_init_from_buf(ctx, buf, len(data), False)
            chunks = mt.mtmd_input_chunks_init()
            try:
                prompt = mtmd_prompt(text, processor, marker).encode()
                inp = mt.mtmd_input_text(text=prompt, text_len=len(prompt), add_special=False, parse_special=True)
                bitmaps = (mt.mtmd_bitmap_p_ctypes * 1)(bitmap)
                if mt.mtmd_tokenize(ctx, chunks, ctypes.byref(inp), bitmaps, 1) != 0:
                    return {**out, "loads": False, "error": "libmtmd could not tokenize the prompt with the image"}
                lc.llama_memory_clear(lc.llama_get_memory(llm.ctx), True)
                n_past = lc.llama_pos(0)
                if mt.mtmd_helper_eval_chunks(ctx, llm.ctx, chunks, 0, 0, llm.n_batch, True, ctypes.byref(n_past)) != 0:
                    return {**out, "loads": False, "error": "llama.cpp could not evaluate the image"}
                positions = int(mt.mtmd_helper_get_n_pos(chunks))
            finally:
                mt.mtmd_input_chunks_free(chunks)
                mt.mtmd_bitmap_free(bitmap)
            got = np.ctypeslib.as_array(lc.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,)).astype(np.float32).copy()
            answer = []
            next_logits = got
            for _ in range(ANSWER_TOKENS):
                tok = int(next_logits.argmax())
                answer.append(tok)
                if tok == llm.token_eos():
                    break
                one = (lc.llama_token * 1)(tok)
                if lc.llama_decode(llm.ctx, lc.llama_batch_get_one(one, 1)) != 0:
                    break
                next_logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,)).copy()
            logits[name] = (got, ref[:n_vocab])
            out["images"][name] = {
                "positions": positions, "hf_positions": int(inputs["input_ids"].shape[1]),
                "max_abs_logit_diff": float(np.abs(got - ref[:n_vocab]).max()),
                "top1_agrees": bool(int(got.argmax()) == int(ref.argmax())),
                "answer": processor.tokenizer.decode(answer, skip_special_tokens=True)[:80],
                "hf_answer": processor.tokenizer.decode(ref_answer, skip_special_tokens=True)[:80],
                "answer_tokens_agree": _common_prefix(answer, ref_answer),
            }
    finally:
        mt.mtmd_free(ctx)
    (a_got, a_ref), (b_got, b_ref) = logits.values()
    out["image_effect"] = {"llama_cpp": float(np.abs(a_got - b_got).max()), "transformers": float(np.abs(a_ref - b_ref).max())}
    return out


def mtmd_prompt(text: str, processor, marker: str) -> str:
    """The chat template's text with its image span replaced by libmtmd's marker, so that llama.cpp lays the
    image out as the processor does: libmtmd adds the image's own wrappers (Qwen-VL's vision_start/end,
    Gemma 3's start/end_of_image, Idefics3's fake_token_around_image and global-img), and Gemma 3's
    processor puts a blank line either side of the image, which libmtmd does not."""
    token = getattr(processor, "image_token", None) or "<image>"
    tokenizer = getattr(processor, "tokenizer", processor)
    wrapped = f"<|vision_start|>{token}<|vision_end|>"
    if wrapped in text:
        return text.replace(wrapped, marker, 1)
    boi = getattr(processor, "boi_token", None) or getattr(tokenizer, "boi_token", None)
    if boi and boi in text:
        return text.replace(boi, f"\n\n{marker}\n\n", 1)
    return text.replace(token, marker, 1)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


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
