"""Model size from the architecture config: parameters counted layer by layer, never guessed from the name.

`Architecture` holds the numbers the memory and time models need (hidden size, layers, heads, vocab,
experts...). `count_parameters` adds up every weight matrix, bias and norm the way the transformers
implementation builds them: attention (with grouped KV heads and optional biases / q-k norms),
gated MLPs, MoE experts plus router and shared expert, embeddings and an untied lm_head. Tests check
the count against transformers on the meta device within 2%.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from ..errors import TuneforgeError
from .vision import Vision, from_vlm_config

# Norms per decoder layer (besides q/k norms) for families that differ from the usual two.
_NORMS_PER_LAYER = {"gemma2": 4, "gemma3_text": 4, "gemma3": 4, "olmo2": 2, "cohere": 1}
# Families whose q/k norms are per head (head_dim weights) vs over the whole projection (olmo2).
_QK_NORM_PER_HEAD = {"qwen3", "qwen3_moe", "gemma3", "gemma3_text", "qwen3_next", "glm4_moe", "qwen3_vl_text",
                     "qwen3_vl_moe_text"}
_QK_NORM_FULL = {"olmo2", "olmo3"}
# Families whose q/k/v projections carry a bias whatever `attention_bias` says.
_QKV_BIAS = {"qwen2", "qwen2_moe", "qwen2_vl", "qwen2_5_vl"}
# Families with a LayerNorm (weight + bias) instead of RMSNorm.
_LAYERNORM_BIAS = {"phi", "gpt2", "gpt_neox", "falcon", "starcoder2", "stablelm"}
# Families whose config class ties the LM head to the embeddings when config.json omits the key.
_TIED_BY_DEFAULT = {"gemma", "gemma2", "gemma3", "gemma3_text", "smollm3", "gpt2"}
# MoE families whose fused expert tensors and router PEFT 0.21's "all-linear" wraps with LoRA (those
# transformers converts from per-expert checkpoints); others (e.g. qwen2_moe) keep LoRA off the experts.
_PEFT_WRAPS_EXPERTS = {
    "afmoe", "beam", "cohere2_moe", "deepseek_v2", "deepseek_v3", "deepseek_v32", "dots1", "ernie4_5_moe", "exaone_moe",
    "flex_olmo", "glm4_moe", "glm4_moe_lite", "hunyuan_v1_moe", "longcat_flash", "mellum", "minimax", "minimax_m2",
    "mixtral", "olmoe", "qwen3_moe", "qwen3_next", "solar_open",
}
# ...and of those, families where the MLP modules outside the experts are then left alone.
_PEFT_SKIPS_DENSE_MLP = {"deepseek_v2", "deepseek_v3", "deepseek_v32"}
# config.json keys a family leaves to its config class's defaults (Gemma 3's text_config names only its size).
_TEXT_DEFAULTS = {"gemma3_text": {"vocab_size": 262208, "num_attention_heads": 8, "num_key_value_heads": 4,
                                  "head_dim": 256, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26}}
# Plain (not gated) MLPs: up + down only.
_NON_GATED = {"phi", "gpt2", "gpt_neox", "falcon", "starcoder2"}


class Architecture(BaseModel):
    """The numbers of a decoder-only transformer that size, memory and time depend on."""

    model_type: str
    hidden_size: int = Field(ge=1)
    num_layers: int = Field(ge=1)
    num_heads: int = Field(ge=1)
    num_kv_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    intermediate_size: int = Field(ge=1)
    vocab_size: int = Field(ge=1)
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    gated_mlp: bool = True
    norms_per_layer: int = 2
    norm_bias: bool = False
    qk_norm: str | None = None  # None | "head" | "full"
    learned_positions: int = 0
    # Mixture of experts (0 experts: dense)
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0
    shared_expert_gate: bool = False
    dense_layers: int = 0  # layers that keep a dense MLP in an MoE model
    # Multi-head latent attention (DeepSeek V2/V3)
    mla: dict[str, int] | None = None
    max_position_embeddings: int | None = None
    vision: Vision | None = Field(default=None, description="A VLM's vision tower and projector (planner/vision.py).")
    source: str = Field(default="config", description="Where the numbers came from: config file, cache, Hub or name guess.")

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def moe_layers(self) -> int:
        return max(0, self.num_layers - self.dense_layers) if self.is_moe else 0

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim


def _first(cfg: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if cfg.get(key) is not None:
            return cfg[key]
    return default


def from_config(cfg: dict[str, Any], source: str = "config") -> Architecture:
    """Read a transformers config.json (as a dict). Multimodal configs use their `text_config`; a VLM's
    `vision_config` is counted by planner/vision.py."""
    full = cfg
    if isinstance(cfg.get("text_config"), dict) and not cfg.get("hidden_size"):
        text = dict(cfg["text_config"])
        text.setdefault("tie_word_embeddings", cfg.get("tie_word_embeddings", text.get("tie_word_embeddings")))
        text.setdefault("vocab_size", cfg.get("vocab_size"))
        cfg = text
    model_type = str(cfg.get("model_type") or "unknown")
    cfg = {**_TEXT_DEFAULTS.get(model_type, {}), **{k: v for k, v in cfg.items() if v is not None}}
    hidden = _first(cfg, "hidden_size", "n_embd", "d_model")
    layers = _first(cfg, "num_hidden_layers", "n_layer", "num_layers")
    heads = _first(cfg, "num_attention_heads", "n_head", "num_heads")
    vocab = _first(cfg, "vocab_size", "padded_vocab_size")
    missing = [k for k, v in (("hidden_size", hidden), ("num_hidden_layers", layers), ("num_attention_heads", heads),
                              ("vocab_size", vocab)) if not v]
    if missing:
        raise TuneforgeError(
            f"The model config ({source}) has no {', '.join(missing)}: it does not describe a decoder-only text model tuneforge can size.",
            "Check that --model names a causal language model (a config.json with hidden_size, num_hidden_layers, "
            "num_attention_heads and vocab_size).",
            code="plan.model_not_sizable",
        )
    hidden, layers, heads, vocab = int(hidden), int(layers), int(heads), int(vocab)
    kv_heads = int(_first(cfg, "num_key_value_heads", "num_kv_heads", default=None)
                   or (1 if cfg.get("multi_query") else heads))
    head_dim = int(_first(cfg, "head_dim", default=None) or hidden // heads)
    gated = model_type not in _NON_GATED
    intermediate = int(_first(cfg, "intermediate_size", "ffn_hidden_size", "n_inner", default=None) or 4 * hidden)
    attention_bias = bool(cfg.get("attention_bias", False))
    qkv_bias = attention_bias or model_type in _QKV_BIAS or bool(cfg.get("qkv_bias", False))
    o_bias = attention_bias and model_type not in _QKV_BIAS
    qk_norm = "head" if model_type in _QK_NORM_PER_HEAD else "full" if model_type in _QK_NORM_FULL else None
    if cfg.get("use_qk_norm") and qk_norm is None:
        qk_norm = "head"
    num_experts = int(_first(cfg, "num_experts", "num_local_experts", "n_routed_experts", default=0) or 0)
    arch: dict[str, Any] = dict(
        model_type=model_type, hidden_size=hidden, num_layers=layers, num_heads=heads, num_kv_heads=kv_heads,
        head_dim=head_dim, intermediate_size=intermediate, vocab_size=vocab,
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", model_type in _TIED_BY_DEFAULT)),
        qkv_bias=qkv_bias, o_bias=o_bias, mlp_bias=bool(cfg.get("mlp_bias", False)) or model_type in _LAYERNORM_BIAS,
        gated_mlp=gated, norms_per_layer=_NORMS_PER_LAYER.get(model_type, 2), norm_bias=model_type in _LAYERNORM_BIAS,
        qk_norm=qk_norm, max_position_embeddings=cfg.get("max_position_embeddings") or cfg.get("n_positions"),
        learned_positions=int(cfg.get("n_positions") or 0) if model_type == "gpt2" else 0,
        source=source,
    )
    if num_experts:
        moe_inter = int(_first(cfg, "moe_intermediate_size", default=None) or intermediate)
        dense_layers = int(cfg.get("first_k_dense_replace") or 0)
        mlp_only = cfg.get("mlp_only_layers") or []
        step = int(cfg.get("decoder_sparse_step") or 1)
        if mlp_only or step > 1:
            dense_layers += sum(1 for i in range(layers) if i in mlp_only or (i + 1) % step != 0)
        shared = int(cfg.get("shared_expert_intermediate_size") or 0)
        if not shared and cfg.get("n_shared_experts"):
            shared = int(cfg["n_shared_experts"]) * moe_inter
        arch.update(
            num_experts=num_experts,
            experts_per_token=int(_first(cfg, "num_experts_per_tok", "num_experts_per_token", "top_k", default=2)),
            moe_intermediate_size=moe_inter, shared_expert_intermediate_size=shared,
            shared_expert_gate=model_type == "qwen2_moe" and shared > 0, dense_layers=dense_layers,
        )
    if cfg.get("kv_lora_rank"):
        arch["mla"] = {
            "q_lora_rank": int(cfg.get("q_lora_rank") or 0),
            "kv_lora_rank": int(cfg["kv_lora_rank"]),
            "qk_nope_head_dim": int(cfg.get("qk_nope_head_dim") or 128),
            "qk_rope_head_dim": int(cfg.get("qk_rope_head_dim") or 64),
            "v_head_dim": int(cfg.get("v_head_dim") or 128),
        }
    arch["vision"] = from_vlm_config(full, hidden)
    return Architecture(**arch)


# ---- counting -------------------------------------------------------------------------------------
def attention_parameters(a: Architecture) -> int:
    h = a.hidden_size
    if a.mla:
        m = a.mla
        qk_head = m["qk_nope_head_dim"] + m["qk_rope_head_dim"]
        if m["q_lora_rank"]:
            q = h * m["q_lora_rank"] + m["q_lora_rank"] + m["q_lora_rank"] * a.num_heads * qk_head
        else:
            q = h * a.num_heads * qk_head
        kv = h * (m["kv_lora_rank"] + m["qk_rope_head_dim"]) + m["kv_lora_rank"]
        kv += m["kv_lora_rank"] * a.num_heads * (m["qk_nope_head_dim"] + m["v_head_dim"])
        o = a.num_heads * m["v_head_dim"] * h
        return q + kv + o
    n = h * a.q_dim + 2 * h * a.kv_dim + a.q_dim * h
    if a.qkv_bias:
        n += a.q_dim + 2 * a.kv_dim
    if a.o_bias:
        n += h
    if a.qk_norm == "head":
        n += 2 * a.head_dim
    elif a.qk_norm == "full":
        n += a.q_dim + a.kv_dim
    return n


def mlp_parameters(a: Architecture, intermediate: int) -> int:
    h = a.hidden_size
    mats = 3 if a.gated_mlp else 2
    n = mats * h * intermediate
    if a.mlp_bias:
        n += (mats - 1) * intermediate + h
    return n


def expert_parameters(a: Architecture) -> int:
    """One routed expert's weights."""
    return mlp_parameters(a, a.moe_intermediate_size)


