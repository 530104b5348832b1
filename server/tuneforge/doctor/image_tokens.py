"""Image tokens per the model's own processor: how many positions each image adds to a training sequence.

An image adds what the processor expands it to (Idefics3/SmolVLM: 64 tokens per tile plus the tile marks,
Qwen-VL: one token per 28 x 28 patch group, Gemma 3: 256). That depends on the image's size only, so each
distinct size is measured once: the chat template renders one user turn with and without an image part,
the processor expands both, and the difference is the image's tokens. The slow (PIL) image processors are
used: no torchvision needed.
"""

from __future__ import annotations

from typing import Any

from ..reports.dataset import ImageStats

MAX_MEASURED = 64  # distinct image sizes measured; the others take the nearest measured size's count


def load_processor(model: str) -> Any | None:
    """The model's processor, or None when the model has none (a text-only model) or it cannot load."""
    try:
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(model, use_fast=False)
    except Exception:  # noqa: BLE001  (a text model, or no processor files: image tokens are then not counted)
        return None
    return processor if getattr(processor, "image_processor", None) is not None else None


def tokens_for_size(processor: Any, width: int, height: int) -> int:
    """Positions one image of WIDTH x HEIGHT adds to a sequence, per PROCESSOR."""
    from PIL import Image

    with_image = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}]
    without = [{"role": "user", "content": [{"type": "text", "text": "Describe."}]}]
    text_with = processor.apply_chat_template(with_image, tokenize=False)
    text_without = processor.apply_chat_template(without, tokenize=False)
    image = Image.new("RGB", (max(1, width), max(1, height)), (127, 127, 127))
    ids = processor(text=[text_with], images=[[image]], return_tensors=None)["input_ids"][0]
    plain = processor.tokenizer(text_without, add_special_tokens=False)["input_ids"]
    return max(0, len(ids) - len(plain))


def count_image_tokens(stats: ImageStats, model: str, sizes: dict[tuple[int, int], int],
                       row_sizes: dict[tuple[tuple[int, int], ...], int]) -> bool:
    """Fill STATS' image-token fields from the images' sizes; False when the model has no processor."""
    processor = load_processor(model)
    if processor is None:
        stats.notes.append(f"Image tokens were not counted: {model} has no image processor that loads here.")
        return False
    measured: dict[tuple[int, int], int] = {}
    for size, _n in sorted(sizes.items(), key=lambda kv: -kv[1])[:MAX_MEASURED]:
        measured[size] = tokens_for_size(processor, *size)

    def tokens(size: tuple[int, int]) -> int:
        if size in measured:
            return measured[size]
        area = size[0] * size[1]
        nearest = min(measured, key=lambda s: abs(s[0] * s[1] - area))
        return measured[nearest]

    total = sum(tokens(size) * n for size, n in sizes.items())
    stats.processor = model
    stats.image_tokens = total
    counted = sum(sizes.values())
    stats.tokens_per_image = round(total / counted, 1) if counted else None
    stats.max_row_image_tokens = max((sum(tokens(s) for s in row) for row in row_sizes), default=0)
    if len(sizes) > MAX_MEASURED:
        stats.notes.append(f"Image tokens measured for the {MAX_MEASURED} commonest of {len(sizes)} image sizes; "
                           "the others counted as the nearest measured size.")
    return True
