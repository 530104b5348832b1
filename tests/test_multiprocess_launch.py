"""The multi-process path for real: the SFT template relaunching itself under `accelerate launch` (what
multi-GPU flavors do), here as 2 CPU processes (gloo DDP), and the FSDP / DeepSpeed ZeRO-3 launch
configurations validated by accelerate's own config classes and launch checks."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tuneforge import paths
from tuneforge.config.schema import RunConfig
from tuneforge.progress import parse_event

sys.path.insert(0, str(paths.templates_dir()))
import _launch


def validated_launch(tmp_path: Path, strategy: str, processes: int = 4):
    """accelerate's reading of the generated config: (ClusterConfig, launch args after its own validation)."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import (
        _validate_launch_command,
        launch_command_parser,
    )

    path = tmp_path / f"accelerate_{strategy}.json"
    path.write_text(json.dumps(_launch.accelerate_config(strategy, processes)), encoding="utf-8")
    cluster = load_config_from_file(str(path))
    args = launch_command_parser().parse_args(["--config_file", str(path), "train.py"])
    args, _defaults, _mp = _validate_launch_command(args)
    return cluster, args


def test_the_fsdp_and_ddp_configurations_are_read_and_validated_by_accelerate(tmp_path):
    cluster, args = validated_launch(tmp_path, "fsdp")
    assert cluster.distributed_type == "FSDP" and cluster.num_processes == 4
    assert args.use_fsdp and args.fsdp_version == 2 and args.fsdp_auto_wrap_policy == "TRANSFORMER_BASED_WRAP"
    assert args.fsdp_state_dict_type == "SHARDED_STATE_DICT" and args.num_processes == 4
    cluster, args = validated_launch(tmp_path, "ddp", 2)
    assert cluster.distributed_type == "MULTI_GPU" and args.multi_gpu and not args.use_fsdp


def test_the_deepspeed_zero3_configuration_is_read_by_accelerate_and_by_deepspeed_when_installed(tmp_path):
    cluster, args = validated_launch(tmp_path, "deepspeed", 8)
    assert cluster.distributed_type == "DEEPSPEED" and cluster.deepspeed_config["zero_stage"] == 3
    assert args.use_deepspeed and args.zero_stage == 3 and args.num_processes == 8
    if importlib.util.find_spec("deepspeed") is None:
        pytest.skip("deepspeed is not installed: the ZeRO-3 config was checked by accelerate's launcher only")
    from accelerate.utils import DeepSpeedPlugin

    plugin = DeepSpeedPlugin(zero_stage=3, offload_optimizer_device="none", offload_param_device="none",
                             zero3_init_flag=True, zero3_save_16bit_model=True)
    assert plugin.deepspeed_config["zero_optimization"]["stage"] == 3


def test_deepspeed_without_the_package_falls_back_to_fsdp_with_an_event(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a))
    assert _launch.launch_strategy("deepspeed") == "fsdp"
    events = [parse_event(line) for line in capsys.readouterr().out.splitlines()]
    assert any(e and "deepspeed unavailable" in e["message"] and "using fsdp" in e["message"] for e in events)
    assert _launch.launch_strategy("ddp") == "ddp" and _launch.launch_strategy(None) == "ddp"


@pytest.mark.slow
def test_two_gloo_processes_train_through_the_template_relaunch_with_one_stream_and_one_result(tiny_llama_dir, tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"Code for item {i}?"},
                          {"role": "assistant", "content": f"ITEM-{i % 4} done."}]} for i in range(48)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config = RunConfig.model_validate({
        "model": str(tiny_llama_dir), "dataset": {"path": str(data), "eval_fraction": 0.0},
        "peft": {"kind": "lora", "r": 8, "alpha": 16, "dropout": 0.0},
        "train": {"learning_rate": 5e-3, "max_steps": 8, "per_device_batch_size": 2, "logging_steps": 1,
                  "warmup_ratio": 0.0, "lr_scheduler": "constant", "precision": "fp32"},
        "max_length": 64, "launch": {"gpus": 2, "strategy": "ddp"}, "output_dir": "outputs",
    }).write(tmp_path / "run.json")
    env = dict(os.environ, TUNEFORGE_NO_TRACKIO="1", HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run([sys.executable, str(paths.template_path("sft")), "--config", str(config)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    events = [e for e in map(parse_event, done.stdout.splitlines()) if e]
    messages = [e["message"] for e in events if e["type"] == "status"]
    assert messages.count("launching 2 processes (ddp)") == 1
    assert messages.count("training") == 1  # rank 0 only
    progress = [e for e in events if e["type"] == "progress"]
    assert [e["step"] for e in progress] == list(range(1, 9))  # one stream: each step once
    assert progress[-1]["loss"] < progress[0]["loss"]
    results = [e for e in events if e["type"] == "result"]
    assert len(results) == 1 and results[0]["processes"] == 2 and results[0]["steps"] == 8
    result = json.loads((tmp_path / "outputs" / "result.json").read_text())
    assert result["processes"] == 2
    # the file and the event are the same report: rank 0 wrote both, once
    assert {k: v for k, v in results[0].items() if k != "type"} == {k: v for k, v in result.items() if k != "log_history"}
    # 8 steps x 2 processes x 2 rows: both ranks trained (tokens are counted across processes)
    assert result["tokens_trained"] > 8 * 2 * 2 * 5
    assert (tmp_path / "outputs" / "adapter" / "adapter_config.json").is_file()
    assert [p.name for p in (tmp_path / "outputs").iterdir() if p.name.startswith("adapter")] == ["adapter"]
