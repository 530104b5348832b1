"""Notifications, fast parts: `_shared/notify.py` against a real local HTTP receiver (retries, a receiver
that fails or never answers), the summary's `text`, the cloud job's wrapper run here on tiny scripts, and
the hf path against the strict emulator (the URL only as a secret, the command under the wrapper)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hf_emulator import serve_hub
from notify_receiver import Receiver
from tuneforge import paths
from tuneforge.errors import ConfigError
from tuneforge.templates._shared import notify

WRAPPER = paths.template_path("sft").parent / "_notify_after.py"


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook/{secrets.token_hex(8)}"


# ---- send ----------------------------------------------------------------------------------------
def test_send_retries_5xx_with_exponential_backoff_then_delivers_once():
    with Receiver(answers=[500, 503]) as rx:
        started = time.monotonic()
        assert notify.send(rx.url, {"text": "hello", "job_id": "tf-1"}, backoff=0.2) is True
        took = time.monotonic() - started
        reqs = rx.requests
    assert [r["status"] for r in reqs] == [500, 503, 200]
    assert reqs[1]["at"] - reqs[0]["at"] >= 0.18 and reqs[2]["at"] - reqs[1]["at"] >= 0.38  # 0.2 s, then 0.4 s
    assert took < 5
    assert all(json.loads(r["body"]) == {"text": "hello", "job_id": "tf-1"} for r in reqs)
    assert reqs[0]["headers"]["Content-Type"] == "application/json"


def test_a_429_is_retried_and_a_plain_4xx_is_not(capsys):
    with Receiver(answers=[429]) as rx:
        assert notify.send(rx.url, {"text": "x"}, backoff=0.01) is True
        assert len(rx.requests) == 2
    with Receiver(answers=[404, 404]) as rx:
        assert notify.send(rx.url, {"text": "x"}, backoff=0.01) is False
        assert len(rx.requests) == 1
    err = capsys.readouterr().err
    assert "HTTP 404" in err and rx.secret_path not in err  # says why, never where


def test_a_closed_port_or_a_receiver_that_never_answers_gives_up_in_bounded_time_without_raising(capsys):
    url = closed_port_url()
    started = time.monotonic()
    assert notify.send(url, {"text": "x"}, attempts=3, backoff=0.05) is False
    assert time.monotonic() - started < 2
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hung = f"http://127.0.0.1:{silent.getsockname()[1]}/hook/{secrets.token_hex(8)}"
        started = time.monotonic()
        assert notify.send(hung, {"text": "x"}, attempts=5, timeout=0.3, backoff=0.05, budget=1.5) is False
        assert time.monotonic() - started < 2.5
    err = capsys.readouterr().err
    assert "notification not sent" in err and url not in err and hung not in err


def test_no_secret_ever_goes_into_a_payload(monkeypatch):
    token = "hf_" + secrets.token_urlsafe(24)
    monkeypatch.setenv("HF_TOKEN", token)
    with Receiver() as rx:
        body = {"text": f"failed: 401 for {token}", "error": f"POST {rx.url} said hf_{'A' * 30}",
                "nested": [{"k": rx.url}]}
        assert notify.send(rx.url, body)
        raw = rx.requests[0]["body"].decode()
    assert token not in raw and rx.secret_path not in raw and "hf_" + "A" * 30 not in raw
    assert "failed: 401 for" in raw


def test_an_invalid_url_sends_nothing_and_is_refused_at_submit_without_being_echoed(monkeypatch):
    assert notify.send("not a url", {"text": "x"}) is False and notify.send(None, {}) is False
    from tuneforge.secrets import notify_url

    with pytest.raises(ConfigError) as err:
        notify_url("ftp://secret-host-abcdef/x")
    assert err.value.code == "notify.bad_url" and "secret-host-abcdef" not in err.value.message + err.value.fix
    monkeypatch.setenv("TUNEFORGE_NOTIFY_URL", "https://hooks.example.invalid/T1/B2/c3d4e5f6")
    assert notify_url(None) == "https://hooks.example.invalid/T1/B2/c3d4e5f6"  # the environment's, when none is given
    from tuneforge.secrets import scrub

    assert "c3d4e5f6" not in scrub("posting to https://hooks.example.invalid/T1/B2/c3d4e5f6", [])  # registered: scrubbed


# ---- summary -------------------------------------------------------------------------------------
def test_the_summary_carries_metrics_outputs_diagnosis_and_a_slack_text():
    result = {"train_loss": 0.4321, "steps": 12, "eval_loss_before": 2.5, "eval_loss_after": 1.25,
              "eval": {"before": {"exact_match": 0.1}, "after": {"exact_match": 0.8}}, "adapter_dir": "/o/adapter",
              "hub_repo": "alice/m", "log_history": [{"loss": 1}] * 50}
    done = notify.summary(job_id="tf-1", stage="COMPLETED", method="sft", backend="hf", result=result, cost_usd=0.42,
                          elapsed_seconds=125)
    assert done["metrics"] == {"train_loss": 0.4321, "steps": 12, "eval_loss_before": 2.5, "eval_loss_after": 1.25,
                               "eval": {"before": {"exact_match": 0.1}, "after": {"exact_match": 0.8}}}
    assert done["outputs"] == {"adapter_dir": "/o/adapter", "hub_repo": "alice/m"}
    text = done["text"]
    assert "tf-1" in text and "COMPLETED" in text and "2m05s" in text and "$0.42" in text
    assert "train loss 0.4321" in text and "eval loss 2.5 -> 1.25" in text and "exact_match 0.1 -> 0.8" in text
    assert "alice/m" in text
    diag = {"kind": "out_of_memory", "evidence": ["CUDA out of memory"], "fix": "halve the batch", "retry_with": {}}
    failed = notify.summary(job_id="tf-2", stage="ERROR", message="CUDA out of memory", diagnosis=diag)
    assert failed["diagnosis"] == diag
    assert "ERROR" in failed["text"] and "CUDA out of memory" in failed["text"] and "out_of_memory" in failed["text"]
    assert "halve the batch" in failed["text"]


# ---- the cloud job's wrapper, run here ---------------------------------------------------------
def write(path: Path, code: str) -> Path:
    path.write_text(textwrap.dedent(code))
    return path


def run_wrapper(rx: Receiver, *command: str, wrapper: Path = WRAPPER, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "TUNEFORGE_NOTIFY_URL": rx.url, "TUNEFORGE_JOB_ID": "tf-cloud-1",
            "TUNEFORGE_NOTIFY_CONTEXT": json.dumps({"kind": "train", "method": "sft", "backend": "hf",
                                                     "price_per_hour": 3600.0, "outputs": {"hub_repo": "alice/m"}}),
            **env}
    return subprocess.run([sys.executable, str(wrapper), "--", *command], env=full, capture_output=True, text=True,
                          timeout=60)


def test_the_wrapper_posts_after_a_failing_script_and_exits_with_its_code(tmp_path: Path):
    script = write(tmp_path / "fails.py", """
        import json, os, sys
        print("url seen by the script:", os.environ.get("TUNEFORGE_NOTIFY_URL"))
        print("##tuneforge-event " + json.dumps({"type": "status", "message": "error: column 'messages' is missing"}))
        print("ValueError: column 'messages' is missing", file=sys.stderr)
        sys.exit(3)
    """)
    with Receiver(answers=[500]) as rx:
        done = run_wrapper(rx, sys.executable, str(script))
        bodies = rx.wait_for(2)
    assert done.returncode == 3
    assert "url seen by the script: None" in done.stdout  # the script's output passes through; it never sees the URL
    assert rx.secret_path not in done.stdout + done.stderr
    body = bodies[-1]
    assert body["stage"] == "ERROR" and body["job_id"] == "tf-cloud-1" and body["method"] == "sft"
    assert body["message"] == "column 'messages' is missing"
    assert "ValueError: column 'messages' is missing" in body["error"]
    assert body["outputs"] == {"hub_repo": "alice/m"} and body["cost_usd"] is not None and body["cost_usd"] > 0
    assert "ERROR" in body["text"] and "column 'messages' is missing" in body["text"]


def test_the_wrapper_reports_the_result_event_of_a_completed_script(tmp_path: Path):
    script = write(tmp_path / "ok.py", """
        import json
        print("##tuneforge-event " + json.dumps({"type": "result", "train_loss": 0.5, "steps": 3,
                                                 "hub_repo": "alice/m", "eval_loss_before": 2.0, "eval_loss_after": 1.0}))
    """)
    with Receiver() as rx:
        done = run_wrapper(rx, sys.executable, str(script))
        body = rx.wait_for(1)[0]
    assert done.returncode == 0
    assert body["stage"] == "COMPLETED" and body["metrics"]["train_loss"] == 0.5 and body["metrics"]["steps"] == 3
    assert "eval loss 2 -> 1" in body["text"]


def test_a_stopped_job_is_reported_canceled_and_the_wrapper_keeps_the_signal_exit(tmp_path: Path):
    script = write(tmp_path / "slow.py", """
        import time
        print("started", flush=True)
        time.sleep(60)
    """)
    with Receiver() as rx:
        env = {**os.environ, "TUNEFORGE_NOTIFY_URL": rx.url, "TUNEFORGE_JOB_ID": "tf-cloud-2"}
        proc = subprocess.Popen([sys.executable, str(WRAPPER), "--", sys.executable, str(script)], env=env,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "started"
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        body = rx.wait_for(1)[0]
    assert body["stage"] == "CANCELED" and body["job_id"] == "tf-cloud-2"
    assert rc == 128 + signal.SIGTERM


def test_without_a_url_the_wrapper_only_runs_the_command(tmp_path: Path):
    script = write(tmp_path / "ok.py", "import sys; sys.exit(5)\n")
    env = {k: v for k, v in os.environ.items() if k != "TUNEFORGE_NOTIFY_URL"}
    done = subprocess.run([sys.executable, str(WRAPPER), "--", sys.executable, str(script)], env=env, timeout=30)
    assert done.returncode == 5


# ---- the hf path, against the strict emulator --------------------------------------------------
USER = "alice"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    yield from serve_hub(tmp_path, monkeypatch, USER)


def hf_config(tmp_path: Path):
    from tuneforge.config import RunConfig

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"{i}?"},
                                                     {"role": "assistant", "content": str(i)}]}) + "\n" for i in range(8)))
    return RunConfig.from_dict({"model": "HuggingFaceTB/SmolLM2-135M-Instruct", "dataset": {"path": str(data)},
                                "push_to_hub": f"{USER}/m", "timeout_seconds": 1800, "train": {"max_steps": 2}})


def test_an_hf_job_gets_the_url_only_as_a_secret_and_runs_under_the_wrapper_which_posts(hub, tmp_path):
    from tuneforge.jobs.service import JobService
    from tuneforge.records import JobStore

    with Receiver() as rx:
        hub.watched_secrets.add(rx.url)
        job = JobService().submit_training(hf_config(tmp_path), backend="hf", flavor="a10g-small", notify_url=rx.url)
        hf = hub.jobs[job.backend_job_id]
        assert job.notify is True and JobStore().get(job.job_id).notify is True
        assert hf["_secrets"]["TUNEFORGE_NOTIFY_URL"] == rx.url and "TUNEFORGE_NOTIFY_URL" in hf["secrets"]
        assert hf["command"] == ["python3", "/data/_notify_after.py", "--", "uv", "run", "/data/sft.py",
                                 "--config", "/data/config.json"]
        context = json.loads(hf["environment"]["TUNEFORGE_NOTIFY_CONTEXT"])
        assert context["method"] == "sft" and context["price_per_hour"] == pytest.approx(1.0)
        files = hub.volume_files(job.backend_job_id)
        assert {"_notify_after.py", "_shared/notify.py", "_shared/events.py"} <= set(files)

        # Run the shipped command here: the uploaded files at /data, the job's environment and secrets, and a
        # stand-in for `uv run sft.py` that fails the way a template does.
        data = tmp_path / "data"
        for rel, content in files.items():
            (data / rel).parent.mkdir(parents=True, exist_ok=True)
            (data / rel).write_bytes(content)
        stand_in = write(tmp_path / "stand_in.py", "import sys; print('RuntimeError: CUDA out of memory'); sys.exit(1)\n")
        command = hf["command"]
        cut = command.index("--") + 1
        argv = [sys.executable, str(data / Path(command[1]).name), "--", sys.executable, str(stand_in)]
        assert command[:cut] == ["python3", "/data/_notify_after.py", "--"]
        env = {**os.environ, **hf["environment"], **hf["_secrets"]}
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        body = rx.wait_for(1)[0]
    assert done.returncode == 1
    assert body["stage"] == "ERROR" and body["job_id"] == job.job_id and body["outputs"] == {"hub_repo": f"{USER}/m"}
    assert "CUDA out of memory" in body["message"] and hf["_secrets"]["HF_TOKEN"] not in json.dumps(body)
    # the URL is nowhere on disk and in no record
    for path in paths.home().rglob("*"):
        if path.is_file():
            assert rx.secret_path.encode() not in path.read_bytes(), path


def test_without_notify_the_hf_command_is_unchanged_and_the_emulator_refuses_a_url_outside_secrets(hub, tmp_path):
    from huggingface_hub import HfApi
    from tuneforge.jobs.service import JobService

    job = JobService().submit_training(hf_config(tmp_path), backend="hf", flavor="a10g-small")
    hf = hub.jobs[job.backend_job_id]
    assert hf["command"][:2] == ["uv", "run"] and "TUNEFORGE_NOTIFY_URL" not in hf["_secrets"] and not job.notify
    url = "https://hooks.example.invalid/services/T1/B2/" + secrets.token_hex(8)
    hub.watched_secrets.add(url)
    api = HfApi(endpoint=hub.url, token=os.environ["HF_TOKEN"])
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError, match="outside `secrets`"):
        api.run_job(image="ubuntu", command=["echo"], env={"TUNEFORGE_NOTIFY_URL": url}, namespace=USER)
    with pytest.raises(HfHubHTTPError, match="outside `secrets`"):
        api.run_job(image="ubuntu", command=["curl", url], secrets={"TUNEFORGE_NOTIFY_URL": url}, namespace=USER)
    api.run_job(image="ubuntu", command=["echo"], secrets={"TUNEFORGE_NOTIFY_URL": url}, namespace=USER)