def moe_layer_parameters(a: Architecture) -> int:
    h = a.hidden_size
    n = a.num_experts * expert_parameters(a) + a.num_experts * h  # experts + router
    if a.shared_expert_intermediate_size:
        n += mlp_parameters(a, a.shared_expert_intermediate_size)
        if a.shared_expert_gate:
            n += h
    if a.model_type in ("deepseek_v3", "glm4_moe"):
        n += a.num_experts  # e_score_correction_bias
    return n


def norm_parameters(a: Architecture) -> int:
    per_norm = a.hidden_size * (2 if a.norm_bias else 1)
    n = a.norms_per_layer * per_norm
    if a.mla:
        n += a.mla["kv_lora_rank"] + (a.mla["q_lora_rank"] or 0)
    return n


def layer_parameters(a: Architecture, moe: bool) -> int:
    mlp = moe_layer_parameters(a) if moe else mlp_parameters(a, a.intermediate_size)
    return attention_parameters(a) + mlp + norm_parameters(a)


def embedding_parameters(a: Architecture) -> int:
    return a.vocab_size * a.hidden_size + a.learned_positions * a.hidden_size


def lm_head_parameters(a: Architecture) -> int:
    return 0 if a.tie_word_embeddings else a.vocab_size * a.hidden_size


def count_parameters(a: Architecture) -> int:
    """Every parameter of the model (what `sum(p.numel() for p in model.parameters())` gives)."""
    dense = a.num_layers - a.moe_layers
    total = dense * layer_parameters(a, moe=False) + a.moe_layers * layer_parameters(a, moe=True)
    total += embedding_parameters(a) + lm_head_parameters(a)
    total += a.hidden_size * (2 if a.norm_bias else 1)  # final norm
    if a.vision is not None:
        total += a.vision.parameters
    return total


