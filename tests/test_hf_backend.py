"""The `hf` backend against a local emulator of the Hugging Face Jobs API, driven by the real client.

Each test starts the emulator on 127.0.0.1 (tests/hf_emulator.py) and points huggingface_hub at it
with HF_ENDPOINT; HF_HUB_OFFLINE is lifted for that endpoint only. Nothing reaches the network.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from hf_emulator import HubEmulator, serve_hub
from tuneforge.backends.hf.errors import HubError
from tuneforge.config import RunConfig
from tuneforge.errors import ConfigError, TuneforgeError
from tuneforge.jobs.service import JobService
from tuneforge.jobs.workspace import support_files
from tuneforge.paths import template_path
from tuneforge.records import JobStore

USER = "alice"
ROWS = [
    {"messages": [{"role": "user", "content": f"What is {i} + {i}?"}, {"role": "assistant", "content": str(2 * i)}]}
    for i in range(12)
]


def event(kind: str, **fields: Any) -> str:
    return "##tuneforge-event " + json.dumps({"type": kind, **fields})


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubEmulator:
    yield from serve_hub(tmp_path, monkeypatch, USER, orgs=("acme",))


@pytest.fixture
def train_file(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "train.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return path


def make_config(train_file: Path, **overrides: Any) -> RunConfig:
    data = {
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "dataset": {"path": str(train_file)},
        "push_to_hub": f"{USER}/smollm2-sums",
        "timeout_seconds": 1800,
        "train": {"max_steps": 10},
    }
    data.update(overrides)
    return RunConfig.from_dict(data)


def submit(train_file: Path, flavor: str | None = "a10g-small", **overrides: Any):
    return JobService().submit_training(make_config(train_file, **overrides), backend="hf", flavor=flavor)


def job_posts(hub: HubEmulator) -> list:
    return [r for r in hub.calls("POST", rf"^/api/jobs/{USER}$") if r.status == 200]


# ---- submission ------------------------------------------------------------------------------------
def test_submit_ships_template_config_and_data_and_runs_uv_with_the_token_only_as_a_secret(hub, train_file):
    job = submit(train_file)

    assert job.stage == "SCHEDULING" and job.backend == "hf"
    hf = hub.jobs[job.backend_job_id]
    assert job.url == f"{hub.url}/jobs/{USER}/{job.backend_job_id}"
    assert hf["command"] == ["uv", "run", "/data/sft.py", "--config", "/data/config.json"]
    assert hf["dockerImage"].startswith("ghcr.io/astral-sh/uv:")
    assert hf["flavor"] == "a10g-small" and hf["timeoutSeconds"] == 1800
    assert hf["_secrets"] == {"HF_TOKEN": hub.token} and hf["secrets"] == ["HF_TOKEN"]
    assert hf["labels"]["tuneforge-job"] == job.job_id and hf["labels"]["tuneforge-method"] == "sft"
    assert hub.token not in json.dumps(hf["environment"]) + json.dumps(hf["labels"])
    assert hf["volumes"] == [{"type": "bucket", "source": f"{USER}/jobs-artifacts", "mountPath": "/data", "readOnly": True, "path": job.job_id}]

    files = hub.volume_files(job.backend_job_id)
    helpers = [rel.as_posix() for rel in support_files(template_path("sft").parent)]
    assert set(files) == {"sft.py", *helpers, "config.json", "dataset/train.jsonl"}
    assert files["sft.py"] == template_path("sft").read_bytes()
    for rel in helpers:  # imported by the script, from next to it
        assert files[rel] == (template_path("sft").parent / rel).read_bytes()
    assert files["dataset/train.jsonl"] == train_file.read_bytes()
    cloud = json.loads(files["config.json"])
    assert cloud["dataset"]["path"] == "/data/dataset/train.jsonl"
    assert cloud["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert cloud["output_dir"] == "outputs" and cloud["push_to_hub"] == f"{USER}/smollm2-sums"
    assert job.price_per_hour == pytest.approx(1.0)  # from the live hardware list
    assert job.outputs["hub_repo"] == f"{USER}/smollm2-sums"


def test_a_local_model_folder_travels_with_the_job(hub, train_file, tmp_path):
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    (model / "tokenizer.json").write_text("{}")
    (model / ".cache").mkdir()
    (model / ".cache" / "junk").write_text("x")
    job = submit(train_file, model=str(model))

    files = hub.volume_files(job.backend_job_id)
    assert {"model/config.json", "model/tokenizer.json"} <= set(files) and "model/.cache/junk" not in files
    assert json.loads(files["config.json"])["model"] == "/data/model"


def test_multi_gpu_flavor_runs_one_process_per_gpu_and_a_mismatched_launch_is_refused(hub, train_file):
    job = submit(train_file, flavor="a100x4", launch={"gpus": 4, "strategy": "ddp"})
    cloud = json.loads(hub.volume_files(job.backend_job_id)["config.json"])
    assert cloud["launch"] == {"gpus": 4, "strategy": "ddp"}
    assert hub.jobs[job.backend_job_id]["flavor"] == "a100x4"

    posts = len(job_posts(hub))
    with pytest.raises(ConfigError, match="4 GPUs"):
        submit(train_file, flavor="h200x4")  # default launch: 1 process on a 4-GPU machine
    with pytest.raises(ConfigError, match="no GPU"):
        submit(train_file, flavor="a10g-small", launch={"gpus": 2, "strategy": "ddp"})
    assert len(job_posts(hub)) == posts


def test_train_on_a_multi_gpu_flavor_launches_one_process_per_gpu(hub, train_file):
    from tuneforge.actions.train import start_training

    result = start_training(make_config(train_file), backend="hf", flavor="h200x4", skip_plan=True)
    job = JobStore().get(result.job_id)
    cloud = json.loads(hub.volume_files(job.backend_job_id)["config.json"])
    assert cloud["launch"] == {"gpus": 4, "strategy": "ddp"} and job.config.launch.model_dump() == cloud["launch"]


def test_launch_for_flavor_matches_the_official_multi_gpu_flavors():
    from tuneforge.flavors import launch_for_flavor

    expected = {"a10g-largex2": 2, "a10g-largex4": 4, "l4x4": 4, "a100x4": 4, "a100x8": 8, "h200x2": 2, "h200x4": 4,
                "h200x8": 8, "l40sx4": 4, "l40sx8": 8, "rtx-pro-6000x2": 2, "rtx-pro-6000x4": 4, "rtx-pro-6000x8": 8}
    for flavor, gpus in expected.items():
        assert launch_for_flavor(flavor).model_dump() == {"gpus": gpus, "strategy": "ddp"}
    assert launch_for_flavor("a100x8", "fsdp").strategy == "fsdp"
    for single in ("a10g-small", "a100-large", "h200", "l40sx1", "rtx-pro-6000", "t4-small", "cpu-basic"):
        assert launch_for_flavor(single).model_dump() == {"gpus": 1, "strategy": "none"}


def test_a_job_without_flavor_or_with_an_unknown_flavor_is_refused_before_anything_is_uploaded(hub, train_file):
    with pytest.raises(ConfigError, match="--flavor"):
        submit(train_file, flavor=None)
    with pytest.raises(ConfigError, match="Unknown Hugging Face Jobs flavor 'a10g-mega'"):
        submit(train_file, flavor="a10g-mega")
    assert not hub.calls("POST", "/api/buckets/") and not job_posts(hub)


@pytest.mark.parametrize(
    "user, push_to, expected",
    [
        (dict(role="read"), f"{USER}/m", "read-only"),
        (dict(is_pro=False, can_pay=False), f"{USER}/m", "no paid plan"),
        (dict(), "bob/m", "cannot push to bob/m"),
    ],
)
def test_account_problems_are_refused_before_anything_is_submitted(hub, train_file, user, push_to, expected):
    hub.add_user(hub.token, USER, **user)
    with pytest.raises(TuneforgeError, match=expected) as info:
        submit(train_file, push_to_hub=push_to)
    assert info.value.fix
    assert not hub.calls("POST", "/api/buckets/") and not job_posts(hub)
    record = JobStore().list()[0]
    assert record.stage == "ERROR" and hub.token not in record.model_dump_json()


def test_a_missing_token_is_a_clear_error(hub, train_file, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(TuneforgeError, match="No Hugging Face token") as info:
        submit(train_file)
    assert "HF_TOKEN" in info.value.fix and not hub.requests


def test_the_token_from_huggingface_hub_login_is_used_when_hf_token_is_unset(hub, train_file, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN")
    (tmp_path / "hf_home").mkdir(exist_ok=True)
    (tmp_path / "hf_home" / "token").write_text(hub.token)
    job = submit(train_file)
    assert hub.jobs[job.backend_job_id]["_secrets"] == {"HF_TOKEN": hub.token}


def test_offline_mode_is_refused_with_the_fix(hub, train_file, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(TuneforgeError, match="HF_HUB_OFFLINE") as info:
        submit(train_file)
    assert "Unset HF_HUB_OFFLINE" in info.value.fix and not hub.requests


# ---- errors and retries ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method, path, status, expected",
    [
        ("GET", "/api/whoami-v2", 401, "rejected the token"),
        ("POST", rf"^/api/jobs/{USER}$", 402, "paid plan or credits"),
        ("POST", rf"^/api/jobs/{USER}$", 403, "403 Forbidden"),
        ("POST", rf"^/api/jobs/{USER}$", 409, "409 Conflict"),
        ("POST", rf"^/api/jobs/{USER}$", 400, "rejected the request"),
    ],
)
def test_hub_errors_on_submit_become_clear_messages_with_a_fix(hub, train_file, method, path, status, expected):
    hub.fail(method, path, status, times=10)
    with pytest.raises(HubError, match=expected) as info:
        submit(train_file)
    assert info.value.status == status and info.value.fix
    assert len(hub.calls("POST", rf"^/api/jobs/{USER}$")) <= 1  # never retried: not safe to repeat
    record = JobStore().list()[0]
    assert record.stage == "ERROR" and expected in record.message


def test_a_token_echoed_by_the_hub_is_scrubbed_from_errors_and_records(hub, train_file):
    hub.fail("POST", rf"^/api/jobs/{USER}$", 400, body={"error": f"bad header Bearer {hub.token}"})
    with pytest.raises(HubError) as info:
        submit(train_file)
    assert hub.token not in str(info.value) and "hf_***" in str(info.value)
    assert hub.token not in JobStore().list()[0].model_dump_json()


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_rejected_submission_is_retried_after_checking_that_no_job_exists(hub, train_file, status):
    hub.fail("POST", rf"^/api/jobs/{USER}$", status, times=1)
    job = submit(train_file)
    assert len(hub.jobs) == 1 and job.backend_job_id in hub.jobs
    assert hub.calls("GET", rf"^/api/jobs/{USER}$")[0].query == [("label", f"tuneforge-job={job.job_id}")]


def test_a_submission_that_failed_after_the_hub_created_the_job_adopts_it_instead_of_a_second(hub, train_file):
    hub.fail("POST", rf"^/api/jobs/{USER}$", 502, after=True)
    job = submit(train_file)
    assert len(hub.jobs) == 1 and job.backend_job_id == next(iter(hub.jobs))
    assert len(hub.calls("POST", rf"^/api/jobs/{USER}$")) == 1 and hub.calls("GET", rf"^/api/jobs/{USER}$")


def test_a_submission_that_timed_out_after_the_hub_created_the_job_adopts_it(hub, train_file, monkeypatch):
    monkeypatch.setenv("TUNEFORGE_HF_TIMEOUT", "1")
    hub.delay("POST", rf"^/api/jobs/{USER}$", 3.0, after=True)
    job = submit(train_file)
    assert len(hub.jobs) == 1 and job.backend_job_id == next(iter(hub.jobs))
    assert len(hub.calls("POST", rf"^/api/jobs/{USER}$")) == 1 and hub.calls("GET", rf"^/api/jobs/{USER}$")


def test_a_hub_that_keeps_failing_gives_up_after_three_tries_without_creating_a_job(hub, train_file):
    hub.fail("POST", rf"^/api/jobs/{USER}$", 500, times=10)
    with pytest.raises(HubError, match=r"server error \(500\).*tried 3 times") as info:
        submit(train_file)
    assert "status.huggingface.co" in info.value.fix
    assert len(hub.calls("POST", rf"^/api/jobs/{USER}$")) == 3 and not hub.jobs


def test_adoption_checks_the_label_itself_across_pages(hub, train_file):
    from tuneforge.backends.hf import HfJobsBackend
    from tuneforge.backends.hf.connection import HubConnection

    first = submit(train_file)
    for _ in range(3):
        submit(train_file)
    hub.page_size = 1
    hub.ignore_label_filter = True  # a Hub that ignored the filter must not make us adopt a stranger
    backend = HfJobsBackend()
    connection = HubConnection.open()
    found = backend._find(connection, USER, first.job_id)
    assert found.id == first.backend_job_id
    assert backend._find(connection, USER, "tf-never-submitted") is None


def test_an_unreachable_hub_is_a_connection_error_with_a_fix(hub, train_file, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed}")
    with pytest.raises(HubError, match="could not connect") as info:
        submit(train_file)
    assert "network" in info.value.fix


@pytest.mark.parametrize("status", [500, 429])
def test_status_reads_are_retried_with_backoff(hub, train_file, status):
    job = submit(train_file)
    hub.set_stage(job.backend_job_id, "RUNNING")
    hub.fail("GET", rf"/api/jobs/{USER}/{job.backend_job_id}$", status, times=2)
    assert JobService().refresh(job.job_id).stage == "RUNNING"


@pytest.mark.parametrize("status, expected", [(503, "server error"), (429, "rate-limiting")])
def test_a_status_read_that_keeps_failing_says_so_and_leaves_the_record_alone(hub, train_file, status, expected):
    job = submit(train_file)
    hub.fail("GET", rf"/api/jobs/{USER}/{job.backend_job_id}$", status, times=10)
    with pytest.raises(HubError, match=expected) as info:
        JobService().refresh(job.job_id)
    assert info.value.fix and info.value.status == status
    assert len(hub.calls("GET", rf"/api/jobs/{USER}/{job.backend_job_id}$")) == 4  # 1 + 3 retries
    assert JobStore().get(job.job_id).stage == "SCHEDULING"


def test_a_job_deleted_elsewhere_is_a_404_with_a_fix(hub, train_file):
    job = submit(train_file)
    del hub.jobs[job.backend_job_id]
    with pytest.raises(HubError, match="404") as info:
        JobService().refresh(job.job_id)
    assert "deleted" in info.value.fix


# ---- stages, progress, logs, cancel ----------------------------------------------------------------
@pytest.mark.parametrize(
    "hf_stage, ours, message",
    [
        ("SCHEDULING", "SCHEDULING", "waiting for a a10g-small machine"),
        ("RUNNING", "RUNNING", "running"),
        ("UPDATING", "RUNNING", "running"),
        ("COMPLETED", "COMPLETED", "completed"),
        ("ERROR", "ERROR", "the job failed on Hugging Face"),
        ("CANCELED", "CANCELED", "canceled"),
        ("DELETED", "CANCELED", "deleted on Hugging Face"),
    ],
)
def test_every_hf_stage_maps_to_ours(hub, train_file, hf_stage, ours, message):
    job = submit(train_file)
    hub.set_stage(job.backend_job_id, hf_stage)
    status = JobService().status(job.job_id)
    assert status.stage == ours and message in status.message
    assert status.terminal == (ours in ("COMPLETED", "ERROR", "CANCELED"))
    if ours != "SCHEDULING":
        assert status.started_at is not None or ours == "CANCELED"


def test_progress_comes_from_the_template_events_in_the_log_stream_and_cost_from_elapsed_time(hub, train_file):
    job = submit(train_file)
    service = JobService()
    assert service.status(job.job_id).progress is None  # scheduling: no log yet

    hub.set_stage(job.backend_job_id, "RUNNING")
    hub.append_log(job.backend_job_id, event("status", message="loading model"), "Downloading shards: 100%")
    hub.append_log(job.backend_job_id, *[event("progress", step=s, total_steps=10, loss=2.0 - s / 10) for s in (1, 2, 3)])
    hub.append_log(job.backend_job_id, "{'loss': 1.7}", event("status", message="training"))
    status = service.status(job.job_id, log_tail=3, raw=True)

    assert status.stage == "RUNNING" and status.message == "training"
    assert status.progress["step"] == 3 and status.progress["total_steps"] == 10 and status.progress["loss"] == pytest.approx(1.7)
    assert status.log_tail[-1] == event("status", message="training") and len(status.log_tail) == 3
    assert status.elapsed_seconds is not None
    assert status.cost_so_far_usd == pytest.approx(status.elapsed_seconds / 3600 * 1.0, abs=1e-3)
    assert not any("Job started" in line for line in service.logs(job.job_id, tail=None))


def test_a_completed_job_keeps_its_log_result_and_outputs(hub, train_file):
    job = submit(train_file)
    hub.set_stage(job.backend_job_id, "RUNNING")
    lines = [event("progress", step=10, total_steps=10, loss=0.5), event("result", eval_loss_before=2.1, eval_loss_after=1.2), event("status", message="done")]
    hub.append_log(job.backend_job_id, *lines)
    hub.set_stage(job.backend_job_id, "COMPLETED")
    service = JobService()
    final = service.wait(job.job_id, timeout=30)

    assert final.stage == "COMPLETED" and final.finished_at is not None and final.progress["step"] == 10
    assert final.outputs["result"] == {"eval_loss_before": 2.1, "eval_loss_after": 1.2}
    assert final.outputs["hub_repo"] == f"{USER}/smollm2-sums"
    assert Path(final.job_dir, "job.log").read_text().splitlines() == lines
    before = len(hub.requests)
    assert service.logs(job.job_id, tail=2) == lines[-2:]
    assert service.status(job.job_id).stage == "COMPLETED"
    assert len(hub.requests) == before  # a finished job is answered from its record and saved log


def test_a_failed_job_reports_the_script_error_and_the_log_tail(hub, train_file):
    job = submit(train_file)
    hub.set_stage(job.backend_job_id, "RUNNING")
    hub.append_log(job.backend_job_id, event("status", message="error: dataset rows do not fit SFT"), "ERROR: dataset rows do not fit SFT")
    hub.set_stage(job.backend_job_id, "ERROR", "Job failed with exit code: 2")
    status = JobService().status(job.job_id)
    assert status.stage == "ERROR" and "dataset rows do not fit SFT" in status.message
    assert "ERROR: dataset rows do not fit SFT" in status.error


def test_a_job_stopped_at_its_time_limit_says_timeout(hub, train_file):
    job = submit(train_file)
    hub.set_stage(job.backend_job_id, "RUNNING")
    hub.set_stage(job.backend_job_id, "ERROR", "Job timeout")
    status = JobService().status(job.job_id)
    assert status.stage == "ERROR" and status.message.startswith("timeout:") and "30m" in status.message


def test_cancel_stops_the_hf_job(hub, train_file):
    job = submit(train_file)
    hub.set_stage(job.backend_job_id, "RUNNING")
    canceled = JobService().cancel(job.job_id)
    assert canceled.stage == "CANCELED"
    assert hub.jobs[job.backend_job_id]["status"]["stage"] == "CANCELED"
    assert hub.calls("POST", rf"/api/jobs/{USER}/{job.backend_job_id}/cancel$")


def test_a_cancel_the_hub_refuses_leaves_the_job_active_so_it_can_be_retried(hub, train_file):
    job = submit(train_file)
    hub.fail("POST", "/cancel$", 503, times=10)
    with pytest.raises(HubError):
        JobService().cancel(job.job_id)
    assert JobStore().get(job.job_id).stage == "SCHEDULING"


def test_while_running_the_log_is_read_at_most_every_poll_interval(hub, train_file, monkeypatch):
    monkeypatch.setenv("TUNEFORGE_HF_LOG_POLL_SECONDS", "3600")
    job = submit(train_file)
    hub.set_stage(job.backend_job_id, "RUNNING")
    hub.append_log(job.backend_job_id, event("progress", step=1, total_steps=4))
    service = JobService()
    assert service.refresh(job.job_id).progress["step"] == 1
    hub.append_log(job.backend_job_id, event("progress", step=2, total_steps=4))
    assert service.refresh(job.job_id).progress["step"] == 1  # within the interval: the stage only
    assert len(hub.calls("GET", "/logs$")) == 1
    hub.set_stage(job.backend_job_id, "COMPLETED")
    assert service.refresh(job.job_id).progress["step"] == 2  # the end is always read


def test_an_interrupted_submission_is_adopted_by_label_on_the_next_refresh(hub, train_file):
    job = submit(train_file)
    JobStore().update(job.job_id, backend_job_id=None, url=None, outputs={})  # as if the CLI died before recording
    refreshed = JobService().refresh(job.job_id)
    assert refreshed.backend_job_id == job.backend_job_id and refreshed.url == job.url


def test_a_quiet_log_stream_held_open_does_not_stall_status(hub, train_file):
    job = submit(train_file)
    hub.set_stage(job.backend_job_id, "RUNNING")
    hub.append_log(job.backend_job_id, event("progress", step=1, total_steps=4))
    hub.hold_logs_open = 30.0  # the real Hub keeps the stream open while the job runs
    t0 = time.monotonic()
    status = JobService().status(job.job_id, raw=True)
    assert status.progress["step"] == 1 and status.log_tail == [event("progress", step=1, total_steps=4)]
    assert len(hub.calls("GET", "/logs$")) == 1  # refresh and the log tail share one read
    assert time.monotonic() - t0 < 15  # the client's 5 s read timeout ends the read
