"""The vision tower and projector of a vision-language model, counted from its config.json, never guessed.

`from_vlm_config` reads the `vision_config` of the families tuneforge sizes exactly (tests compare each
with transformers on the meta device): Qwen2.5-VL (RMSNorm blocks, gated MLP, a 2x2 patch merger),
Qwen3-VL (LayerNorm blocks, learned positions, a merger plus its DeepStack mergers), Idefics3 / SmolVLM
(SigLIP, a pixel-shuffle connector) and Gemma 3 (SigLIP without its head, a projection matrix and a soft
norm). Another family with a `vision_config` is counted as a generic ViT (SigLIP-like) and says so.

The templates freeze the tower (LoRA goes on the language model only; a full fine-tune trains the
language model and the projector), so memory counts the tower's weights but never its gradients, and its
activations only for the forward pass (no graph is kept for a frozen tower whose input needs no grad).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from .dataset_stats import DatasetStats

EXACT_FAMILIES = ("qwen2_5_vl", "qwen3_vl", "idefics3", "smolvlm", "gemma3")


class Vision(BaseModel):
    """The vision half of a VLM: parameters, shape and the tokens one image costs."""

    family: str
    tower_parameters: int = Field(ge=0, description="The vision encoder (frozen by the templates).")
    projector_parameters: int = Field(ge=0, description="What maps image features into the language model.")
    hidden_size: int
    num_layers: int
    intermediate_size: int
    patch_size: int
    image_size: int | None = None
    tokens_per_image: int = Field(description="Language-model tokens of a typical image (the plan's default).")
    patches_per_image: int = Field(description="Vision-tower positions of that image.")
    exact: bool = True

    @property
    def parameters(self) -> int:
        return self.tower_parameters + self.projector_parameters


def _layernorm(h: int) -> int:
    return 2 * h


def _siglip_tower(v: dict[str, Any], *, head: bool) -> int:
    h, i, c = int(v["hidden_size"]), int(v["intermediate_size"]), int(v.get("num_channels", 3))
    p, size, layers = int(v["patch_size"]), int(v["image_size"]), int(v["num_hidden_layers"])
    embeddings = c * p * p * h + h + (size // p) ** 2 * h
    layer = 2 * _layernorm(h) + 4 * (h * h + h) + (h * i + i) + (i * h + h)
    n = embeddings + layers * layer + _layernorm(h)
    if head:  # SiglipMultiheadAttentionPoolingHead: probe, nn.MultiheadAttention, LayerNorm, MLP
        n += h + (3 * h * h + 3 * h) + (h * h + h) + _layernorm(h) + (h * i + i) + (i * h + h)
    return n


def _qwen2_5_vl(v: dict[str, Any], text_hidden: int) -> tuple[int, int]:
    h, i, d = int(v["hidden_size"]), int(v["intermediate_size"]), int(v["depth"])
    p, tp, c = int(v.get("patch_size", 14)), int(v.get("temporal_patch_size", 2)), int(v.get("in_chans", v.get("in_channels", 3)))
    merge = int(v.get("spatial_merge_size", 2))
    out = int(v.get("out_hidden_size") or text_hidden)
    block = 2 * h + (h * 3 * h + 3 * h) + (h * h + h) + 2 * (h * i + i) + (i * h + h)
    tower = c * tp * p * p * h + d * block
    m = h * merge * merge
    projector = h + (m * m + m) + (m * out + out)  # ln_q + the merger's MLP
    return tower, projector


def _qwen3_vl(v: dict[str, Any], text_hidden: int) -> tuple[int, int]:
    h, i, d = int(v["hidden_size"]), int(v["intermediate_size"]), int(v["depth"])
    p, tp, c = int(v.get("patch_size", 16)), int(v.get("temporal_patch_size", 2)), int(v.get("in_channels", 3))
    merge = int(v.get("spatial_merge_size", 2))
    out = int(v.get("out_hidden_size") or text_hidden)
    block = 2 * _layernorm(h) + (h * 3 * h + 3 * h) + (h * h + h) + (h * i + i) + (i * h + h)
    tower = c * tp * p * p * h + h + int(v.get("num_position_embeddings", 2304)) * h + d * block
    m = h * merge * merge
    mlp = (m * m + m) + (m * out + out)
    deepstack = len(v.get("deepstack_visual_indexes") or [])
    projector = (_layernorm(h) + mlp) + deepstack * (_layernorm(m) + mlp)
    return tower, projector


def _tokens_qwen(v: dict[str, Any], side: int = 448) -> tuple[int, int]:
    p, merge = int(v.get("patch_size", 14)), int(v.get("spatial_merge_size", 2))
    patches = (side // p) ** 2
    return patches // (merge * merge), patches


def from_vlm_config(cfg: dict[str, Any], text_hidden: int) -> Vision | None:
    """The vision half of the model CFG describes, or None for a text-only config."""
    v = cfg.get("vision_config")
    if not isinstance(v, dict) or not v:
        return None
    family = str(cfg.get("model_type") or "unknown")
    v = dict(v)
    if family == "qwen2_5_vl" or family == "qwen2_vl" and "out_hidden_size" in v:
        tower, projector = _qwen2_5_vl(v, text_hidden)
        tokens, patches = _tokens_qwen(v)
        return Vision(family=family, tower_parameters=tower, projector_parameters=projector, hidden_size=int(v["hidden_size"]),
                      num_layers=int(v["depth"]), intermediate_size=int(v["intermediate_size"]),
                      patch_size=int(v.get("patch_size", 14)), tokens_per_image=tokens, patches_per_image=patches)
    if family in ("qwen3_vl", "qwen3_vl_moe"):
        tower, projector = _qwen3_vl(v, text_hidden)
        tokens, patches = _tokens_qwen(v)
        return Vision(family=family, tower_parameters=tower, projector_parameters=projector, hidden_size=int(v["hidden_size"]),
                      num_layers=int(v["depth"]), intermediate_size=int(v["intermediate_size"]),
                      patch_size=int(v.get("patch_size", 16)), tokens_per_image=tokens, patches_per_image=patches)
    v.setdefault("num_channels", 3)
    needed = ("hidden_size", "intermediate_size", "num_hidden_layers", "patch_size", "image_size")
    if any(v.get(k) is None for k in needed):
        return None
    h, size, p = int(v["hidden_size"]), int(v["image_size"]), int(v["patch_size"])
    patches = (size // p) ** 2
    if family in ("idefics3", "smolvlm"):
        scale = int(cfg.get("scale_factor", 2 if family == "idefics3" else 4))
        tower = _siglip_tower(v, head=False)
        projector = h * scale * scale * text_hidden  # the connector's Linear(h * scale^2, text hidden, bias=False)
        tokens = patches // (scale * scale) * 5  # a typical image: a 2 x 2 split plus the global view
        patches *= 5
        exact = True
    elif family == "gemma3":
        tower = _siglip_tower(v, head=bool(v.get("vision_use_head", False)))
        projector = h * text_hidden + h  # mm_input_projection_weight + mm_soft_emb_norm
        tokens = int(cfg.get("mm_tokens_per_image", 256))
        exact = True
    else:
        tower = _siglip_tower(v, head=bool(v.get("vision_use_head", False)))
        projector = h * text_hidden * 2
        tokens = patches
        exact = False
    return Vision(family=family, tower_parameters=tower, projector_parameters=projector, hidden_size=h,
                  num_layers=int(v["num_hidden_layers"]), intermediate_size=int(v["intermediate_size"]), patch_size=p,
                  image_size=size, tokens_per_image=tokens, patches_per_image=patches, exact=exact)


def vision_activation_bytes(vision: Vision, images: int, act_bytes: float) -> float:
    """Peak bytes of the frozen tower's forward pass over IMAGES images: one block's tensors at a time (no
    graph is kept), plus the features handed to the projector."""
    positions = images * vision.patches_per_image
    per_position = vision.hidden_size * 6 + vision.intermediate_size * 2  # residual, norm, q/k/v/out, MLP
    return positions * (per_position + vision.hidden_size) * act_bytes


def _size(n: int) -> str:
    return f"{n / 1e9:.3f}B" if n >= 100e6 else f"{n / 1e6:.1f}M"


def vision_note(vision: Vision, language_parameters: int) -> str:
    how = "" if vision.exact else " (a generic SigLIP-like estimate: this family is not counted layer by layer)"
    return (f"Vision-language model ({vision.family}): the language model has {_size(language_parameters)} "
            f"parameters, the vision tower {_size(vision.tower_parameters)} and the projector "
            f"{_size(vision.projector_parameters)}{how}. The vision tower stays frozen (LoRA goes on the language "
            f"model only); about {vision.tokens_per_image} tokens per image unless the dataset's images say otherwise.")


def with_image_tokens(stats: DatasetStats, vision: Vision) -> tuple[DatasetStats, list[str]]:
    """STATS with each row's image tokens added to its sequence: the processor's count from the doctor, else
    the family's typical image times the images a row holds (one per row when the data did not say)."""
    if stats.images_per_row == 0:
        return stats, ["The dataset has no image column: the model trains on text only."]
    images = stats.images_per_row or 1.0
    if stats.image_tokens_per_row is not None:
        most, mean = stats.image_tokens_per_row, stats.mean_image_tokens or stats.image_tokens_per_row
        note = f"Image tokens counted by the model's processor: up to {most:,.0f} per row (mean {mean:,.1f})."
    else:
        most = mean = images * vision.tokens_per_image
        note = (f"Image tokens assumed: {images:g} image(s) per row x {vision.tokens_per_image} tokens (the family's "
                "typical image; validate with --model to count them from the images).")
    update: dict[str, Any] = {"images_per_row": images}
    for field, add in (("mean_tokens", mean), ("p95_tokens", most), ("max_tokens", most)):
        value = getattr(stats, field)
        if value is not None:
            update[field] = value + add
    return stats.model_copy(update=update), [note]
