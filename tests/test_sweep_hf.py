"""A cloud sweep against the Hub emulator (issue 15 items 1, 5): trials run max_parallel at a time, the next
starts as one ends, and no trial is submitted once the spend reaches max_cost_usd; a paid sweep needs the
go-ahead, and one over budget is refused before anything is uploaded. Bad sweep files name line and field."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from cli_main import run_main
from hf_emulator import HubEmulator, iso, serve_hub
from mcp_client import in_memory

USER = "alice"
ROWS = [{"messages": [{"role": "user", "content": f"What is {i} + {i}?"}, {"role": "assistant", "content": str(2 * i)}]}
        for i in range(12)]


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubEmulator:
    yield from serve_hub(tmp_path, monkeypatch, USER)


#: SmolLM2-135M's shape: the planner sizes the run from it here, with nothing to download (the job would)
MODEL_CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 576,
                "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "intermediate_size": 1536,
                "vocab_size": 49152, "max_position_embeddings": 8192, "tie_word_embeddings": True,
                "torch_dtype": "bfloat16"}


def sweep_file(tmp_path: Path, *, max_cost: float, lrs=(1e-4, 2e-4, 3e-4, 4e-4), **budget: Any) -> Path:
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    model = tmp_path / "smollm2-shape"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text(json.dumps(MODEL_CONFIG))
    spec = {"name": "cloud-lr", "backend": "hf", "flavor": "a10g-small",
            "base": {"model": str(model), "dataset": str(train),
                     "push_to_hub": f"{USER}/sums", "timeout_seconds": 1800, "train": {"max_steps": 10}},
            "space": {"grid": {"train.learning_rate": list(lrs)}},
            "budget": {"max_cost_usd": max_cost, "max_parallel": 2, "flavors": ["a10g-small"], **budget}}
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(spec))
    return path


def posts(hub: HubEmulator) -> list:
    return [r for r in hub.calls("POST", rf"^/api/jobs/{USER}$") if r.status == 200]


def run_an_hour(hub: HubEmulator, job_id: str, eval_loss: float) -> None:
    """The emulator's job ran for an hour on a10g-small ($1.00/h), then wrote its result and completed."""
    from tuneforge.records import JobStore

    hf_id = JobStore().get(job_id).backend_job_id
    hub.set_stage(hf_id, "RUNNING")
    hub.jobs[hf_id]["startedAt"] = iso(time.time() - 3600)
    hub.append_log(hf_id, "##tuneforge-event " + json.dumps({"type": "result", "eval_loss_after": eval_loss,
                                                              "train_loss": eval_loss + 0.1}))
    hub.set_stage(hf_id, "COMPLETED")


def test_cloud_trials_run_two_at_a_time_and_the_sweep_stops_at_its_cost_budget(hub, tmp_path, capsys):
    from tuneforge.actions.sweep import run_sweep, sweep_status

    path = sweep_file(tmp_path, max_cost=2.5)
    plan = json.loads(run_main(capsys, "sweep", "run", str(path), "--plan", "--json").stdout)["plan"]
    assert plan["paid"] is True and plan["trial_count"] == 4 and plan["flavor"] == "a10g-small"
    assert plan["total_cost_usd"] == pytest.approx(sum(t["estimated_cost_usd"] for t in plan["trials"]))
    assert plan["total_cost_usd"] <= 2.5 and plan["per_trial_cost_usd"] > 0

    refused = run_main(capsys, "sweep", "run", str(path), "--json")  # no --yes, no terminal to ask on
    assert json.loads(refused.stdout)["code"] == "sweep.not_confirmed" and not posts(hub)

    started = run_sweep(path, confirmed=True, detach=False)
    sid = started.sweep_id
    assert [t.stage for t in started.status.trials] == ["SCHEDULING", "SCHEDULING", "PENDING", "PENDING"]
    assert len(posts(hub)) == 2
    assert sweep_status(sid).counts == {"SCHEDULING": 2, "PENDING": 2} and len(posts(hub)) == 2  # no room yet

    first, second = (t.job_id for t in started.status.trials[:2])
    run_an_hour(hub, first, eval_loss=1.4)  # $1 spent: the third trial fits ($1 + 2 estimates <= $2.50)
    after_one = sweep_status(sid)
    assert len(posts(hub)) == 3 and after_one.trials[2].stage == "SCHEDULING" and after_one.trials[3].stage == "PENDING"

    run_an_hour(hub, second, eval_loss=1.2)  # $2 spent + the running third's estimate + the fourth's: over $2.50
    run_an_hour(hub, after_one.trials[2].job_id, eval_loss=1.3)
    final = sweep_status(sid)
    assert len(posts(hub)) == 3  # the fourth never submitted
    assert final.stage == "STOPPED" and final.trials[3].stage == "SKIPPED"
    assert final.trials[3].reason.startswith("budget:") and "max_cost_usd $2.50" in final.trials[3].reason
    assert final.spent_usd == pytest.approx(3.0, abs=0.05)
    assert [t.cost_usd for t in final.trials[:3]] == pytest.approx([1.0, 1.0, 1.0], abs=0.02)
    assert final.best.job_id == second and final.best.metrics["eval_loss"] == 1.2

    from tuneforge.records import JobStore

    repos = {hub.jobs[JobStore().get(t.job_id).backend_job_id]["labels"]["tuneforge-job"] for t in final.trials[:3]}
    assert len(repos) == 3
    pushes = {JobStore().get(t.job_id).config.push_to_hub for t in final.trials[:3]}
    assert pushes == {f"{USER}/sums-{sid[-6:]}-t{i}" for i in range(3)}  # each trial its own repo


