"""`tuneforge demo --pipeline`'s path and JSON shape, fast: the tiny Llama for SmolLM2, 2 steps per stage, f16.

The full demo (SmolLM2-135M, 60 SFT + 30 DPO steps, Q4_K_M) takes minutes; this runs the same code
(actions.demo.run_pipeline_demo: the shipped data and preference pairs, the pipeline driver, the GGUF stage)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import test_cache_dir
from tuneforge.actions.demo import run_pipeline_demo
from tuneforge.paths import data_path


@pytest.mark.slow  # three stages and an export: about a minute on an idle machine
def test_the_pipeline_demo_runs_sft_dpo_gguf_and_reports_each_stage(tiny_llama_dir: Path, monkeypatch):
    monkeypatch.setenv("TUNEFORGE_TOOLCHAIN_DIR", str(test_cache_dir() / "toolchain"))
    monkeypatch.setenv("TUNEFORGE_PIPELINE_POLL_SECONDS", "0.3")
    result = run_pipeline_demo(model_dir=str(tiny_llama_dir), steps=2, dpo_steps=2, quants=["f16"], prompts=2,
                               poll_seconds=0.3)
    assert result.state == "COMPLETED", result.message
    assert [(s.kind, s.stage) for s in result.stages] == [("sft", 0), ("dpo", 1), ("gguf", 2)]
    sft, dpo, gguf = result.stages
    assert set(sft.metrics["eval_loss"]) == {"before", "after"} and set(sft.metrics["heldout_exact"]) == {"before", "after"}
    assert set(dpo.metrics["eval_reward_accuracy"]) == {"before", "after"}
    assert [f["quant"] for f in result.gguf] == ["f16"] and Path(result.gguf[0]["path"]).is_file()
    assert result.gguf[0]["bytes"] > 0 and "passed" in result.gguf[0]["checks"]
    assert result.seconds > 0


def test_the_shipped_preference_pairs_share_no_prompt_with_training():
    import json

    def prompts(name: str) -> set[str]:
        rows = [json.loads(x) for x in data_path("demo", name).read_text().splitlines() if x.strip()]
        return {r.get("prompt") or r["messages"][0]["content"] for r in rows}

    evals = prompts("preferences_eval.jsonl")
    heldout = {h["prompt"] for h in json.loads(data_path("demo", "heldout.json").read_text())}
    assert evals == heldout and not evals & (prompts("preferences.jsonl") | prompts("train.jsonl"))
    assert prompts("preferences.jsonl") <= prompts("train.jsonl")


def test_the_demo_asks_for_q4_k_m_and_keeps_q8_0_when_q4_k_m_fails_the_gate():
    from tuneforge.actions.demo import pipeline_demo_spec
    from tuneforge.pipelines.spec import parse_spec

    spec = parse_spec(pipeline_demo_spec("model-folder"), "demo")
    gguf = spec.stages[-1]
    assert gguf.kind == "gguf" and gguf.quants == ["q4_k_m"] and gguf.fallback == ["q8_0"] and gguf.min_agreement is None
