"""A vision-language model end to end, offline: a tiny random SmolVLM (Idefics3) with SmolLM2's real tokenizer
and generated images is validated, planned, trained with SFT (loss falls, assistant-only, image tokens out of
the loss, the vision tower frozen) and DPO through the local backend, and exported to a language-model GGUF
plus an mmproj GGUF, both verified in llama.cpp, which answers about two images as transformers does."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import test_cache_dir
from tuneforge.config import RunConfig
from tuneforge.doctor import validate
from tuneforge.gguf.mmproj import image_verdict
from tuneforge.gguf.vlm_worker import mtmd_prompt
from tuneforge.jobs.service import JobService
from tuneforge.planner import plan
from tuneforge.progress import parse_event
from vlm_fixtures import build_tiny_vlm, write_llava_rows, write_rlaif_rows

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


@pytest.fixture(scope="session")
def tiny_vlm_dir(smollm2_dir: Path) -> Path:
    return build_tiny_vlm(test_cache_dir() / "tiny-idefics3-h256-v2", smollm2_dir)


def _run(config: dict):
    service = JobService()
    job = service.submit_training(RunConfig.model_validate(config))
    done = service.wait(job.job_id, timeout=600, poll_seconds=0.5)
    log = service.logs(job.job_id, tail=None)
    events = [e for e in map(parse_event, log) if e]
    return done, log, events


def test_vision_rows_become_the_parts_trl_reads() -> None:
    sys.path.insert(0, str(TEMPLATES))
    try:
        from _vision import to_parts
    finally:
        sys.path.remove(str(TEMPLATES))
    marked = to_parts([{"role": "user", "content": "<image>What is it?"}, {"role": "assistant", "content": "A cat."}], 1)
    assert marked[0]["content"] == [{"type": "image", "text": None}, {"type": "text", "text": "What is it?"}]
    unmarked = to_parts([{"role": "user", "content": "Two?"}, {"role": "assistant", "content": "Yes."}], 2)
    assert [p["type"] for p in unmarked[0]["content"]] == ["image", "image", "text"]
    assert unmarked[1]["content"] == [{"type": "text", "text": "Yes."}]


def test_llama_cpp_gets_the_image_where_the_processor_puts_it_without_wrapping_it_twice() -> None:
    from types import SimpleNamespace as NS

    qwen = NS(image_token="<|image_pad|>", tokenizer=NS())
    assert mtmd_prompt("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Hi", qwen, "<M>") == "<|im_start|>user\n<M>Hi"
    gemma = NS(image_token="<image_soft_token>", boi_token="<start_of_image>", tokenizer=NS())
    assert mtmd_prompt("<start_of_turn>user\n<start_of_image>Hi", gemma, "<M>") == "<start_of_turn>user\n\n\n<M>\n\nHi"
    idefics = NS(image_token="<image>", tokenizer=NS())
    assert mtmd_prompt("User:<image>Hi<end_of_utterance>", idefics, "<M>") == "User:<M>Hi<end_of_utterance>"


def _asked(diff: float, effect: float, positions: int = 47) -> dict:
    one = {"positions": positions, "hf_positions": 47, "max_abs_logit_diff": diff, "top1_agrees": True}
    return {"loads": True, "vision": True, "images": {"red": one, "blue": dict(one)},
            "image_effect": {"llama_cpp": effect, "transformers": effect}}


def test_an_image_answer_passes_only_when_llama_cpp_sees_the_image_as_transformers_does() -> None:
    assert image_verdict(_asked(0.001, 2.0), quantized=False) == (True, None)
    ok, why = image_verdict(_asked(0.001, 0.0005), quantized=False)
    assert not ok and "the image does not reach the model" in why
    ok, why = image_verdict(_asked(0.4, 2.0), quantized=False)
    assert not ok and "differs from transformers'" in why
    assert image_verdict(_asked(0.4, 2.0), quantized=True) == (True, None)  # a quantized tiny random model drifts
    ok, why = image_verdict(_asked(0.001, 2.0, positions=45), quantized=True)
    assert not ok and "45 positions, transformers in 47" in why
    ok, why = image_verdict({"loads": False, "error": "libmtmd could not load the mmproj file"}, quantized=False)
    assert not ok and "could not load the mmproj" in why


@pytest.mark.slow
def test_a_tiny_vlm_is_validated_planned_trained_and_exported(tiny_vlm_dir: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEFORGE_NO_TRACKIO", "1")
    data = write_llava_rows(tmp_path / "llava", rows=40)
    report = validate(str(data), model=str(tiny_vlm_dir), cache=False)
    assert report.ready and report.images.decoded == 40 and report.images.max_row_image_tokens > 4

    p = plan(str(tiny_vlm_dir), "sft", dataset=str(data), backend="local")
    assert any(n.startswith("Vision-language model (idefics3)") for n in p.notes)
    assert any("counted by the model's processor" in n for n in p.notes)
    assert p.seq_len >= report.token_stats.max + report.images.max_row_image_tokens

    out = tmp_path / "sft"
    done, log, events = _run({"model": str(tiny_vlm_dir), "method": "sft", "dataset": {"path": str(data)},
                              "output_dir": str(out), "train": {"max_steps": 12, "learning_rate": 5e-3,
                                                                "per_device_batch_size": 4, "logging_steps": 1}})
    assert done.stage == "COMPLETED", "\n".join(log[-30:])
    losses = [e["loss"] for e in events if e["type"] == "progress" and "loss" in e]
    assert len(losses) == 12 and sum(losses[-3:]) / 3 < losses[0] - 0.5, losses
    result = json.loads((out / "result.json").read_text())
    assert result["assistant_only_loss"] is True and result["vision"]["tower_frozen_parameters"] > 0
    assert result["eval_loss_after"] < result["eval_loss_before"]
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert "language_model|text_model" in adapter["target_modules"]
    from safetensors import safe_open

    with safe_open(str(out / "adapter" / "adapter_model.safetensors"), "pt") as f:
        names = list(f.keys())
    assert names and not [n for n in names if "vision_model" in n or "connector" in n]

    pairs = write_rlaif_rows(tmp_path / "rlaif")
    done, log, events = _run({"model": str(tiny_vlm_dir), "method": "dpo",
                              "dataset": {"path": str(pairs), "column_map": {"prompt": "question"}},
                              "output_dir": str(tmp_path / "dpo"), "train": {"max_steps": 4, "learning_rate": 5e-3,
                                                                             "per_device_batch_size": 4, "logging_steps": 1}})
    assert done.stage == "COMPLETED", "\n".join(log[-30:])
    assert [e for e in events if e["type"] == "progress" and "loss" in e]

    from tuneforge.actions.export import export_gguf

    monkeypatch.setenv("TUNEFORGE_TOOLCHAIN_DIR", str(test_cache_dir() / "toolchain"))
    gguf = export_gguf(str(out / "adapter"), base=str(tiny_vlm_dir), quants=["f16", "q8_0"], out=str(tmp_path / "gguf"))
    assert gguf.passed, gguf.notes
    by_quant = {f.quant: f for f in gguf.files}
    f16, mm = by_quant["f16"].checks, by_quant["mmproj-f16"].checks
    assert f16["max_abs_logit_diff"] < 0.05 and f16["top1_agreement"] == 1.0 and by_quant["q8_0"].checks["generates"]
    assert mm["projector_type"] == "idefics3" and mm["elements"] == mm["hf_vision_elements"] > 0
    image = f16["image"]  # libmtmd answered about the red and the blue picture as transformers did
    assert f16["image_answer_checked"] and image["vision"] and set(image["images"]) == {"red", "blue"}
    for one in image["images"].values():
        assert one["positions"] == one["hf_positions"] > 16 and one["top1_agrees"] and one["max_abs_logit_diff"] < 0.05
        assert one["answer_tokens_agree"] >= 1 and one["answer"]
    assert image["image_effect"]["llama_cpp"] > 10 * max(o["max_abs_logit_diff"] for o in image["images"].values())
    assert sum("through libmtmd" in n for n in gguf.notes) == 2
    modelfile = Path(gguf.modelfile).read_text()
    assert "FROM ./" in modelfile and "llama-mtmd-cli" in modelfile and gguf.source["ollama_vision"] is False


@pytest.mark.slow
def test_a_full_fine_tune_trains_the_projector_and_leaves_the_vision_tower_as_it_was(
        tiny_vlm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from safetensors.torch import load_file

    monkeypatch.setenv("TUNEFORGE_NO_TRACKIO", "1")
    data = write_llava_rows(tmp_path / "llava", rows=12)
    out = tmp_path / "full"
    done, log, _ = _run({"model": str(tiny_vlm_dir), "method": "sft", "dataset": {"path": str(data)}, "output_dir": str(out),
                         "peft": {"kind": "none"}, "train": {"max_steps": 3, "learning_rate": 1e-3, "per_device_batch_size": 2,
                                                             "logging_steps": 1, "gradient_checkpointing": True}})
    assert done.stage == "COMPLETED", "\n".join(log[-30:])
    before, after = load_file(str(tiny_vlm_dir / "model.safetensors")), load_file(str(out / "model" / "model.safetensors"))

    def changed(part: str) -> list[bool]:
        return [not torch.equal(before[k], after[k]) for k in before if part in k]

    assert changed("vision_model") and not any(changed("vision_model"))
    assert any(changed("connector")) and any(changed("text_model.layers"))
