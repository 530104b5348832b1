"""Pipelines on this machine: sft -> dpo -> gguf on the tiny Llama through the detached driver.

The driver is killed with SIGKILL mid-pipeline and the next status call restarts it from the record
(the finished stage is not run again); a failed middle stage is resumed without redoing the first.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import test_cache_dir
from tuneforge.actions.pipeline import pipeline_status, resume_pipeline, run_pipeline
from tuneforge.errors import ConfigError
from tuneforge.pipelines.spec import load_spec, parse_spec
from tuneforge.records import JobStore
from tuneforge.records.pipelines import PipelineStore

TRAIN = {"max_steps": 2, "per_device_batch_size": 2, "logging_steps": 1, "learning_rate": 1e-3}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def sft_rows(n: int) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"What is {i} + 1?"}, {"role": "assistant", "content": str(i + 1)}]}
            for i in range(n)]


def pref_rows(n: int) -> list[dict]:
    return [{"prompt": f"Is {i} a nice number?", "chosen": f"Yes, {i} is lovely.", "rejected": "No. Bad bad bad."}
            for i in range(n)]


def pipeline_file(tmp_path: Path, model: Path, *, dpo_data: str = "prefs.jsonl") -> Path:
    write_jsonl(tmp_path / "sft.jsonl", sft_rows(12))
    write_jsonl(tmp_path / "prefs.jsonl", pref_rows(12))
    text = f"""name: tiny
model: {model}
config:
  peft: {{kind: lora, r: 8, alpha: 16, dropout: 0.0}}
  train: {json.dumps(TRAIN)}
  max_length: 64
  eval_prompts: ["What is 2 + 1?"]
  max_new_tokens: 4
  timeout_seconds: 900
stages:
  - kind: train
    method: sft
    dataset: sft.jsonl
  - kind: train
    method: dpo
    dataset: {dpo_data}
  - kind: gguf
    quants: [f16]
"""
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def wait_for(pipeline_id: str, pred, timeout: float = 600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = pipeline_status(pipeline_id)
        if pred(status):
            return status
        time.sleep(1)
    raise AssertionError(f"pipeline {pipeline_id} never got there: {status.model_dump_json(indent=1)}")


def driver_log(pipeline_id: str) -> str:
    from tuneforge import paths

    p = paths.home() / "pipelines" / f"{pipeline_id}.log"
    return p.read_text() if p.is_file() else ""


@pytest.fixture(autouse=True)
def shared_toolchain_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEFORGE_TOOLCHAIN_DIR", str(test_cache_dir() / "toolchain"))
    monkeypatch.setenv("TUNEFORGE_PIPELINE_POLL_SECONDS", "0.3")


def test_sft_dpo_gguf_survives_kill_9_of_its_driver_and_never_redoes_a_stage(tiny_llama_dir: Path, tmp_path: Path):
    spec = load_spec(pipeline_file(tmp_path, tiny_llama_dir))
    pipeline, plan = run_pipeline(spec, backend="local")
    assert [s.label for s in plan.stages] == ["sft", "dpo", "gguf f16"]
    assert all(s.estimate.timeout_seconds == 900 for s in plan.stages[:2]) and plan.total_cost_usd == 0.0

    # kill -9 the driver while the DPO stage's job runs (or is about to)
    status = wait_for(pipeline.pipeline_id, lambda s: s.stages[0].state == "COMPLETED")
    first_driver = PipelineStore().get(pipeline.pipeline_id).driver_pid
    os.kill(first_driver, signal.SIGKILL)
    time.sleep(0.5)
    status = wait_for(pipeline.pipeline_id, lambda s: s.ended, timeout=900)
    assert status.state == "COMPLETED", driver_log(pipeline.pipeline_id) + status.model_dump_json(indent=1)
    assert status.driver_restarts >= 1 and PipelineStore().get(pipeline.pipeline_id).driver_pid != first_driver

    sft, dpo, gguf = status.stages
    assert sft.attempts == 1 and dpo.attempts == 1  # nothing was run twice
    jobs = {j.job_id: j for j in JobStore().list(limit=20)}
    assert [jobs[s.job_id].pipeline_stage for s in status.stages] == [0, 1, 2]
    assert all(jobs[s.job_id].pipeline_id == pipeline.pipeline_id for s in status.stages)
    # merge, then a new LoRA: the DPO stage trained on the SFT stage's merged model
    dpo_job = jobs[dpo.job_id]
    assert dpo_job.config.model == sft.output["source"]["model"] and dpo_job.config.model.endswith("merged")
    assert jobs[sft.job_id].config.merge is True and dpo_job.config.method == "dpo"
    assert set(dpo.output["metrics"]["eval_loss"]) == {"before", "after"}
    files = gguf.output["report"]["files"]
    assert [f["quant"] for f in files] == ["f16"] and Path(files[0]["path"]).is_file() and files[0]["bytes"] > 0


def test_a_failed_middle_stage_is_resumed_without_redoing_the_first(tiny_llama_dir: Path, tmp_path: Path):
    # the DPO stage reads SFT rows: it fails in its job; fixing the file and resuming runs only DPO (and on)
    path = pipeline_file(tmp_path, tiny_llama_dir, dpo_data="broken.jsonl")
    write_jsonl(tmp_path / "broken.jsonl", pref_rows(12))
    spec = load_spec(path)
    spec = spec.model_copy(update={"stages": spec.stages[:2]})
    pipeline, _ = run_pipeline(spec, backend="local")
    write_jsonl(tmp_path / "broken.jsonl", [{"prompt": "x", "chosen": "", "rejected": ""}] * 12)  # broken after the checks
    status = wait_for(pipeline.pipeline_id, lambda s: s.ended)
    assert status.state == "ERROR" and status.stages[0].state == "COMPLETED" and status.stages[1].state == "ERROR"
    assert status.stages[1].message and "stage 1 (dpo)" in status.message
    first_sft_job = status.stages[0].job_id

    write_jsonl(tmp_path / "broken.jsonl", pref_rows(12))
    resumed = resume_pipeline(pipeline.pipeline_id)
    assert resumed.state == "PENDING" and resumed.stages[0].state == "COMPLETED"
    status = wait_for(pipeline.pipeline_id, lambda s: s.ended)
    assert status.state == "COMPLETED", driver_log(pipeline.pipeline_id)
    assert status.stages[0].job_id == first_sft_job and status.stages[0].attempts == 1
    assert status.stages[1].state == "COMPLETED" and JobStore().get(status.stages[1].job_id).config.method == "dpo"


def test_a_bad_pipeline_file_names_the_line_and_field(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text("model: m\nstages:\n  - kind: train\n    dataset: d.jsonl\n  - kind: gguf\n    quantz: [q4_k_m]\n")
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert err.value.code == "pipeline.invalid" and f"{path}:6: stages.1.quantz: unknown key" in err.value.message
    with pytest.raises(ConfigError) as err:
        parse_spec({"model": "m", "stages": [{"kind": "train"}]})
    assert err.value.code == "pipeline.stage_without_data"