def count_active_parameters(a: Architecture) -> int:
    """Parameters that touch each token (MoE: only the routed experts), the N in FLOPs ≈ 6N per token."""
    total = count_parameters(a)
    if not a.is_moe:
        return total
    idle = a.moe_layers * (a.num_experts - a.experts_per_token) * expert_parameters(a)
    return total - idle


def linear_parameters(a: Architecture) -> int:
    """Weights of the decoder's linear layers (what 4-bit quantization compresses; a VLM's vision half stays 16-bit)."""
    return count_parameters(a) - embedding_parameters(a) - lm_head_parameters(a) - (
        a.num_layers * norm_parameters(a) + a.hidden_size
    ) - (a.vision.parameters if a.vision is not None else 0)


def lora_parameters(a: Architecture, r: int, target_modules: list[str] | str = "all-linear") -> int:
    """Trainable LoRA weights: r × (in + out) for every targeted linear layer.

    "all-linear" follows PEFT 0.21: every nn.Linear except the output layer; for most MoE families also
    the fused expert tensors and the router (which makes those adapters large)."""
    h = a.hidden_size
    if a.mla:
        m = a.mla
        qk_head = m["qk_nope_head_dim"] + m["qk_rope_head_dim"]
        attn = {"q_proj": (h, a.num_heads * qk_head)} if not m["q_lora_rank"] else {
            "q_a_proj": (h, m["q_lora_rank"]), "q_b_proj": (m["q_lora_rank"], a.num_heads * qk_head)}
        attn.update({"kv_a_proj_with_mqa": (h, m["kv_lora_rank"] + m["qk_rope_head_dim"]),
                     "kv_b_proj": (m["kv_lora_rank"], a.num_heads * (m["qk_nope_head_dim"] + m["v_head_dim"])),
                     "o_proj": (a.num_heads * m["v_head_dim"], h)})
    else:
        attn = {"q_proj": (h, a.q_dim), "k_proj": (h, a.kv_dim), "v_proj": (h, a.kv_dim), "o_proj": (a.q_dim, h)}

    def mlp(inter: int) -> dict[str, tuple[int, int]]:
        if not a.gated_mlp:
            return {"up_proj": (h, inter), "down_proj": (inter, h)}
        return {"gate_proj": (h, inter), "up_proj": (h, inter), "down_proj": (inter, h)}

    def pick(mods: dict[str, tuple[int, int]]) -> int:
        names = mods if target_modules == "all-linear" else {k: v for k, v in mods.items() if k in target_modules}
        return sum(r * (i + o) for i, o in names.values())

    dense_layers = a.num_layers - a.moe_layers
    all_linear = target_modules == "all-linear"
    wraps_experts = all_linear and a.model_type in _PEFT_WRAPS_EXPERTS
    skip_dense = wraps_experts and a.model_type in _PEFT_SKIPS_DENSE_MLP
    total = a.num_layers * pick(attn)
    if not skip_dense:
        total += dense_layers * pick(mlp(a.intermediate_size))
    if a.moe_layers:
        if a.shared_expert_intermediate_size and not skip_dense:
            total += a.moe_layers * pick(mlp(a.shared_expert_intermediate_size))
            if a.shared_expert_gate and all_linear:
                total += a.moe_layers * r * (h + 1)
        if wraps_experts:
            # gate_up (E, 2i, h) gets A (2rE x h) and B (2i x 2rE); down (E, h, i) gets A (rE x i) and
            # B (h x rE); the router (E x h) gets r x (h + E).
            e, i = a.num_experts, a.moe_intermediate_size
            experts = 2 * r * e * (h + 2 * i) + r * e * (i + h) if a.gated_mlp else 2 * r * e * (h + i)
            total += a.moe_layers * (experts + r * (h + e))
    return total


