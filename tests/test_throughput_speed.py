"""The speed block: chosen in one place (templates/_speed.py), each GPU-side knob falling back on this CPU with
one clear event line, padding-free batches exact on CPU attention, and the config refusing unknown knobs."""

from __future__ import annotations

import sys

import pytest
from tuneforge import paths
from tuneforge.config.schema import RunConfig
from tuneforge.errors import ConfigError
from tuneforge.progress import parse_event

sys.path.insert(0, str(paths.templates_dir()))
import _model
import _speed
import _trainer


def events(capsys) -> list[str]:
    return [e["message"] for e in map(parse_event, capsys.readouterr().out.splitlines()) if e and e["type"] == "status"]


def config(**speed) -> dict:
    return RunConfig.model_validate({"model": "m", "dataset": {"path": "d"}, "speed": speed}).model_dump(mode="json")


def test_cpu_defaults_group_by_length_padding_free_and_compact_head_with_checkpointing_off(capsys):
    chosen = _speed.choose(config(), on_gpu=False, model_type="llama")
    assert chosen == {"group_by_length": False, "padding_free": True, "compact_lm_head": True, "cpu_threads": None,
                      "liger": False, "attention": "sdpa", "optimizer": "adamw_torch", "gradient_checkpointing": False,
                      "engine": "transformers"}
    said = events(capsys)
    assert len(said) == 1 and said[0].startswith("speed: padding_free=True, group_by_length=False")
    args = _trainer.trainer_args(config(), paths.home(), "bf16", False, False, 0, speed=chosen)
    assert "train_sampling_strategy" not in args and args["include_num_input_tokens_seen"] == "all"
    assert args["gradient_checkpointing"] is False and args["optim"] == "adamw_torch"


def test_gpu_knobs_asked_for_on_a_cpu_fall_back_each_with_one_event(capsys):
    cfg = config(liger=True, attention="flash_attention_2", engine="unsloth", fused_optimizer=True, cpu_threads=1)
    cfg["packing"] = True
    chosen = _speed.choose(cfg, on_gpu=False, model_type="llama")
    said = events(capsys)
    assert chosen["liger"] is False and any(m.startswith("speed: liger unavailable") for m in said)
    assert chosen["attention"] == "sdpa" and any("flash_attention_2 unavailable (no CUDA GPU); using sdpa" in m for m in said)
    assert chosen["engine"] == "transformers" and any("unsloth unavailable (no CUDA GPU)" in m for m in said)
    assert chosen["optimizer"] == "adamw_torch_fused"  # torch's fused AdamW runs on CPUs too
    assert chosen["padding_free"] is False and chosen["cpu_threads"] == 1  # packing is padding-free already
    assert chosen["group_by_length"] is True  # padded batches: rows of similar length together
    args = _trainer.trainer_args(cfg, paths.home(), "bf16", False, False, 0, speed=chosen)
    assert args["train_sampling_strategy"] == "group_by_length" and args["include_num_input_tokens_seen"] == "non_padding"


def test_on_a_gpu_without_the_packages_the_auto_knobs_stay_quiet_and_asked_ones_say_why(monkeypatch, capsys):
    monkeypatch.setattr(_speed, "installed", lambda module: False)
    chosen = _speed.choose(config(), on_gpu=True, model_type="llama")
    assert chosen["liger"] is False and chosen["attention"] == "sdpa" and chosen["engine"] == "transformers"
    assert chosen["optimizer"] == "adamw_torch_fused" and chosen["gradient_checkpointing"] is True
    assert chosen["compact_lm_head"] is False  # TRL compacts on CUDA itself
    assert len(events(capsys)) == 1
    chosen = _speed.choose(config(liger=True, engine="unsloth", attention="flash_attention_2"), on_gpu=True, model_type="llama")
    said = " | ".join(events(capsys))
    assert "liger_kernel is not installed: pip install liger-kernel" in said
    assert "unsloth is not installed: pip install unsloth" in said and "flash_attn is not installed" in said
    monkeypatch.setattr(_speed, "installed", lambda module: True)
    chosen = _speed.choose(config(engine="auto"), on_gpu=True, model_type="gpt_neox")
    assert chosen["engine"] == "transformers" and chosen["liger"] is False  # neither patches this architecture
    assert chosen["attention"] == "flash_attention_2"


def test_missing_unsloth_and_liger_fall_back_with_an_event(capsys):
    cfg = config()
    cfg["model"], cfg["peft"] = "nowhere", {"kind": "lora", "r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"}
    assert _model.load_unsloth(cfg, "bf16", 64) is None
    assert _speed.apply_liger(object()) is False
    said = events(capsys)
    assert said[0].startswith("speed: unsloth unavailable (") and said[0].endswith("); using transformers")
    assert said[1].startswith("speed: liger unavailable (") and said[1].endswith("); plain PyTorch layers")


def test_compact_lm_head_scores_only_labelled_positions_on_cpu():
    import torch
    from trl.trainer import utils as trl_utils

    assert _speed.compact_lm_head() is True
    assert trl_utils._use_triton(torch.device("cpu")) is True
    assert _speed.compact_lm_head() is True  # idempotent: wrapped once


def test_the_speed_block_refuses_unknown_knobs():
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict({"model": "m", "dataset": {"path": "d"}, "speed": {"turbo": True}})
    assert err.value.code.startswith("config.") and "turbo" in str(err.value)


def test_padding_free_batches_give_the_padded_loss_with_cpu_attention(tiny_llama_dir):
    """TRL's padding-free collator + transformers' packed-sequence masks (sdpa, eager) = the padded batch's loss."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    rows = [{"input_ids": list(range(5, 5 + n)), "labels": [-100] * 3 + list(range(8, 5 + n))} for n in (9, 14, 6)]
    for attn in ("sdpa", "eager"):
        model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), attn_implementation=attn).eval()
        losses = []
        for padding_free in (False, True):
            batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=padding_free)(rows)
            batch = {k: v for k, v in batch.items() if k in ("input_ids", "labels", "attention_mask", "position_ids")}
            with torch.no_grad():
                losses.append(float(model(**batch, use_cache=False).loss))  # as TRL trains: no cache
        assert losses[0] == pytest.approx(losses[1], rel=1e-5), attn


def test_default_saves_are_throttled_but_the_last_step_and_named_save_steps_are_kept(monkeypatch):
    from transformers import TrainerControl, TrainerState

    assert _trainer.save_throttle_callback({"train": {"save_steps": 5}}) is None
    clock = [1000.0]
    monkeypatch.setattr(_trainer.time, "time", lambda: clock[0])
    cb = _trainer.save_throttle_callback({"train": {"save_steps": None}}, min_interval_s=60)
    state, control = TrainerState(max_steps=20), TrainerControl()
    cb.on_train_begin(None, state, control)
    saved = []
    for step in range(1, 21):
        clock[0] += 10  # 10 s a step; the default schedule asks for a save every 2 steps
        state.global_step, control.should_save = step, step % 2 == 0
        cb.on_step_end(None, state, control)
        if control.should_save:
            saved.append(step)
    assert saved == [6, 12, 18, 20]
