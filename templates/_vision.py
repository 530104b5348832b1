"""Vision-language models in the training templates: detected from the model's config, trained with its processor.

sft.py and dpo.py call `is_vlm(cfg)` first: a model whose config has a `vision_config` trains here, through
TRL's vision-language collators (DataCollatorForVisionLanguageModeling, DataCollatorForVisionPreference),
with the same config file on every backend. What this adds to TRL:
- rows: images given as paths (relative to the data file's folder), bytes, base64 text or {bytes, path}
  become a datasets Image column, decoded lazily; `<image>` marks in text become image parts; a row without
  any mark gets its images at the start of the first user turn; RLAIF-V rows (image, question, chosen,
  rejected) become a conversational preference pair;
- the processor with the slow (PIL) image processor (no torchvision needed);
- the vision tower frozen: LoRA targets the language model's linear layers only, a full fine-tune trains
  the language model and the projector; QLoRA leaves the vision half in 16 bits;
- image tokens never in the loss (the collator's labels at the processor's image tokens set to -100), and
  assistant-only loss through TRL's training chat template (full-sequence loss, said so, when TRL has none).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from _events import emit, fail

VISION_PARTS = ("visual", "vision_model", "vision_tower")  # the tower's module names in transformers' VLMs
PROJECTOR_PARTS = ("connector", "multi_modal_projector", "merger", "deepstack_merger_list")
LANGUAGE_PARTS = ("language_model", "text_model")
PLACEHOLDER = "<image>"


def is_vlm(cfg: dict) -> bool:
    """True when the model's config has a vision tower (read from config.json, without loading weights)."""
    local = Path(cfg["model"]) / "config.json"
    if local.is_file():
        config = json.loads(local.read_text())
        return isinstance(config.get("vision_config"), dict)
    from transformers import AutoConfig

    try:
        return getattr(AutoConfig.from_pretrained(cfg["model"]), "vision_config", None) is not None
    except Exception:  # noqa: BLE001  (the text path reports an unreadable model with its own message)
        return False


def load_processor(cfg: dict):
    from transformers import AutoProcessor

    emit("status", message="loading processor")
    processor = AutoProcessor.from_pretrained(cfg["model"], use_fast=False)
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return processor


def image_token_ids(processor) -> list[int]:
    """The ids the processor expands an image into (image, its wrappers, tile marks): never trained on."""
    tok = processor.tokenizer
    names = [getattr(processor, a, None) for a in ("image_token", "fake_image_token", "boi_token", "eoi_token",
                                                    "vision_start_token", "vision_end_token", "global_image_tag")]
    names += ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>"] + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    ids = set()
    for name in names:
        if isinstance(name, str):
            tid = tok.convert_tokens_to_ids(name)
            if isinstance(tid, int) and tid >= 0 and tid != tok.unk_token_id:
                ids.add(tid)
    for attr in ("image_token_id", "image_token_index"):
        if isinstance(getattr(processor, attr, None), int):
            ids.add(getattr(processor, attr))
    return sorted(ids)


# ---- rows ------------------------------------------------------------------------------------------
def _image_bases(dcfg: dict) -> list[Path]:
    p = Path(dcfg["path"])
    if p.is_file():
        return [p.parent.resolve()]
    if p.is_dir():
        from _shared.data_files import data_files

        files, _kind, _notes = data_files(p)
        return sorted({f.parent.resolve() for f in files}) + [p.resolve()]
    return []


