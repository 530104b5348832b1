"""A real sweep on this machine (issue 15 items 1, 2, 5): four trials of the tiny Llama, one device at a time,
the best picked by eval loss; the ledger's compare and search on the real trial records; the plot; the MCP tool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_main import run_main
from mcp_client import in_memory

ROWS = [{"messages": [{"role": "user", "content": f"Say the code for item {i % 4}."},
                      {"role": "assistant", "content": f"CODE-{i % 4}-XYZ"}]} for i in range(16)]


def sweep_file(tmp_path: Path, model: Path) -> Path:
    train, evals = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    evals.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:4]))
    base = {"model": str(model), "dataset": {"path": str(train), "eval_path": str(evals)},
            "peft": {"kind": "lora", "r": 8, "alpha": 16, "dropout": 0.0}, "max_length": 64, "eval_prompts": [],
            "train": {"max_steps": 3, "per_device_batch_size": 4, "logging_steps": 1, "warmup_ratio": 0.0,
                      "lr_scheduler": "constant"}}
    (tmp_path / "base.json").write_text(json.dumps(base))
    path = tmp_path / "sweep.yaml"
    path.write_text("name: lr-and-rank\nbase: base.json\nspace:\n  grid:\n    train.learning_rate: [1.0e-5, 5.0e-3]\n"
                    "    peft.r: [4, 8]\nmetric: {name: eval_loss, direction: min}\nbudget: {max_trials: 4}\n")
    return path


@pytest.mark.slow
def test_a_four_trial_local_sweep_runs_one_at_a_time_and_picks_the_lowest_eval_loss(
        tiny_llama_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TUNEFORGE_NO_TRACKIO", "1")
    path = sweep_file(tmp_path, tiny_llama_dir)

    planned = json.loads(run_main(capsys, "sweep", "run", str(path), "--plan", "--json").stdout)
    assert planned["submitted"] is False and planned["plan"]["trial_count"] == 4
    assert planned["plan"]["total_cost_usd"] == 0 and planned["plan"]["paid"] is False

    done = run_main(capsys, "sweep", "run", str(path), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    started = json.loads(done.stdout)
    sweep_id = started["sweep_id"]
    assert [t["params"] for t in started["status"]["trials"]] == [
        {"train.learning_rate": 1e-5, "peft.r": 4}, {"train.learning_rate": 1e-5, "peft.r": 8},
        {"train.learning_rate": 5e-3, "peft.r": 4}, {"train.learning_rate": 5e-3, "peft.r": 8}]
    assert all(t["job_id"] for t in started["status"]["trials"])  # local: all queued at once for the one device
    assert started["driver_pid"] is None

    waited = run_main(capsys, "sweep", "wait", sweep_id, "--timeout", "300", "--json")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    status = json.loads(waited.stdout)
    assert status["stage"] == "COMPLETED" and [t["stage"] for t in status["trials"]] == ["COMPLETED"] * 4
    losses = {t["job_id"]: t["metrics"]["eval_loss"] for t in status["trials"]}
    assert status["best"]["job_id"] == min(losses, key=losses.get)
    assert status["best"]["params"]["train.learning_rate"] == 5e-3  # 3 steps at 1e-5 barely move a random model
    assert [t["best"] for t in status["trials"]].count(True) == 1

    from tuneforge.records import JobStore

    jobs = [JobStore().get(t["job_id"]) for t in status["trials"]]
    assert {j.sweep_id for j in jobs} == {sweep_id}
    spans = sorted((j.started_at, j.finished_at) for j in jobs)
    assert all(a[1] <= b[0] + 1.0 for a, b in zip(spans, spans[1:]))  # one device: never two at once
    assert {j.config.trackio.project for j in jobs} == {sweep_id}  # one Trackio group: the sweep's project

    # the ledger holds the real trials: compare the best with the worst, search by the sweep and by a value
    worst = max(losses, key=losses.get)
    diff = json.loads(run_main(capsys, "runs", "compare", worst, status["best"]["job_id"], "--json").stdout)
    assert "train.learning_rate" in {f["field"] for f in diff["config"]} and diff["same_dataset"] is True
    assert next(m for m in diff["metrics"] if m["metric"] == "eval_loss")["change"] < 0
    found = json.loads(run_main(capsys, "runs", "search", sweep_id, "--json").stdout)
    assert found["count"] == 4 and {r["role"] for r in found["runs"]} == {"sweep_trial"}
    lr = json.loads(run_main(capsys, "runs", "search", "train.learning_rate=0.005", "--json").stdout)
    assert {r["run_id"] for r in lr["runs"]} == {t["job_id"] for t in status["trials"][2:]}

    human = run_main(capsys, "sweep", "status", sweep_id, "--plot", str(tmp_path / "sweep.png"))
    assert human.returncode == 0 and "train.learning_rate" in human.stdout and "*" in human.stdout
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    async def body(client):
        return (await client.call_tool("sweep_status", {"sweep_id": sweep_id})).structured_content

    assert in_memory(body)["best"]["job_id"] == status["best"]["job_id"]
