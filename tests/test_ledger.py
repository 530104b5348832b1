"""The ledger (issue 15 item 3): every ended job recorded with hashes, metrics, cost; compare, note, search,
export/import through JSON Lines, the plan's past runs, and the faces (CLI, MCP, API)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from cli_main import run_main
from mcp_client import in_memory
from tuneforge.config import RunConfig
from tuneforge.jobs.service import JobService
from tuneforge.ledger import Ledger
from tuneforge.records import Job, JobStore

ROWS = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]} for i in range(12)]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return path


def ended_job(model: Path, data: Path, *, lr: float, stage: str = "COMPLETED", eval_loss: float | None = 1.5,
              message: str = "completed", price: float | None = None, backend: str = "local") -> Job:
    """A job record as the runner leaves it when the template wrote result.json (provenance included)."""
    config = RunConfig.from_dict({"model": str(model), "dataset": {"path": str(data)}, "train": {"learning_rate": lr,
                                  "max_steps": 3}})
    sha = hashlib.sha256(data.read_bytes()).hexdigest()
    result = {"train_loss": 2.25, "eval_loss_before": 3.0, "steps": 3, "adapter_dir": "/x/adapter",
              "eval": {"metrics": ["exact_match"], "before": {"exact_match": 0.1}, "after": {"exact_match": 0.4}},
              "provenance": {"base_revision": "local folder " + str(model),
                             "dataset_files": [{"file": str(data), "sha256": sha}]}}
    if eval_loss is not None:
        result["eval_loss_after"] = eval_loss
    now = time.time()
    store = JobStore()
    job = store.create(Job(job_id=f"tf-test-{lr:g}-{stage.lower()}", backend=backend, job_dir="/tmp/j", config=config,
                           created_at=now - 120, price_per_hour=price))
    return store.update(job.job_id, stage=stage, message=message, started_at=now - 90, finished_at=now,
                        outputs={"result": result if stage == "COMPLETED" else {}, "output_dir": "/x"})


def test_an_ended_job_is_recorded_on_status_with_hashes_metrics_cost_and_artifacts(tiny_llama_dir, data):
    job = ended_job(tiny_llama_dir, data, lr=2e-4, price=2.0, backend="local")
    assert not Ledger().has(job.job_id)
    JobService().status(job.job_id)

    run = Ledger().get(job.job_id)
    assert run.dataset_sha256 == hashlib.sha256(data.read_bytes()).hexdigest()
    assert run.base_revision == f"local folder {tiny_llama_dir}"
    assert run.config_hash and len(run.config_hash) == 16
    assert run.metrics["eval_loss"] == 1.5 and run.metrics["eval_loss_before"] == 3.0
    assert run.metrics["exact_match"] == 0.4 and run.metrics["exact_match_before"] == 0.1
    assert run.metrics["train_loss"] == 2.25
    assert run.cost_usd == pytest.approx(90 / 3600 * 2.0, abs=1e-3) and run.duration_seconds == pytest.approx(90, abs=1)
    assert run.artifacts["adapter_dir"] == "/x/adapter" and run.role == "job"


def test_runs_list_records_ended_jobs_nobody_asked_about_and_a_failed_one_gets_its_data_hashed(
        tiny_llama_dir, data, capsys):
    ended_job(tiny_llama_dir, data, lr=2e-3, stage="ERROR", message="divergence: loss nan at step 2", eval_loss=None)
    done = run_main(capsys, "runs", "list", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert listed["count"] == 1 and listed["recorded_now"] == 1
    run = listed["runs"][0]
    assert run["stage"] == "ERROR" and run["message"].startswith("divergence:")
    assert run["dataset_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()  # no result.json: hashed here
    assert json.loads(run_main(capsys, "runs", "list", "--json").stdout)["recorded_now"] == 0
    human = run_main(capsys, "runs", "list")
    assert human.returncode == 0 and "tf-test-0.002-error" in human.stdout and "ERROR" in human.stdout
    shown = run_main(capsys, "runs", "show", "tf-test-0.002")  # a unique start of the id
    assert shown.returncode == 0 and "divergence: loss nan" in shown.stdout and "dataset sha256" in shown.stdout


def test_compare_shows_the_config_diff_and_the_metric_diff(tiny_llama_dir, data, capsys):
    a = ended_job(tiny_llama_dir, data, lr=2e-4, eval_loss=1.5)
    b = ended_job(tiny_llama_dir, data, lr=5e-4, eval_loss=1.2)
    done = run_main(capsys, "runs", "compare", a.job_id, b.job_id, "--json")
    assert done.returncode == 0, done.stderr
    diff = json.loads(done.stdout)
    assert diff["config"] == [{"field": "train.learning_rate", "a": 2e-4, "b": 5e-4}]
    assert diff["same_dataset"] is True and diff["same_config"] is False
    metric = {m["metric"]: m for m in diff["metrics"]}
    assert metric["eval_loss"]["change"] == pytest.approx(-0.3)
    human = run_main(capsys, "runs", "compare", a.job_id, b.job_id)
    assert "train.learning_rate" in human.stdout and "eval_loss" in human.stdout


def test_a_note_is_kept_searchable_and_the_next_plan_of_that_model_and_data_mentions_it(tiny_llama_dir, data, capsys):
    from tuneforge.actions.resolve import resolve_run

    bad = ended_job(tiny_llama_dir, data, lr=2e-3, stage="ERROR", message="divergence: loss nan at step 2",
                    eval_loss=None)
    ended_job(tiny_llama_dir, data, lr=2e-4)
    note = "lr 0.002 diverged at step 2 (loss nan); 2e-4 trained fine"
    assert run_main(capsys, "runs", "note", bad.job_id, note).returncode == 0

    for query, expected in (("diverged", {bad.job_id}), ("train.learning_rate=0.002", {bad.job_id}),
                            (str(tiny_llama_dir.name), {bad.job_id, "tf-test-0.0002-completed"})):
        found = json.loads(run_main(capsys, "runs", "search", query, "--json").stdout)
        assert {r["run_id"] for r in found["runs"]} == expected, query
    assert json.loads(run_main(capsys, "runs", "search", "nothing-like-this", "--json").stdout)["count"] == 0

    config = RunConfig.from_dict({"model": str(tiny_llama_dir), "dataset": {"path": str(data)}})
    plan = resolve_run(config, submit=False).plan
    assert plan.past_runs[0].run_id == bad.job_id and plan.past_runs[0].notes == [note]  # failures first
    line = next(n for n in plan.notes if n.startswith("Past runs of this model"))
    assert "lr 0.002" in line and note in line and bad.job_id in line

    other = data.with_name("other.jsonl")
    other.write_text(data.read_text() + data.read_text())
    assert resolve_run(config.model_copy(update={"dataset": config.dataset.model_copy(update={"path": str(other)})}),
                       submit=False).plan.past_runs == []


def test_export_then_import_into_a_fresh_home_is_idempotent_and_bad_lines_are_named(
        tiny_llama_dir, data, tmp_path, monkeypatch, capsys):
    a = ended_job(tiny_llama_dir, data, lr=2e-4)
    assert run_main(capsys, "runs", "note", a.job_id, "baseline").returncode == 0
    shared = tmp_path / "team" / "ledger.jsonl"
    exported = json.loads(run_main(capsys, "runs", "export", str(shared), "--json").stdout)
    assert exported["runs"] == 1 and len(shared.read_text().splitlines()) == 1

    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path / "fresh-home"))
    first = json.loads(run_main(capsys, "runs", "import", str(shared), "--json").stdout)
    again = json.loads(run_main(capsys, "runs", "import", str(shared), "--json").stdout)
    assert (first["added"], again["added"], again["unchanged"]) == (1, 0, 1)
    shown = json.loads(run_main(capsys, "runs", "show", a.job_id, "--json").stdout)
    assert [n["text"] for n in shown["notes"]] == ["baseline"] and shown["metrics"]["eval_loss"] == 1.5

    bad = tmp_path / "bad.jsonl"
    line = json.loads(shared.read_text())
    bad.write_text(shared.read_text() + "{not json\n" + json.dumps({**line, "run_id": "x2", "stage": None,
                                                                     "colour": 1}) + "\n")
    done = run_main(capsys, "runs", "import", str(bad), "--json")
    err = json.loads(done.stdout)
    assert done.returncode != 0 and err["code"] == "ledger.bad_line"
    assert f"{bad}:2: not JSON" in err["error"] and f"{bad}:3:" in err["error"]
    assert "stage" in err["error"] and "colour: unknown field" in err["error"]
    assert not Ledger().has("x2")  # nothing written


def test_the_mcp_tools_list_note_search_and_compare(tiny_llama_dir, data):
    a = ended_job(tiny_llama_dir, data, lr=2e-4, eval_loss=1.5)
    b = ended_job(tiny_llama_dir, data, lr=5e-4, eval_loss=1.2)

    async def body(client):
        listed = (await client.call_tool("list_runs", {})).structured_content
        noted = (await client.call_tool("note_run", {"run_id": b.job_id, "text": "5e-4 beat 2e-4 by 0.3"}))
        found = (await client.call_tool("search_runs", {"text": "beat"})).structured_content
        diff = (await client.call_tool("compare_runs", {"a": a.job_id, "b": b.job_id})).structured_content
        missing = await client.call_tool("show_run", {"run_id": "tf-nope-nope"})
        return listed, noted.structured_content, found, diff, missing

    listed, noted, found, diff, missing = in_memory(body)
    assert listed["count"] == 2
    assert noted["notes"][0]["text"] == "5e-4 beat 2e-4 by 0.3"
    assert [r["run_id"] for r in found["runs"]] == [b.job_id]
    assert diff["config"][0]["field"] == "train.learning_rate"
    assert missing.is_error and "ledger.run_not_found" in missing.content[0].text
