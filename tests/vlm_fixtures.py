"""A tiny random vision-language model (Idefics3, SmolVLM's architecture) with SmolLM2's real tokenizer, and
generated images: what the VLM tests validate, plan, train and export, offline.

SmolVLM pairs a SigLIP vision tower (here 2 layers, 64 wide, 8-pixel patches on 32-pixel tiles), a pixel
shuffle projector (scale factor 2: 4 tokens per tile) and a Llama decoder that reads SmolLM2's tokenizer
plus the image tokens. The processor uses the slow (PIL) image processor and TRL's SmolVLM chat template,
so TRL finds its training template (assistant-only loss) for it.
"""

from __future__ import annotations

import json
from pathlib import Path

IMAGE_TOKENS = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"] + [
    f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
QUESTIONS = ["What colour is this?", "Which colour do you see?", "Name the colour.", "What is the colour here?",
             "Say the colour of this picture."]
TILE = 32  # pixels a side of one tile the vision tower sees
PATCH = 8


def smolvlm_chat_template() -> str:
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / "smolvlm.jinja").read_text()


def build_tiny_vlm(target: Path, tokenizer_dir: Path, *, hidden: int = 256, seed: int = 0) -> Path:
    """An Idefics3ForConditionalGeneration folder (config, weights, processor) at TARGET, built once."""
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import (
        AutoTokenizer,
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3Processor,
    )
    from transformers.models.idefics3.image_processing_pil_idefics3 import (
        Idefics3ImageProcessorPil,
    )

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    tok.add_special_tokens({"additional_special_tokens": IMAGE_TOKENS})
    torch.manual_seed(seed)
    vocab = len(tok)
    cfg = Idefics3Config(
        # architectures as SmolVLM's config.json says it: llama.cpp's converter picks the text model by it
        text_config={"model_type": "llama", "architectures": ["VLlama3ForCausalLM"], "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": hidden * 2,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
                     "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
                     "pad_token_id": tok.pad_token_id},
        vision_config={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "image_size": TILE, "patch_size": PATCH, "num_channels": 3},
        scale_factor=2,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=False,
        vocab_size=vocab,
    )
    model = Idefics3ForConditionalGeneration(cfg)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(target))
    image_processor = Idefics3ImageProcessorPil(
        do_resize=True, size={"longest_edge": 2 * TILE}, max_image_size={"longest_edge": TILE},
        do_image_splitting=True)
    seq_len = (TILE // PATCH) ** 2 // 4
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=seq_len,
                                  chat_template=smolvlm_chat_template())
    processor.save_pretrained(str(target))
    model.generation_config.save_pretrained(str(target))
    return target


def colour_images(folder: Path, n: int = 6) -> list[tuple[str, str]]:
    """N solid-colour PNGs (some larger, so they are split into tiles) and the colour's name: (file name, colour)."""
    from PIL import Image

    colours = [("red", (220, 20, 20)), ("green", (20, 200, 20)), ("blue", (20, 20, 220)),
               ("yellow", (230, 230, 20)), ("white", (250, 250, 250)), ("black", (5, 5, 5))]
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        name, rgb = colours[i % len(colours)]
        size = (32, 32) if i % 2 == 0 else (64, 48)
        Image.new("RGB", size, rgb).save(folder / f"img{i}.png")
        out.append((f"images/img{i}.png", name))
    return out


def write_llava_rows(data_dir: Path, rows: int = 24) -> Path:
    """llava-instruct-mix style rows: images beside messages with an image part; the answer names the colour."""
    images = colour_images(data_dir / "images")
    path = data_dir / "train.jsonl"
    with path.open("w") as f:
        for i in range(rows):
            image, colour = images[i % len(images)]
            question = QUESTIONS[i // len(images) % len(QUESTIONS)]
            f.write(json.dumps({"images": [image], "messages": [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]},
                {"role": "assistant", "content": [{"type": "text", "text": f"It is {colour}."}]}]}) + "\n")
    return path


def write_rlaif_rows(data_dir: Path, rows: int = 16) -> Path:
    """RLAIF-V style rows: one image with a question, a chosen and a rejected answer."""
    images = colour_images(data_dir / "images")
    path = data_dir / "train.jsonl"
    with path.open("w") as f:
        for i in range(rows):
            image, colour = images[i % len(images)]
            wrong = "purple" if colour != "purple" else "orange"
            f.write(json.dumps({"image": image, "question": QUESTIONS[i // len(images) % len(QUESTIONS)],
                                "chosen": f"It is {colour}.", "rejected": f"It is {wrong}."}) + "\n")
    return path