def _image_ref(ref, bases: list[Path]):
    """One image reference -> what a datasets Image feature reads: an absolute path or {bytes, path}."""
    if isinstance(ref, dict):
        data, path = ref.get("bytes"), ref.get("path")
        if isinstance(data, str):
            data = base64.b64decode(data)
        return {"bytes": data, "path": None} if data is not None else _image_ref(path, bases)
    if isinstance(ref, (bytes, bytearray)):
        return {"bytes": bytes(ref), "path": None}
    if isinstance(ref, str):
        if ref.startswith("data:image/") and "," in ref:
            return {"bytes": base64.b64decode(ref.split(",", 1)[1]), "path": None}
        path = Path(ref).expanduser()
        if not path.is_absolute():
            for base in bases:
                if (base / path).is_file():
                    return {"bytes": None, "path": str(base / path)}
            fail(f"image {ref!r} not found next to the data file; run `tuneforge validate` on the data")
        return {"bytes": None, "path": str(path)}
    return ref  # already an image (a Hub dataset's Image feature)


def _parts(content, marks_images: bool) -> list[dict]:
    """A turn's content as parts: text split at `<image>` marks into text and image parts."""
    if isinstance(content, list):
        out = []
        for part in content:
            kind = part.get("type") or ("image" if "image" in part else "text")
            if kind == "image":
                out.append({"type": "image", "text": None})
            elif part.get("text"):
                out.extend(_parts(part["text"], marks_images))
        return out
    text = content or ""
    if not marks_images or PLACEHOLDER not in text:
        return [{"type": "text", "text": text}]
    out = []
    for i, piece in enumerate(text.split(PLACEHOLDER)):
        if i:
            out.append({"type": "image", "text": None})
        if piece.strip():
            out.append({"type": "text", "text": piece.strip() if i else piece.rstrip()})
    return out


def to_parts(messages: list[dict], images: int) -> list[dict]:
    """Turns with list content; images without marks go at the start of the first user turn."""
    from _shared.roles import ROLE_ALIASES

    turns = [{"role": ROLE_ALIASES.get(str(m.get("role", m.get("from"))), str(m.get("role", m.get("from")))),
              "content": _parts(m.get("content", m.get("value")), True)} for m in messages]
    marks = sum(1 for t in turns for p in t["content"] if p["type"] == "image")
    if marks == 0 and images:
        first = next((t for t in turns if t["role"] == "user"), None)
        if first is None:
            fail("a row has images but no user turn to put them in")
        first["content"] = [{"type": "image", "text": None} for _ in range(images)] + first["content"]
    elif marks != images:
        fail(f"a row has {marks} image placeholder(s) and {images} image(s); run `tuneforge validate` on the data")
    return turns


def vision_rows(ds, dcfg: dict, method: str):
    """Rows as TRL's vision collators read them: `images` (a list of Image) and messages, or prompt/chosen/rejected."""
    from datasets import Image, Sequence

    bases = _image_bases(dcfg)
    column = "images" if "images" in ds.column_names else "image" if "image" in ds.column_names else None
    if column is None:
        fail("the model is a vision-language model but the data has no images/image column")

    def convert(row):
        refs = row[column] if isinstance(row[column], list) else ([] if row[column] is None else [row[column]])
        images = [_image_ref(r, bases) for r in refs]
        if method == "sft":
            msgs = row.get("messages") or row.get("conversations")
            if msgs is None and row.get("prompt") is not None:
                msgs = [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row.get("completion")}]
            if msgs is None:
                fail("vision SFT reads messages (or conversations, or prompt/completion) beside the images")
            return {"images": images, "messages": to_parts(msgs, len(images))}
        prompt = row.get("prompt", row.get("question"))
        prompt = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt or ""}]
        out = {"images": images, "prompt": to_parts(prompt, len(images))}
        for key in ("chosen", "rejected"):
            value = row[key]
            value = value if isinstance(value, list) else [{"role": "assistant", "content": value or ""}]
            out[key] = to_parts(value, 0)
        return out

    keep = ["images", "messages"] if method == "sft" else ["images", "prompt", "chosen", "rejected"]
    ds = ds.map(convert, remove_columns=ds.column_names, desc="image rows")
    ds = ds.cast_column("images", Sequence(Image()))
    return ds.select_columns(keep)