def test_over_budget_is_refused_before_anything_is_uploaded_with_how_many_fit(hub, tmp_path, capsys):
    plan = json.loads(run_main(capsys, "sweep", "run", str(sweep_file(tmp_path, max_cost=100)), "--plan",
                               "--json").stdout)["plan"]
    per = plan["per_trial_cost_usd"]
    tight = sweep_file(tmp_path, max_cost=round(per * 2.5, 4))
    done = run_main(capsys, "sweep", "run", str(tight), "--yes", "--json")
    err = json.loads(done.stdout)
    assert done.returncode != 0 and err["code"] == "sweep.over_budget"
    assert "max_trials to 2" in err["fix"] and not posts(hub) and not hub.calls("POST", "/api/buckets/")


def test_mcp_run_sweep_plans_then_asks_once_for_a_paid_sweep_and_cancel_stops_it(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEFORGE_SWEEP_POLL_SECONDS", "0.2")
    path = str(sweep_file(tmp_path, max_cost=50))

    async def body(client):
        planned = (await client.call_tool("run_sweep", {"path": path, "submit": False})).structured_content
        unconfirmed = await client.call_tool("run_sweep", {"path": path})
        started = (await client.call_tool("run_sweep", {"path": path, "confirmed": True})).structured_content
        canceled = (await client.call_tool("cancel_sweep", {"sweep_id": started["sweep_id"]})).structured_content
        return planned, unconfirmed, started, canceled

    planned, unconfirmed, started, canceled = in_memory(body)
    assert planned["submitted"] is False and planned["plan"]["trial_count"] == 4
    assert unconfirmed.is_error and "sweep.not_confirmed" in unconfirmed.content[0].text
    assert started["driver_pid"]  # two trials wait for room: the detached driver will submit them
    assert canceled["stage"] == "CANCELED"
    assert [t["stage"] for t in canceled["trials"]] == ["CANCELED", "CANCELED", "SKIPPED", "SKIPPED"]
    assert len(posts(hub)) == 2
    assert [job["status"]["stage"] for job in hub.jobs.values()] == ["CANCELED", "CANCELED"]
    pid = started["driver_pid"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and os.waitpid(pid, os.WNOHANG) == (0, 0):
        time.sleep(0.1)
    with pytest.raises(ChildProcessError):  # the driver saw the sweep canceled and ended by itself
        os.waitpid(pid, os.WNOHANG)


@pytest.mark.parametrize("text, expected", [
    ("base: {model: m, dataset: d}\nspace:\n  grid:\n    train.learnin_rate: [1, 2]\n",
     ":4: space.grid.train.learnin_rate: not a RunConfig field (did you mean train.learning_rate"),
    ("base: {model: m, dataset: d}\nspace:\n  grid: {peft.r: [8]}\nbudget:\n  max_parallel: 0\n  colour: red\n",
     [":5: budget.max_parallel: Input should be greater than or equal to 1", ":6: budget.colour: unknown key"]),
    ("base: {model: m, dataset: d}\nspace:\n  random:\n    count: 2\n    fields:\n      train.learning_rate: "
     "{low: 0.1, high: 0.01}\n", ":6: space.random.fields.train.learning_rate"),
    ("base: {model: m, dataset: d}\nspace: {grid: {peft.r: [8]}, random: {count: 1, fields: {seed: [1]}}}\n",
     "give exactly one of grid or random"),
    ("base: {model: m, dataset: d}\nspace:\n  grid: {peft.r: [8]}\nmetric: {name: eval_loss, direction: up}\n",
     ":4: metric.direction"),
])
def test_a_bad_sweep_file_names_the_line_and_the_field(tmp_path, capsys, text, expected):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    done = run_main(capsys, "sweep", "run", str(path), "--plan", "--json")
    err = json.loads(done.stdout)
    assert done.returncode != 0 and err["code"] in ("sweep.invalid", "sweep.unknown_field") and err["fix"]
    for part in [expected] if isinstance(expected, str) else expected:
        assert part in err["error"], err["error"]


def test_a_trial_value_the_schema_refuses_names_the_trial_and_the_field(tmp_path, capsys):
    path = sweep_file(tmp_path, max_cost=10, lrs=(1e-4, 5.0))
    err = json.loads(run_main(capsys, "sweep", "run", str(path), "--plan", "--json").stdout)
    assert err["code"] == "sweep.invalid_trial" and "Trial 1 (train.learning_rate=5.0)" in err["error"]
    assert "train.learning_rate" in err["error"].split("not a valid run:")[1]
