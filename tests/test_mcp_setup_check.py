"""`tuneforge setup` and the check_setup tool's core: token source (never its value), GPUs from nvidia-smi,
the training extra, disk, the whoami check against a local Hub emulator. Real subprocesses throughout."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from hf_emulator import HubEmulator

SECRET = "hf_NeverPrintThisToken0123456789"


def setup_cli(tuneforge_cli: list[str], tmp_path: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH")}
    env["HF_HOME"] = str(tmp_path / "hf")
    env.update(env_extra)
    return subprocess.run([*tuneforge_cli, "setup", *args], capture_output=True, text=True, env=env, timeout=120)


def test_setup_json_reports_the_token_source_and_never_the_token(tuneforge_cli: list[str], tmp_path: Path, tuneforge_home: Path):
    proc = setup_cli(tuneforge_cli, tmp_path, "--json", HF_TOKEN=SECRET)
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["hf_token"] == {"present": True, "source": "HF_TOKEN", "path": None, "user": None, "whoami_error": None}
    hf = next(b for b in report["backends"] if b["name"] == "hf")
    assert hf["available"] and "not verified" in hf["reason"]
    assert report["home"] == str(tuneforge_home) and report["disk"]["path"] == str(tuneforge_home)
    assert report["disk"]["free_gb"] > 0
    assert report["train_extra"]["installed"] and report["ready_local"]
    assert {p["name"] for p in report["train_extra"]["packages"]} >= {"torch", "transformers", "trl", "peft", "datasets"}


def test_setup_for_people_shows_the_checks_and_what_to_do_without_a_token(tuneforge_cli: list[str], tmp_path: Path):
    proc = setup_cli(tuneforge_cli, tmp_path)
    assert proc.returncode == 0, proc.stderr
    for row in ("HF token", "backend local", "backend hf", "torch", "GPU", "train extra", "disk", "GGUF toolchain"):
        assert row in proc.stdout
    assert "hf auth login" in proc.stdout and "Ready for local runs." in proc.stdout


def test_a_token_file_is_found_where_huggingface_hub_keeps_it(tuneforge_cli: list[str], tmp_path: Path):
    token_path = tmp_path / "elsewhere" / "token"
    token_path.parent.mkdir()
    token_path.write_text(SECRET + "\n")
    proc = setup_cli(tuneforge_cli, tmp_path, "--json", HF_TOKEN_PATH=str(token_path))
    report = json.loads(proc.stdout)
    assert report["hf_token"]["source"] == "token file" and report["hf_token"]["path"] == str(token_path)
    assert SECRET not in proc.stdout


def _fake_nvidia_smi(bin_dir: Path, csv: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "nvidia-smi"
    exe.write_text(f"#!/bin/sh\ncat <<'EOF'\n{csv}EOF\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)


def test_gpus_come_from_nvidia_smi_and_a_cpu_torch_next_to_a_gpu_is_flagged(tuneforge_cli: list[str], tmp_path: Path):
    bin_dir = tmp_path / "bin"
    _fake_nvidia_smi(bin_dir, "NVIDIA H100 80GB HBM3, 81559, 550.54.15\nNVIDIA H100 80GB HBM3, 81559, 550.54.15\n")
    proc = setup_cli(tuneforge_cli, tmp_path, "--json", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    report = json.loads(proc.stdout)
    gpus = report["torch"]["gpus"]
    assert gpus == [{"name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559, "driver": "550.54.15"}] * 2
    if report["torch"]["build"] == "cpu":  # this test venv has the CPU wheel
        assert any("CPU build" in step for step in report["next_steps"])
    assert "NVIDIA H100" in next(b for b in report["backends"] if b["name"] == "local")["reason"]


def test_online_setup_asks_the_hub_who_the_token_belongs_to(tuneforge_cli: list[str], tmp_path: Path):
    with HubEmulator(tmp_path / "hub") as hub:
        hub.add_user(SECRET, "ada")
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"}
        good = json.loads(setup_cli(tuneforge_cli, tmp_path, "--json", "--online", HF_TOKEN=SECRET, **env).stdout)
        wrong = setup_cli(tuneforge_cli, tmp_path, "--json", "--online", HF_TOKEN="hf_wrongtoken", **env)
    assert good["hf_token"]["user"] == "ada" and good["ready_hf"]
    assert "logged in as ada" in next(b for b in good["backends"] if b["name"] == "hf")["reason"]
    bad = json.loads(wrong.stdout)
    assert bad["hf_token"]["whoami_error"] and not bad["ready_hf"]
    assert "hf_wrongtoken" not in wrong.stdout
    assert any("huggingface.co/settings/tokens" in step for step in bad["next_steps"])


def test_offline_setup_never_calls_whoami(tuneforge_cli: list[str], tmp_path: Path):
    with HubEmulator(tmp_path / "hub") as hub:
        hub.add_user(SECRET, "ada")
        proc = setup_cli(tuneforge_cli, tmp_path, "--json", HF_TOKEN=SECRET, HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0")
        calls = list(hub.requests)
    assert json.loads(proc.stdout)["hf_token"]["user"] is None
    assert calls == []


@pytest.mark.parametrize(("version", "build"), [("2.13.0+cpu", "cpu"), ("2.13.0+cu128", "cuda"), ("2.13.0+rocm6.4", "rocm")])
def test_the_torch_build_is_read_from_its_version_tag(version: str, build: str):
    from tuneforge.actions.setup import _torch_build

    assert _torch_build(version) == build