# ---- model -----------------------------------------------------------------------------------------
def load_vlm(cfg: dict, precision: str, on_gpu: bool, end_ids: set[int]):
    from _model import model_kwargs
    from transformers import AutoModelForImageTextToText

    kwargs = model_kwargs(cfg, precision, on_gpu)
    if "quantization_config" in kwargs:  # 4-bit for the language model only
        kwargs["quantization_config"].llm_int8_skip_modules = [*VISION_PARTS, *PROJECTOR_PARTS, "lm_head"]
    model = AutoModelForImageTextToText.from_pretrained(cfg["model"], **kwargs)
    if model.generation_config is not None and end_ids:
        eos = model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        model.generation_config.eos_token_id = sorted(set(eos) | end_ids)
    frozen = 0
    for name, param in model.named_parameters():
        words = set(name.split("."))
        if words & set(VISION_PARTS) and not words & set(PROJECTOR_PARTS):
            param.requires_grad_(False)
            frozen += param.numel()
    emit("status", message=f"vision tower frozen: {frozen:,} parameters")
    return model, frozen


def language_lora_targets(model, wanted) -> str:
    """A PEFT target_modules regex: the linear layers of the language model only (never the tower or projector)."""
    import torch

    leaves = set()
    for name, module in model.named_modules():
        words = name.split(".")
        if isinstance(module, torch.nn.Linear) and set(words) & set(LANGUAGE_PARTS) and not set(words) & set(VISION_PARTS):
            leaves.add(words[-1])
    if wanted != "all-linear":
        leaves &= set(wanted)
    if not leaves:
        fail(f"no language-model linear layers match target_modules {wanted!r}")
    inside = "|".join(LANGUAGE_PARTS)
    return rf"^(?:.*\.)?(?:{inside})\..*\.(?:{'|'.join(sorted(leaves))})$"


def vlm_lora_config(pcfg: dict, model):
    if pcfg["kind"] not in ("lora", "qlora"):
        return None
    from peft import LoraConfig

    return LoraConfig(r=int(pcfg["r"]), lora_alpha=int(pcfg["alpha"]), lora_dropout=float(pcfg["dropout"]),
                      target_modules=language_lora_targets(model, pcfg["target_modules"]), task_type="CAUSAL_LM")


def mask_image_tokens(trainer, ids: list[int]) -> None:
    """Wrap the trainer's collator: labels at image tokens are -100 (the model never learns to emit them)."""
    import torch

    collate = trainer.data_collator
    masked = torch.tensor(ids, dtype=torch.long)

    def collator(examples):
        batch = collate(examples)
        for key in ("labels", "completion_mask"):
            if key in batch and "input_ids" in batch and masked.numel():
                at_image = torch.isin(batch["input_ids"], masked)
                batch[key] = batch[key].masked_fill(at_image, -100 if key == "labels" else 0)
        return batch

    trainer.data_collator = collator


def training_template(processor) -> str | None:
    """TRL's training chat template for assistant-only loss (None: the model's own has the markers);
    raises ValueError when TRL has none for this model's template."""
    from trl.chat_template_utils import get_training_chat_template

    return get_training_chat_template(processor)


def text_only_cfg(cfg: dict, result: dict) -> dict:
    """Text prompts (eval_prompts, the eval block) are answered by text models only: left out, said so."""
    dropped = [k for k in ("eval_prompts", "eval") if cfg.get(k)]
    if dropped:
        result.setdefault("warnings", []).append(f"{', '.join(dropped)} skipped: text-only prompts on a vision model")
        emit("status", message=f"warning: {', '.join(dropped)} skipped for a vision-language model")
    return {k: v for k, v in cfg.items() if k not in dropped}


def note_vision(result: dict, processor, frozen: int) -> None:
    result["vision"] = {"processor": type(processor).__name__, "tower_frozen_parameters": frozen,
                        "image_token_ids": image_token_ids(processor)}