# ---- last resort ----------------------------------------------------------------------------------
_SIZE = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)\s*([BbMm])(?![A-Za-z])")


def params_from_name(name: str) -> float | None:
    """'Llama-3-70B' -> 70e9, 'SmolLM2-135M' -> 135e6, 'Qwen3-30B-A3B' -> 30e9 (total). None when absent."""
    base = name.rsplit("/", 1)[-1]
    found = []
    for m in _SIZE.finditer(base.replace("_", "-")):
        value = float(m.group(1)) * (1e9 if m.group(2) in "Bb" else 1e6)
        prefix = base[max(0, m.start() - 1):m.start()]
        found.append((prefix in ("A", "a"), value))
    totals = [v for active, v in found if not active]
    if totals:
        return max(totals)
    return None


def guess_architecture(name: str) -> Architecture | None:
    """A Llama-shaped stand-in of the size written in the name: used only when no config can be read."""
    n = params_from_name(name)
    if not n:
        return None
    # Shape rules of thumb from Llama/Qwen/SmolLM families: hidden grows with size, 64-128-dim heads,
    # embeddings a modest share of small models. The layer count then makes the total match the name.
    if n < 0.8e9:
        hidden = max(256, 64 * round((n / 400) ** 0.5 / 64))
        vocab, head_dim = 49152, 64
    else:
        hidden = 2048 if n < 2.5e9 else 3072 if n < 5e9 else 4096 if n < 10e9 else 5120 if n < 20e9 else 8192
        vocab, head_dim = 128256, 128
    tied = n < 5e9
    inter = int(hidden * 3.5)
    heads = max(1, hidden // head_dim)
    kv_heads = max(1, heads // 4)
    per_layer = 2 * hidden * hidden + 2 * hidden * kv_heads * head_dim + 3 * hidden * inter + 2 * hidden
    embed = vocab * hidden * (1 if tied else 2)
    layers = max(1, round(max(n - embed, per_layer) / per_layer))
    return Architecture(
        model_type="guess", hidden_size=hidden, num_layers=layers, num_heads=heads, num_kv_heads=kv_heads,
        head_dim=head_dim, intermediate_size=inter, vocab_size=vocab, tie_word_embeddings=tied,
        source=f"guessed from the name {name!r}",
    )
