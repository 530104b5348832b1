"""`tuneforge train --backend hf` and `tuneforge jobs ...` as subprocesses against the Jobs emulator,
and a scan proving the token appears nowhere but where it must (the Authorization header and the
job's secrets field)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from hf_emulator import HubEmulator
from test_hf_backend import USER, event, hub, train_file  # noqa: F401  (fixtures)
from tuneforge.config import RunConfig
from tuneforge.jobs.service import JobService

TIMEOUT = 120
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


class Cli:
    def __init__(self, command: list[str]):
        self.command = command
        self.outputs: list[str] = []

    def __call__(self, *args: str, code: int = 0) -> Any:
        proc = subprocess.run([*self.command, *args], capture_output=True, text=True, timeout=TIMEOUT)
        self.outputs += [proc.stdout, proc.stderr]
        assert proc.returncode == code, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return json.loads(proc.stdout) if "--json" in args else proc.stdout


def train_args(train_file: Path, *extra: str) -> list[str]:
    return ["train", "--backend", "hf", "--model", MODEL, "--dataset", str(train_file),
            "--flavor", "a10g-small", "--timeout", "30m", "--max-steps", "5", *extra]


def serve_model(hub: HubEmulator, model_dir: Path, repo_id: str = MODEL) -> None:
    """The model's small files (config, tokenizer) on the emulated Hub: what the planner reads. No weights."""
    hub.add_model(repo_id, {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file() and p.stat().st_size < 20_000_000})


@pytest.mark.slow  # the planner behind `train` loads a tokenizer (~15 s here)
def test_the_hf_cycle_through_the_cli_keeps_the_token_out_of_every_output_record_and_file(
    hub, train_file, tuneforge_cli, tuneforge_home, tmp_path, smollm2_dir  # noqa: F811
):
    serve_model(hub, smollm2_dir)
    cli = Cli(tuneforge_cli)

    # submit: id, backend, url, flavor, timeout come back at once
    sub = cli(*train_args(train_file, "--push-to", f"{USER}/sums", "--json"))
    assert sub["backend"] == "hf" and sub["stage"] == "SCHEDULING" and sub["flavor"] == "a10g-small"
    assert sub["url"] == f"{hub.url}/jobs/{USER}/{sub['backend_job_id']}" and sub["timeout_seconds"] == 1800
    job_id, hf_id = sub["job_id"], sub["backend_job_id"]

    # running, with progress events in the log stream
    hub.set_stage(hf_id, "RUNNING")
    hub.append_log(hf_id, event("status", message="training"), *[event("progress", step=s, total_steps=5, loss=1.0 / s) for s in (1, 2)])
    status = cli("jobs", "status", job_id, "--json")
    assert status["stage"] == "RUNNING" and status["progress"]["step"] == 2 and status["message"] == "training"
    assert status["cost_so_far_usd"] is not None and status["url"] == sub["url"]
    assert "step 2/5" in cli("jobs", "status", job_id)  # the human view
    assert cli("jobs", "logs", job_id, "--json", "--raw")["lines"][-1] == event("progress", step=2, total_steps=5, loss=0.5)
    assert [j["job_id"] for j in cli("jobs", "list", "--json")["jobs"]] == [job_id]

    # cancel reaches the HF job
    assert cli("jobs", "cancel", job_id, "--json")["stage"] == "CANCELED"
    assert hub.jobs[hf_id]["status"]["stage"] == "CANCELED"

    # wait follows a second job to the end (submitted in-process: the CLI path was shown above)
    config = RunConfig.from_dict({"model": MODEL, "dataset": {"path": str(train_file)}, "push_to_hub": f"{USER}/sums-2"})
    record = JobService().submit_training(config, backend="hf", flavor="a10g-small")
    second = {"job_id": record.job_id, "backend_job_id": record.backend_job_id}
    waiter = subprocess.Popen([*tuneforge_cli, "jobs", "wait", second["job_id"], "--json", "--timeout", "90"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    inspects = rf"/api/jobs/{USER}/{second['backend_job_id']}$"
    deadline = time.monotonic() + 60
    while not hub.calls("GET", inspects) and time.monotonic() < deadline:
        time.sleep(0.05)
    hub.set_stage(second["backend_job_id"], "RUNNING")
    hub.append_log(second["backend_job_id"], event("progress", step=5, total_steps=5, loss=0.2), event("status", message="done"))
    hub.set_stage(second["backend_job_id"], "COMPLETED")
    out, err = waiter.communicate(timeout=TIMEOUT)
    cli.outputs += [out, err]
    assert waiter.returncode == 0, err
    done = json.loads(out)
    assert done["stage"] == "COMPLETED" and done["progress"]["step"] == 5 and done["outputs"]["hub_repo"] == f"{USER}/sums-2"

    # refusals a user can cause
    refused = cli(*train_args(train_file, "--json"), code=2)
    assert "--push-to" in refused["fix"] and refused["code"] == "config.push_target_required"

    # --- the scan ------------------------------------------------------------------------------
    token = hub.token
    carried = [r for r in hub.requests if r.headers.get("authorization") == f"Bearer {token}"]
    assert carried and all(hub.jobs[i]["_secrets"] == {"HF_TOKEN": token} for i in hub.jobs)  # it was really used

    leaks = [f"process output #{i}" for i, text in enumerate(cli.outputs) if token in text]
    roots = [tuneforge_home, tmp_path / "hf_home"]
    leaks += [str(p) for root in roots if root.exists() for p in root.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
    for r in hub.requests:
        headers = {k: v for k, v in r.headers.items() if k != "authorization"}
        body = r.body
        if r.method == "POST" and r.path == f"/api/jobs/{USER}" and body:
            spec = json.loads(body)
            assert spec.pop("secrets") == {"HF_TOKEN": token}
            body = json.dumps(spec).encode()
        if token in json.dumps(headers) or token.encode() in body or token in r.path + json.dumps(r.query):
            leaks.append(f"request {r.method} {r.path}")
    for hf_job in hub.jobs:
        leaks += [f"upload {name} of {hf_job}" for name, data in hub.volume_files(hf_job).items() if token.encode() in data]
        leaks += [f"job info {hf_job}" for _ in [0] if token in json.dumps(hub.public(hub.jobs[hf_job]))]
    leaks += [str(p) for p in hub.cas_dir.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
    assert not leaks, leaks


@pytest.mark.slow  # the client retries the 503s for ~25 s before the planner gives up on model info
def test_submission_with_explicit_flavor_and_timeout_works_when_model_info_cannot_be_fetched(hub, train_file, tuneforge_cli):  # noqa: F811
    hub.fail("*", r"/resolve/", 503, times=1000)  # the Hub cannot serve the model's config.json
    cli = Cli(tuneforge_cli)
    sub = cli(*train_args(train_file, "--push-to", f"{USER}/sums", "--json"))
    assert sub["backend"] == "hf" and sub["backend_job_id"] in hub.jobs and sub["flavor"] == "a10g-small"
    assert sub["timeout_seconds"] == 1800 and sub["warnings"], sub
