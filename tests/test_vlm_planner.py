"""The planner on vision-language models: the vision tower and projector counted exactly (against
transformers on the meta device) for Qwen2.5-VL, Qwen3-VL, SmolVLM/Idefics3 and Gemma 3 configs written
from their public config.json; image tokens in the activation memory; the tower frozen under LoRA."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tuneforge.planner import plan
from tuneforge.planner.architecture import (
    count_parameters,
    from_config,
    lora_parameters,
)
from tuneforge.planner.memory import Workload, memory_breakdown

CONFIGS = Path(__file__).parent / "data" / "vlm" / "configs"
VISION_MODULES = {"visual", "vision_model", "vision_tower"}
PROJECTORS = {"connector", "multi_modal_projector"}


def _meta_counts(cfg: dict) -> tuple[int, int, int]:
    """(all parameters, vision tower, projector) of the model transformers builds from CFG on the meta device."""
    import torch
    from transformers import CONFIG_MAPPING, AutoModelForImageTextToText

    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(CONFIG_MAPPING[cfg["model_type"]].from_dict(cfg))
    parts = {"vision": 0, "projector": 0}
    total = 0
    for name, p in model.named_parameters():
        total += p.numel()
        words = set(name.split("."))
        if words & VISION_MODULES and not {"merger", "deepstack_merger_list"} & words:
            parts["vision"] += p.numel()
        elif words & PROJECTORS or {"merger", "deepstack_merger_list"} & words:
            parts["projector"] += p.numel()
    return total, parts["vision"], parts["projector"]


@pytest.mark.parametrize("name", ["qwen2_5_vl_3b", "qwen3_vl_2b", "smolvlm_256m", "smolvlm2_256m", "gemma3_4b"])
def test_vision_tower_and_projector_are_counted_exactly(name: str) -> None:
    cfg = json.loads((CONFIGS / f"{name}.json").read_text())
    arch = from_config(cfg)
    total, tower, projector = _meta_counts(cfg)
    assert arch.vision is not None and arch.vision.exact
    assert (arch.vision.tower_parameters, arch.vision.projector_parameters) == (tower, projector)
    assert count_parameters(arch) == total


def test_qwen2_5_vl_3b_plan_counts_the_vision_tower(tmp_path: Path) -> None:
    model = tmp_path / "qwen2.5-vl-3b"
    model.mkdir()
    shutil.copy(CONFIGS / "qwen2_5_vl_3b.json", model / "config.json")
    result = plan(str(model), "sft", rows=1000, backend="hf")
    assert result.params_b == 3.755  # the text-only count was 3.086
    note = next(n for n in result.notes if n.startswith("Vision-language model (qwen2_5_vl)"))
    assert "language model has 3.086B" in note and "vision tower 0.632B and the projector 36.7M" in note and "frozen" in note


def test_image_tokens_and_the_frozen_tower_in_memory() -> None:
    arch = from_config(json.loads((CONFIGS / "qwen2_5_vl_3b.json").read_text()))
    text_only = from_config({k: v for k, v in json.loads((CONFIGS / "qwen2_5_vl_3b.json").read_text()).items()
                             if k != "vision_config"})
    # LoRA: the same adapter as the text model (nothing on the tower), the tower's weights loaded
    assert lora_parameters(arch, 16) == lora_parameters(text_only, 16)
    lora = Workload(peft="lora", batch_size=2, seq_len=512)
    with_images = lora.model_copy(update={"images_per_sequence": 2.0})
    m_text, m_img = memory_breakdown(arch, lora), memory_breakdown(arch, with_images)
    assert m_img.activations > m_text.activations and m_img.lora == m_text.lora
    assert m_text.weights == pytest.approx(count_parameters(arch) * 2 / 1024**3, abs=1e-3)
    # full fine-tune: gradients for the language model and projector only
    full = memory_breakdown(arch, Workload(peft="none", batch_size=1, seq_len=512))
    trained = count_parameters(arch) - arch.vision.tower_parameters
    assert full.gradients == pytest.approx(trained * 2 / 1024**3, abs=1e-3)
