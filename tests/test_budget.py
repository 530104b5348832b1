"""The spending budget (max_cost_usd, --max-cost-usd): refused at submit when the plan's estimate exceeds it,
shown by `plan` and `jobs status`, the template's budget guard stopping a real tiny run (after a checkpoint),
the hf job's price and capped timeout, the refresh-side cancel against the HF emulator, and the MCP argument."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_main import run_main
from mcp_client import in_memory, text_of
from test_hf_backend import USER, hub, make_config, train_file  # noqa: F401  (fixtures)
from tuneforge import paths
from tuneforge.config.guards import BUDGET_GRACE_SECONDS
from tuneforge.jobs.service import JobService
from tuneforge.jobs.workspace import stage_template
from tuneforge.records import JobStore
from tuneforge.reports.plan import Plan


def data_file(tmp_path: Path, n: int = 200) -> str:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"What is {i} + {i}?"},
                                                     {"role": "assistant", "content": str(2 * i)}]}) + "\n"
                            for i in range(n)), encoding="utf-8")
    return str(path)


def hf_flags(model: str, data: str, budget: str) -> list[str]:
    return ["--backend", "hf", "--model", model, "--dataset", data, "--push-to", f"{USER}/m", "--max-cost-usd", budget]


def test_a_plan_over_the_budget_is_refused_at_submit_and_plan_shows_budget_and_estimate(
        capsys: pytest.CaptureFixture[str], tiny_llama_dir: Path, tmp_path: Path) -> None:
    data, model = data_file(tmp_path), str(tiny_llama_dir)
    refused = run_main(capsys, "train", *hf_flags(model, data, "0.01"), "--json")
    assert refused.returncode != 0
    error = json.loads(refused.stdout)
    assert error["code"] == "plan.over_budget", error
    assert "max_cost_usd $0.01" in error["error"] and "estimate is $" in error["error"]
    assert "--max-cost-usd" in error["fix"] and "--flavor" in error["fix"] and "fewer steps" in error["fix"]
    assert JobStore().list() == []  # nothing was created

    over = Plan.model_validate_json(run_main(capsys, "plan", *hf_flags(model, data, "0.01"), "--json").stdout)
    assert over.budget_usd == 0.01 and over.within_budget is False and over.cost_usd > 0.01
    shown = run_main(capsys, "plan", *hf_flags(model, data, "0.01")).stdout
    assert "Over the $0.01 budget" in shown and f"estimated ${over.cost_usd:.2f}" in shown
    within = run_main(capsys, "plan", *hf_flags(model, data, "500")).stdout
    assert "Budget $500.00: estimated $" in within and "within it" in within
    # --budget-usd (the plan's what-if) wins over the config's max_cost_usd in a plan
    whatif = Plan.model_validate_json(run_main(capsys, "plan", *hf_flags(model, data, "0.01"), "--budget-usd", "500",
                                               "--json").stdout)
    assert whatif.budget_usd == 500 and whatif.within_budget is True


def test_the_mcp_tools_take_max_cost_usd(tiny_llama_dir: Path, tmp_path: Path) -> None:
    data = data_file(tmp_path)
    args = {"model": str(tiny_llama_dir), "dataset": data, "backend": "hf", "push_to_hub": f"{USER}/m", "max_cost_usd": 0.01}

    async def body(client):
        return (await client.call_tool("plan_training", args),
                await client.call_tool("submit_training", {**args, "confirmed": True}))

    planned, submitted = in_memory(body)
    assert not planned.is_error, text_of(planned)
    assert planned.structured_content["within_budget"] is False and planned.structured_content["budget_usd"] == 0.01
    assert submitted.is_error and "[plan.over_budget]" in text_of(submitted)
    assert "max_cost_usd" in text_of(submitted) and "--max-cost-usd" not in text_of(submitted)  # agent words
    assert JobStore().list() == []


def test_the_api_takes_max_cost_usd(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from tuneforge import api
    from tuneforge.errors import TuneforgeError

    options = {"dataset": data_file(tmp_path), "backend": "hf", "push_to_hub": f"{USER}/m", "max_cost_usd": 0.01}
    planned = api.plan(str(tiny_llama_dir), **options)
    assert planned.budget_usd == 0.01 and planned.within_budget is False
    with pytest.raises(TuneforgeError) as refused:
        api.train(model=str(tiny_llama_dir), **options)
    assert refused.value.code == "plan.over_budget" and refused.value.details["max_cost_usd"] == 0.01
    assert JobStore().list() == []


def test_an_hf_job_gets_its_price_a_capped_timeout_and_is_canceled_once_past_its_budget(hub, train_file):  # noqa: F811
    service = JobService()
    job = service.submit_training(make_config(train_file, max_cost_usd=0.05), backend="hf", flavor="a10g-small")
    run = hub.jobs[job.backend_job_id]
    assert job.price_per_hour == 1.0 and run["environment"]["TUNEFORGE_PRICE_PER_HOUR"] == "1"
    cap = int(0.05 * 3600 + BUDGET_GRACE_SECONDS)  # $0.05 at $1/h: 3 minutes, plus the grace
    assert run["timeoutSeconds"] == cap < 1800 and JobStore().get(job.job_id).timeout_seconds == cap
    assert run["secrets"] == ["HF_TOKEN"]  # the price is no secret

    hub.set_stage(job.backend_job_id, "RUNNING")
    running = service.status(job.job_id)
    assert running.stage == "RUNNING" and running.max_cost_usd == 0.05 and running.cost_so_far_usd < 0.05

    hub.jobs[job.backend_job_id]["startedAt"] = None  # the start is set below (a refresh would read it back)
    started = JobStore().get(job.job_id).started_at
    JobStore().update(job.job_id, started_at=started - 0.05 * 3600 - 60)  # within the grace: the template's turn
    assert service.status(job.job_id).stage == "RUNNING"
    JobStore().update(job.job_id, started_at=started - cap - 60)  # past budget + grace: the service stops it
    stopped = service.status(job.job_id)
    assert stopped.stage == "ERROR" and stopped.message.startswith("budget: $"), stopped.message
    assert "max_cost_usd budget of $0.05" in stopped.message and f"{USER}/smollm2-sums" in stopped.message
    assert hub.jobs[job.backend_job_id]["status"]["stage"] == "CANCELED"
    assert stopped.diagnosis is not None and stopped.diagnosis.kind == "budget", stopped.diagnosis
    assert hub.calls("POST", rf"/api/jobs/{USER}/{job.backend_job_id}/cancel$")


def test_a_local_job_records_its_budget_and_is_never_stopped_by_it(capsys, tmp_path: Path):
    from tuneforge.config import RunConfig
    from tuneforge.jobs.budget import enforce_budget
    from tuneforge.records import Job

    data = data_file(tmp_path, 4)
    config = RunConfig(model="a/b", dataset={"path": data}, max_cost_usd=0.01)
    store = JobStore()
    job = store.create(Job(job_id="tf-1", backend="local", kind="train", job_dir=str(tmp_path), config=config,
                           created_at=time.time() - 3600, started_at=time.time() - 3600, stage="RUNNING"))
    job = store.get("tf-1")

    class NoCancel:
        def cancel(self, job):
            raise AssertionError("a free job is never canceled for its budget")

    assert enforce_budget(store, NoCancel(), job).stage == "RUNNING"  # no price: free, never stopped
    from tuneforge.cli.jobs import render_status
    from tuneforge.jobs.service import to_status

    status = to_status(job, [])
    assert status.max_cost_usd == 0.01 and status.cost_so_far_usd is None
    capsys.readouterr()
    render_status(status)
    assert "budget $0.01 (free here: never enforced)" in capsys.readouterr().out


@pytest.mark.slow
def test_the_template_stops_a_real_run_at_its_budget_after_a_checkpoint(tiny_llama_dir: Path, tmp_path: Path):
    from tuneforge.config import RunConfig

    job_dir = tmp_path / "job"
    job_dir.mkdir()
    script, _ = stage_template(paths.template_path("sft"), job_dir)
    config = RunConfig.model_validate({
        "model": str(tiny_llama_dir), "dataset": {"path": data_file(tmp_path, 32), "eval_fraction": 0.0},
        "peft": {"kind": "lora", "r": 8, "alpha": 16, "dropout": 0.0},
        "train": {"learning_rate": 1e-3, "max_steps": 200, "per_device_batch_size": 4, "logging_steps": 1,
                  "save_steps": 500}, "max_length": 64, "output_dir": str(job_dir / "outputs"),
        "max_cost_usd": 1.0,
    })
    config.write(job_dir / "config.json")
    # $3600/h is $1 a second: the $1 budget is spent before the first step ends (loading takes longer)
    env = {**os.environ, "TUNEFORGE_PRICE_PER_HOUR": "3600", "TUNEFORGE_NO_TRACKIO": "1", "TUNEFORGE_JOB_ID": "tf-b"}
    done = subprocess.run([sys.executable, str(script), "--config", str(job_dir / "config.json")], cwd=job_dir,
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 2, done.stderr[-3000:]
    error = [line for line in done.stderr.splitlines() if line.startswith("ERROR: ")][-1]
    assert error.startswith("ERROR: budget: stopped at step 1: $"), error
    assert "reached the max_cost_usd budget of $1.00" in error and "at $3600.00/h" in error
    assert "tuneforge jobs resume tf-b" in error
    result = json.loads((job_dir / "outputs" / "result.json").read_text())
    assert result["stopped"]["kind"] == "budget" and result["stopped"]["step"] == result["steps"] == 1
    assert Path(result["stopped"]["checkpoint"]).name == "checkpoint-1"
    assert (job_dir / "outputs" / "checkpoints" / "checkpoint-1" / "adapter_model.safetensors").is_file()
    assert "budget $1.00 at $3600.00/h" in done.stdout
