"""`tuneforge eval`: a base model, a finished job and (when the toolchain is here) a GGUF file side by side,
one row per model, scored by templates/_shared/metrics.py through templates/eval.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import test_cache_dir
from tuneforge.config import RunConfig
from tuneforge.errors import TuneforgeError
from tuneforge.jobs.service import JobService

PROMPTS = [{"prompt": f"Say the code for item {i}.", "reference": f"CODE-{i}-XYZ"} for i in range(4)]
METRICS = ["exact_match", "contains", "rouge_l", "perplexity", {"name": "regex", "pattern": "CODE-"}]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def eval_json(tuneforge_cli: list[str], *args: str, env: dict | None = None) -> dict:
    proc = subprocess.run([*tuneforge_cli, "eval", *args, "--json"], capture_output=True, text=True, timeout=600,
                          env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_unknown_metrics_and_missing_files_are_refused_with_codes(tiny_llama_dir: Path, tmp_path: Path):
    from tuneforge.actions.evaluate import evaluate

    data = write_jsonl(tmp_path / "h.jsonl", PROMPTS)
    with pytest.raises(TuneforgeError) as err:
        evaluate([str(tiny_llama_dir)], str(data), metrics=["bleu"])
    assert err.value.code == "eval.unknown_metric" and "rouge_l" in err.value.fix
    with pytest.raises(TuneforgeError) as err:
        evaluate([str(tiny_llama_dir)], str(tmp_path / "nope.jsonl"))
    assert err.value.code == "eval.data_not_found"
    with pytest.raises(TuneforgeError) as err:
        evaluate([str(tmp_path / "missing.gguf")], str(data))
    assert err.value.code == "eval.model_not_found"


@pytest.mark.slow
def test_eval_json_puts_a_base_model_a_finished_job_and_a_gguf_file_side_by_side(
        tiny_llama_dir: Path, tmp_path: Path, tuneforge_cli: list[str]):
    train = write_jsonl(tmp_path / "train.jsonl", [
        {"messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["reference"]}]}
        for r in PROMPTS * 4])
    data = write_jsonl(tmp_path / "heldout.jsonl", PROMPTS)
    service = JobService()
    job = service.submit_training(RunConfig.model_validate({
        "model": str(tiny_llama_dir), "dataset": {"path": str(train)}, "output_dir": str(tmp_path / "out"),
        "peft": {"kind": "lora", "r": 8, "alpha": 16, "dropout": 0.0}, "max_length": 64,
        "train": {"learning_rate": 5e-3, "max_steps": 2, "per_device_batch_size": 4, "logging_steps": 1}}))
    done = service.wait(job.job_id, timeout=600, poll_seconds=0.5)
    assert done.stage == "COMPLETED", "\n".join(service.logs(job.job_id, tail=30))

    report = eval_json(tuneforge_cli, str(tiny_llama_dir), job.job_id, "--data", str(data), "--metrics",
                       json.dumps(METRICS), "--max-new-tokens", "8")
    rows = report["rows"]
    assert [r["kind"] for r in rows] == ["model", "job"] and rows[1]["model"] == f"job {job.job_id}"
    for row in rows:
        assert row["rows"] == 4
        assert {"exact_match", "contains", "rouge_l", "regex", "perplexity"} <= set(row["scores"])
        assert all(0.0 <= v <= 1.0 for k, v in row["scores"].items() if k != "perplexity")
        assert len(row["samples"]) == 4 and {"prompt", "reference", "answer"} <= set(row["samples"][0])
    # the tuned job has seen these answers: its perplexity on them is lower than the random base's
    assert 0 < rows[1]["scores"]["perplexity"] < rows[0]["scores"]["perplexity"]


@pytest.mark.slow
def test_a_gguf_file_gets_its_own_row_beside_the_model_it_came_from(tiny_llama_dir: Path, tmp_path: Path,
                                                                    tuneforge_cli: list[str]):
    from tuneforge.gguf import toolchain as tcm
    from tuneforge.gguf.workers import convert

    env = dict(os.environ, TUNEFORGE_TOOLCHAIN_DIR=str(test_cache_dir() / "toolchain"))
    os.environ["TUNEFORGE_TOOLCHAIN_DIR"] = env["TUNEFORGE_TOOLCHAIN_DIR"]
    try:
        tc = tcm.installed()
    finally:
        os.environ.pop("TUNEFORGE_TOOLCHAIN_DIR", None)
    if tc is None:
        if os.environ.get("CI") == "true" and os.environ.get("TUNEFORGE_EXPECT_TOOLCHAIN") == "1":
            pytest.fail("the llama.cpp toolchain is expected (TUNEFORGE_EXPECT_TOOLCHAIN=1) but is not installed")
        pytest.skip("no llama.cpp toolchain in the test cache (`tuneforge gguf --install-toolchain` builds it)")
    gguf = tmp_path / "tiny-f16.gguf"
    convert(tc, tiny_llama_dir, gguf, "f16", tmp_path / "convert.log")
    data = write_jsonl(tmp_path / "heldout.jsonl", PROMPTS)
    report = eval_json(tuneforge_cli, str(tiny_llama_dir), str(gguf), "--data", str(data), "--metrics",
                       json.dumps(METRICS), "--max-new-tokens", "8", env=env)
    model, exported = report["rows"]
    assert (model["kind"], exported["kind"]) == ("model", "gguf") and exported["rows"] == 4
    assert exported["scores"]["perplexity"] is None  # needs transformers' logits: not for a GGUF file
    assert len(exported["samples"]) == 4
    # f16 of the same weights, greedy, same chat template: the same answers on (nearly) every prompt
    same = sum(a["answer"] == b["answer"] for a, b in zip(model["samples"], exported["samples"]))
    assert same >= 3, (model["samples"], exported["samples"])
