"""Notifications of real local jobs, to a real local HTTP receiver: the detached supervisor hands every
terminal stage (completed, failed, canceled, receiver down) to the notification sender; one real tiny-model
run through `tuneforge train --notify URL --wait --json`. The URL must appear nowhere: no file under
$TUNEFORGE_HOME, no record, no log, no CLI or MCP answer, not even the training script's environment."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest
from cli_main import run_main
from notify_receiver import Receiver
from test_notify import closed_port_url
from tuneforge import paths
from tuneforge.config import RunConfig
from tuneforge.jobs.service import JobService
from tuneforge.records import JobSpec, JobStore

FAKE = textwrap.dedent(
    """
    import json, os, sys, time
    P = "##tuneforge-event "
    print("url in the script's environment:", os.environ.get("TUNEFORGE_NOTIFY_URL"), flush=True)
    for i in range(1, int(os.environ.get("FAKE_STEPS", "2")) + 1):
        print(P + json.dumps({"type": "progress", "step": i, "total_steps": 2, "loss": 1.0 / i}), flush=True)
        time.sleep(float(os.environ.get("FAKE_DELAY", "0.05")))
    if os.environ.get("FAKE_CRASH"):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    out = os.environ.get("FAKE_OUT")
    if out:
        os.makedirs(out, exist_ok=True)
        json.dump({"train_loss": 0.5, "steps": 2, "eval_loss_before": 2.0, "eval_loss_after": 1.0,
                   "adapter_dir": os.path.join(out, "adapter")}, open(os.path.join(out, "result.json"), "w"))
    """
)


@pytest.fixture
def fake_script(tmp_path: Path) -> Path:
    path = tmp_path / "fake_train.py"
    path.write_text(FAKE)
    return path


def assert_nowhere(secret: str, *texts: str) -> None:
    """The secret is in no text given and in no file under $TUNEFORGE_HOME (records, job folders, logs)."""
    for text in texts:
        assert secret not in text
    for path in paths.home().rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def submit(script: Path, url: str, *, config: RunConfig | None = None, **env: str):
    return JobService().submit(JobSpec(script=script, env=env, notify_url=url), config=config)


def test_a_completed_job_posts_one_summary_with_its_metrics_and_keeps_the_url_secret(fake_script: Path, tmp_path: Path):
    out = tmp_path / "out"
    config = RunConfig(model="owner/model", dataset={"path": "owner/data"}, output_dir=str(out))
    with Receiver() as rx:
        job = submit(fake_script, rx.url, config=config, FAKE_OUT=str(out))
        assert job.notify is True
        done = JobService().wait(job.job_id, timeout=60, poll_seconds=0.1)
        bodies = rx.wait_for(1)
        time.sleep(0.5)  # one notification only
        assert len(rx.requests) == 1
    assert done.stage == "COMPLETED"
    body = bodies[0]
    assert body["job_id"] == job.job_id and body["stage"] == "COMPLETED" and body["backend"] == "local"
    assert body["metrics"]["train_loss"] == 0.5 and body["metrics"]["eval_loss_after"] == 1.0
    assert body["outputs"]["adapter_dir"] == str(out / "adapter") and body["model"] == "owner/model"
    assert "COMPLETED" in body["text"] and "train loss 0.5" in body["text"]
    log = "\n".join(JobService().logs(job.job_id, tail=None))
    assert "url in the script's environment: None" in log  # the training script never gets the URL
    assert json.loads((Path(job.job_dir) / "spec.json").read_text()).get("notify_url") is None
    assert_nowhere(rx.secret_path, JobService().status(job.job_id).model_dump_json())


def test_a_failing_job_posts_error_with_its_message_and_diagnosis(fake_script: Path):
    with Receiver() as rx:
        job = submit(fake_script, rx.url, FAKE_CRASH="1")
        done = JobService().wait(job.job_id, timeout=60, poll_seconds=0.1)
        body = rx.wait_for(1)[0]
    assert done.stage == "ERROR"
    assert body["stage"] == "ERROR" and body["message"] == JobStore().get(job.job_id).message
    assert "CUDA out of memory" in body["message"] + body["error"] and "ERROR" in body["text"]
    recorded = JobStore().get(job.job_id).diagnosis  # filled by the job service when a job ends ERROR
    assert body["diagnosis"] == (recorded.model_dump() if recorded is not None else None)
    if recorded is not None:
        assert recorded.kind in body["text"]


def test_a_canceled_job_still_posts_canceled(fake_script: Path):
    service = JobService()
    with Receiver() as rx:
        job = submit(fake_script, rx.url, FAKE_STEPS="400", FAKE_DELAY="0.1")
        deadline = time.monotonic() + 30
        while service.status(job.job_id).stage != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.05)
        service.cancel(job.job_id)  # SIGTERM to the supervisor: the sender it starts outlives it
        body = rx.wait_for(1)[0]
    assert body["stage"] == "CANCELED" and body["job_id"] == job.job_id and "CANCELED" in body["text"]


def test_a_receiver_that_is_down_never_changes_the_jobs_outcome(fake_script: Path):
    job = submit(fake_script, closed_port_url())
    done = JobService().wait(job.job_id, timeout=60, poll_seconds=0.1)
    assert done.stage == "COMPLETED" and done.message == "completed"


@pytest.mark.slow
def test_train_notify_wait_json_runs_a_real_tiny_model_and_prints_the_final_status(tiny_llama_dir: Path, tmp_path: Path,
                                                                                    capsys):
    rows = [{"messages": [{"role": "user", "content": f"Say the code for item {i % 4}."},
                          {"role": "assistant", "content": f"CODE-{i % 4}-XYZ"}]} for i in range(16)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with Receiver(answers=[500]) as rx:  # the first POST fails: the sender retries
        done = run_main(capsys, "train", "--model", str(tiny_llama_dir), "--dataset", str(data), "--max-steps", "2",
                        "--batch-size", "4", "--max-length", "64", "--notify", rx.url, "--wait", "--json")
        bodies = rx.wait_for(2)
    assert done.returncode == 0, done.stdout + done.stderr
    status = json.loads(done.stdout)  # the final JobStatus, not the submit answer
    assert status["stage"] == "COMPLETED" and status["terminal"] is True
    assert status["outputs"]["result"]["steps"] == 2
    assert [r["status"] for r in rx.requests] == [500, 200] and bodies[0] == bodies[1]
    body = bodies[-1]
    assert body["job_id"] == status["job_id"] and body["stage"] == "COMPLETED" and body["method"] == "sft"
    assert body["metrics"]["steps"] == 2 and isinstance(body["metrics"]["train_loss"], float)
    assert body["outputs"]["adapter_dir"].endswith("adapter") and "train loss" in body["text"]
    listed = run_main(capsys, "jobs", "status", status["job_id"], "--json")
    assert_nowhere(rx.secret_path, done.stdout, done.stderr, listed.stdout, listed.stderr)


@pytest.mark.slow
def test_mcp_submit_with_notify_answers_without_the_url_and_a_cancel_posts(tiny_llama_dir: Path, tmp_path: Path):
    from mcp_client import in_memory, text_of

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"{i}?"},
                                                     {"role": "assistant", "content": str(i)}]}) + "\n" for i in range(8)))

    with Receiver() as rx:
        async def body(client):
            bad = await client.call_tool("submit_training", {"model": str(tiny_llama_dir), "dataset": str(data),
                                                             "notify": "ftp://" + rx.secret_path})
            submitted = await client.call_tool("submit_training", {"model": str(tiny_llama_dir), "dataset": str(data),
                                                                   "max_steps": 50, "notify": rx.url})
            job_id = submitted.structured_content["job_id"]
            status = await client.call_tool("job_status", {"job_id": job_id})
            canceled = await client.call_tool("cancel_job", {"job_id": job_id})
            return bad, submitted, status, canceled

        bad, submitted, status, canceled = in_memory(body)
        sent = rx.wait_for(1)[0]
    assert bad.is_error and "notify.bad_url" in text_of(bad)
    assert not submitted.is_error, text_of(submitted)
    assert submitted.structured_content["notify"] is True
    assert sent["job_id"] == submitted.structured_content["job_id"] and sent["stage"] in ("CANCELED", "COMPLETED")
    answers = [text_of(r) + json.dumps(r.structured_content) for r in (bad, submitted, status, canceled)]
    assert_nowhere(rx.secret_path, *answers)
