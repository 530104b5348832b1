"""`tuneforge plan` as a user runs it (in process, through `tuneforge.cli.main`): JSON for machines, a report
for people, errors as text."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_main import run_main

QWEN3_06B = {
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 1024, "intermediate_size": 3072,
    "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
    "vocab_size": 151936, "tie_word_embeddings": True,
}
ISSUE_KEYS = {"model", "params_b", "method", "peft", "flavor", "gpus", "vram_gb", "memory_gb", "tokens",
              "tokens_per_second", "hours", "cost_usd", "timeout", "timeout_seconds", "alternatives", "notes"}


@pytest.fixture
def qwen3_dir(tmp_path: Path) -> str:
    d = tmp_path / "Qwen3-0.6B"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(QWEN3_06B), encoding="utf-8")
    return str(d)


@pytest.fixture
def prefs(tmp_path: Path) -> str:
    path = tmp_path / "prefs.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(200):
            fh.write(json.dumps({"prompt": f"Explain topic {i} briefly.", "chosen": "A clear and correct answer. " * 8,
                                 "rejected": "No."}) + "\n")
    return str(path)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_main(capsys, "plan", *args)


def test_plan_json_has_the_issue_shape(capsys: pytest.CaptureFixture[str], qwen3_dir: str, prefs: str) -> None:
    out = run_cli(capsys, "--model", qwen3_dir, "--method", "dpo", "--dataset", prefs, "--max-length", "1024",
                  "--backend", "hf", "--json")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert ISSUE_KEYS <= set(plan)
    assert plan["method"] == "dpo" and plan["rows"] == 200
    assert plan["params_b"] == pytest.approx(0.596, abs=0.01)
    assert plan["memory_gb"]["total"] > 0
    assert {"weights", "gradients", "optimizer", "activations", "logits", "reference_model", "runtime"} <= set(plan["memory_gb"])
    assert plan["vram_gb"] >= plan["memory_gb"]["total"]
    assert plan["timeout_seconds"] >= 900 and plan["timeout"].endswith(("m", "h"))
    assert plan["cost_usd"] == pytest.approx(plan["hours"] * plan["price_per_hour"], abs=0.01)
    assert all(isinstance(n, str) for n in plan["notes"]) and plan["notes"]


def test_plan_prints_a_report_for_people(capsys: pytest.CaptureFixture[str], qwen3_dir: str) -> None:
    out = run_cli(capsys, "--model", qwen3_dir, "--rows", "3000", "--peft", "lora", "--flavor", "a10g-large",
                  "--backend", "hf")
    assert out.returncode == 0, out.stderr
    assert "Peak memory" in out.stdout and "a10g-large" in out.stdout and "timeout" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_plan_budget_flag_proposes_max_steps(capsys: pytest.CaptureFixture[str], qwen3_dir: str) -> None:
    out = run_cli(capsys, "--model", qwen3_dir, "--rows", "200000", "--max-length", "2048", "--budget-usd", "0.5",
                  "--backend", "hf", "--json")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["within_budget"] is False and plan["max_steps"] >= 1


def test_plan_errors_exit_2_with_message_and_fix(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = run_cli(capsys, "--model", "nobody-here/mystery-model", "--rows", "10", "--json")
    assert out.returncode == 2
    err = json.loads(out.stdout)
    assert "Cannot size the model" in err["error"] and err["fix"]
    assert err["code"] == "plan.model_unavailable_offline"
    (tmp_path / "nocfg").mkdir()
    out = run_cli(capsys, "--model", str(tmp_path / "nocfg"), "--rows", "10")
    assert out.returncode == 2
    assert "no config.json" in " ".join(out.stderr.split()) and "Traceback" not in out.stderr
    out = run_cli(capsys, "--model", str(tmp_path / "nocfg"), "--rows", "10", "--epochs", "-1", "--json")
    assert out.returncode == 2 and "train.epochs" in json.loads(out.stdout)["error"]  # the same schema as train
    assert json.loads(out.stdout)["code"] == "config.invalid"
