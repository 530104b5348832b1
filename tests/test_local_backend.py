"""The local backend's job lifecycle, with real detached processes and real SQLite records.

Most tests run a small stand-in script (it prints the same structured events a template prints) so
that each lifecycle edge (finish, crash, timeout, cancel, kill -9) takes seconds; the real template
is exercised in test_sft_template.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from tuneforge.config import RunConfig
from tuneforge.jobs.service import JobService
from tuneforge.progress import EVENT_PREFIX
from tuneforge.records import JobSpec

FAKE = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    P = "##tuneforge-event "
    steps = int(os.environ.get("FAKE_STEPS", "3"))
    delay = float(os.environ.get("FAKE_DELAY", "0.2"))
    if os.environ.get("FAKE_GRANDCHILD"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open(os.environ["FAKE_GRANDCHILD"], "w").write(str(child.pid))
    print(P + json.dumps({"type": "status", "message": "training"}), flush=True)
    for i in range(1, steps + 1):
        print("Epoch 1:  50%|#####     | fake tqdm noise", flush=True)
        print(P + json.dumps({"type": "progress", "step": i, "total_steps": steps, "loss": 2.0 / i,
                              "learning_rate": 1e-4, "tokens_per_second": 100.0 * i, "eta_seconds": (steps - i) * delay}), flush=True)
        time.sleep(delay)
    if os.environ.get("FAKE_CRASH"):
        raise RuntimeError("CUDA out of memory (fake crash for the test)")
    out = os.environ.get("FAKE_OUT")
    if out:
        os.makedirs(out, exist_ok=True)
        json.dump({"train_loss": 0.5, "eval_loss_before": 2.0, "eval_loss_after": 1.0}, open(os.path.join(out, "result.json"), "w"))
    """
)


@pytest.fixture
def fake_script(tmp_path: Path) -> Path:
    path = tmp_path / "fake_train.py"
    path.write_text(FAKE)
    return path


def spec(script: Path, timeout: int | None = None, **env: str) -> JobSpec:
    return JobSpec(script=script, env=env, timeout_seconds=timeout)


def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_job_goes_from_scheduling_to_running_to_completed_with_exact_progress(fake_script: Path):
    service = JobService()
    job = service.submit(spec(fake_script, FAKE_STEPS="4", FAKE_DELAY="0.3"))
    assert job.stage in ("SCHEDULING", "RUNNING")
    wait_until(lambda: service.status(job.job_id).stage == "RUNNING", what="RUNNING")
    done = service.wait(job.job_id, timeout=60, poll_seconds=0.1)
    assert done.stage == "COMPLETED"
    status = service.status(job.job_id)
    assert status.progress == {"step": 4, "total_steps": 4, "loss": 0.5, "learning_rate": 1e-4,
                               "tokens_per_second": 400.0, "eta_seconds": 0.0}
    assert status.finished_at and status.started_at and status.finished_at >= status.started_at
    assert not any("fake tqdm noise" in line for line in status.log_tail)  # terminal noise stays out of a tail
    assert any("fake tqdm noise" in line for line in service.status(job.job_id, raw=True).log_tail)


def test_result_json_of_the_job_becomes_its_outputs(fake_script: Path, tmp_path: Path):
    service = JobService()
    out = tmp_path / "out"
    job = service.submit(spec(fake_script, FAKE_OUT=str(out)), config=RunConfig(model="owner/model", dataset={"path": "owner/data"}, output_dir=str(out)))
    done = service.wait(job.job_id, timeout=60, poll_seconds=0.1)
    assert done.outputs["result"]["eval_loss_after"] == 1.0
    assert done.outputs["output_dir"] == str(out)


def test_a_crashing_script_ends_in_error_with_the_log_tail(fake_script: Path):
    service = JobService()
    job = service.submit(spec(fake_script, FAKE_CRASH="1", FAKE_STEPS="1"))
    done = service.wait(job.job_id, timeout=60, poll_seconds=0.1)
    assert done.stage == "ERROR"
    assert "exited with code 1" in done.message
    assert "CUDA out of memory (fake crash for the test)" in (done.error or "")


def test_a_job_over_its_timeout_is_stopped_and_says_timeout(fake_script: Path):
    service = JobService()
    job = service.submit(spec(fake_script, timeout=1, FAKE_STEPS="200", FAKE_DELAY="0.1"))
    done = service.wait(job.job_id, timeout=60, poll_seconds=0.1)
    assert done.stage == "ERROR"
    assert done.message.startswith("timeout")
    assert not psutil.pid_exists(done.pgid) or psutil.Process(done.pgid).status() == psutil.STATUS_ZOMBIE


def test_cancel_ends_the_whole_process_group(fake_script: Path, tmp_path: Path):
    service = JobService()
    pidfile = tmp_path / "grandchild.pid"
    job = service.submit(spec(fake_script, FAKE_STEPS="500", FAKE_DELAY="0.1", FAKE_GRANDCHILD=str(pidfile)))
    wait_until(pidfile.exists, what="grandchild start")
    grandchild = int(wait_until(lambda: pidfile.read_text().strip(), what="grandchild pid"))
    assert psutil.pid_exists(grandchild)
    canceled = service.cancel(job.job_id)
    assert canceled.stage == "CANCELED"
    wait_until(lambda: not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE,
               timeout=15, what="grandchild to die")
    assert service.status(job.job_id).stage == "CANCELED"  # the supervisor's late write did not overwrite it


def test_kill_9_of_the_training_process_is_reported_as_error(fake_script: Path):
    service = JobService()
    job = service.submit(spec(fake_script, FAKE_STEPS="500", FAKE_DELAY="0.1"))
    pgid = wait_until(lambda: service.store.get(job.job_id).pgid, what="training process")
    wait_until(lambda: (service.status(job.job_id).progress or {}).get("step"), what="first step")
    os.kill(pgid, signal.SIGKILL)
    done = service.wait(job.job_id, timeout=30, poll_seconds=0.1)
    assert done.stage == "ERROR"
    assert "SIGKILL" in done.message


def test_kill_9_of_the_job_supervisor_is_reported_as_error_not_running_forever(fake_script: Path):
    service = JobService()
    job = service.submit(spec(fake_script, FAKE_STEPS="500", FAKE_DELAY="0.1"))
    wait_until(lambda: (service.status(job.job_id).progress or {}).get("step"), what="first step")
    record = service.store.get(job.job_id)
    os.kill(record.pid, signal.SIGKILL)
    done = service.wait(job.job_id, timeout=30, poll_seconds=0.1)
    assert done.stage == "ERROR"
    assert "died unexpectedly" in done.message
    assert "fake tqdm noise" in (done.error or "")
    # and the orphaned training process was cleaned up
    wait_until(lambda: not psutil.pid_exists(record.pgid) or psutil.Process(record.pgid).status() == psutil.STATUS_ZOMBIE,
               timeout=15, what="orphan cleanup")


def test_only_one_local_job_runs_at_a_time_the_next_waits_in_scheduling(fake_script: Path):
    service = JobService()
    first = service.submit(spec(fake_script, FAKE_STEPS="20", FAKE_DELAY="0.1"))
    wait_until(lambda: service.status(first.job_id).stage == "RUNNING", what="first RUNNING")
    second = service.submit(spec(fake_script, FAKE_STEPS="1", FAKE_DELAY="0.01"))
    wait_until(lambda: "waiting" in service.status(second.job_id).message, what="second to report waiting")
    assert service.status(second.job_id).stage == "SCHEDULING"
    assert service.status(first.job_id).stage == "RUNNING"
    assert service.wait(second.job_id, timeout=60, poll_seconds=0.1).stage == "COMPLETED"
    first_done = service.store.get(first.job_id)
    second_done = service.store.get(second.job_id)
    assert second_done.started_at >= first_done.finished_at - 0.5


# ---- through the CLI, as separate processes ------------------------------------------------------------
@pytest.fixture
def fake_templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A template folder whose sft.py is the stand-in script (TUNEFORGE_TEMPLATE_DIR)."""
    d = tmp_path / "templates"
    d.mkdir()
    (d / "sft.py").write_text(FAKE)
    monkeypatch.setenv("TUNEFORGE_TEMPLATE_DIR", str(d))
    return d


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    path = tmp_path / "data.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]} for i in range(12)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def cli_train(cli: list[str], model: Path, data: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [*cli, "train", "--model", str(model), "--dataset", str(data), "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def test_kill_9_of_the_launching_cli_leaves_the_job_running_to_completion(
    tuneforge_cli, fake_templates, tiny_dataset, tiny_llama_dir
):
    model = tiny_llama_dir
    env = {**os.environ, "FAKE_STEPS": "15", "FAKE_DELAY": "0.2"}
    proc = subprocess.Popen([*tuneforge_cli, "train", "--model", str(model), "--dataset", str(tiny_dataset), "--wait"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    service = JobService()
    job = wait_until(lambda: service.store.list(limit=1), timeout=120, what="job record")[0]
    wait_until(lambda: service.status(job.job_id).stage == "RUNNING", what="RUNNING")
    proc.kill()
    proc.wait()
    done = service.wait(job.job_id, timeout=60, poll_seconds=0.2)
    assert done.stage == "COMPLETED"
    assert done.progress["step"] == 15


def test_twenty_concurrent_submissions_make_twenty_records_and_all_complete(
    tuneforge_cli, fake_templates, tiny_dataset, tiny_llama_dir
):
    model = tiny_llama_dir
    env = {**os.environ, "FAKE_STEPS": "1", "FAKE_DELAY": "0.01"}
    with ThreadPoolExecutor(max_workers=20) as pool:
        procs = list(pool.map(lambda _: cli_train(tuneforge_cli, model, tiny_dataset, env=env), range(20)))
        outs = [p.communicate(timeout=300) for p in procs]
    ids = []
    for (stdout, stderr), p in zip(outs, procs):
        assert p.returncode == 0, stderr
        ids.append(json.loads(stdout)["job_id"])
    assert len(set(ids)) == 20
    service = JobService()
    assert {j.job_id for j in service.store.list(limit=100)} == set(ids)
    for job_id in ids:
        assert service.wait(job_id, timeout=180, poll_seconds=0.2).stage == "COMPLETED"


def test_jobs_commands_answer_in_json_and_unknown_ids_get_a_fix(tuneforge_cli, fake_templates, tiny_dataset, tiny_llama_dir):
    model = tiny_llama_dir
    out = subprocess.run([*tuneforge_cli, "train", "--model", str(model), "--dataset", str(tiny_dataset), "--json"],
                         capture_output=True, text=True, check=True)
    submitted = json.loads(out.stdout)
    assert {"job_id", "backend", "stage"} <= set(submitted) and submitted["backend"] == "local"
    job_id = submitted["job_id"]
    waited = subprocess.run([*tuneforge_cli, "jobs", "wait", job_id, "--json"], capture_output=True, text=True)
    assert waited.returncode == 0, waited.stderr
    status = json.loads(subprocess.run([*tuneforge_cli, "jobs", "status", job_id, "--json"], capture_output=True, text=True).stdout)
    assert status["stage"] == "COMPLETED"
    assert {"job_id", "stage", "message", "progress", "outputs", "log_tail"} <= set(status)
    assert status["progress"]["step"] == status["progress"]["total_steps"] == 3
    logs = json.loads(subprocess.run([*tuneforge_cli, "jobs", "logs", job_id, "--json", "--tail", "2", "--raw"],
                                     capture_output=True, text=True).stdout)
    assert len(logs["lines"]) == 2
    listed = json.loads(subprocess.run([*tuneforge_cli, "jobs", "list", "--json"], capture_output=True, text=True).stdout)
    assert [j["job_id"] for j in listed["jobs"]] == [job_id]
    missing = subprocess.run([*tuneforge_cli, "jobs", "status", "tf-nope", "--json"], capture_output=True, text=True)
    assert missing.returncode == 2
    err = json.loads(missing.stdout)
    assert "tf-nope" in err["error"] and "tuneforge jobs list" in err["fix"]
    assert "Traceback" not in missing.stderr


def test_events_prefix_in_templates_matches_the_reader():
    from tuneforge import paths

    text = (paths.templates_dir() / "_shared" / "events.py").read_text()
    assert f'EVENT_PREFIX = "{EVENT_PREFIX}"' in text


# ---- the token: withheld unless needed, scrubbed always ----------------------------------------------
LEAKY = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    path = os.environ.get("HF_TOKEN_PATH")
    saved = Path(path).read_text() if path and Path(path).exists() else None
    print("env token:", token)
    print("saved token:", saved)
    print("a partial line then the token", token, end="", flush=True)
    print()
    print("to stderr:", token, file=sys.stderr, flush=True)
    """
)


@pytest.fixture
def fake_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    token = "hf_" + "Zq8" * 12
    saved = tmp_path / "hf-home" / "token"
    saved.parent.mkdir()
    saved.write_text(token)
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("HF_HOME", str(saved.parent))
    return token


def files_holding(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_a_local_run_that_needs_no_hub_access_gets_no_token(tmp_path: Path, fake_token: str, tuneforge_home: Path):
    script = tmp_path / "leaky.py"
    script.write_text(LEAKY)
    service = JobService()
    done = service.wait(service.submit(JobSpec(script=script)).job_id, timeout=60, poll_seconds=0.1)
    assert done.stage == "COMPLETED"
    log = done.log_path.read_text()
    assert "env token: None" in log and "saved token: None" in log
    assert files_holding(tuneforge_home, fake_token) == []


def test_a_run_given_the_token_never_writes_it_to_the_log_or_the_record(tmp_path: Path, fake_token: str, tuneforge_home: Path):
    script = tmp_path / "leaky.py"
    script.write_text(LEAKY + "\nraise SystemExit('failing with ' + str(token))\n")
    service = JobService()
    done = service.wait(service.submit(JobSpec(script=script, hub_token=True)).job_id, timeout=60, poll_seconds=0.1)
    assert done.stage == "ERROR"
    log = done.log_path.read_text()
    assert "env token: hf_***" in log and "to stderr: hf_***" in log
    assert "failing with hf_***" in (done.error or "")
    assert files_holding(tuneforge_home, fake_token) == []


def test_a_training_submit_decides_the_token_from_what_the_run_reads(tmp_path: Path):
    from tuneforge.jobs.hub_access import needs_hub_token

    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    local = RunConfig(model=str(tmp_path), dataset={"path": str(data)})
    assert needs_hub_token(local) is False
    assert needs_hub_token(local.model_copy(update={"push_to_hub": "me/model"})) is True
    # offline (as in every test), a Hub model comes from the local cache: no token needed
    assert needs_hub_token(RunConfig(model="HuggingFaceTB/SmolLM2-135M-Instruct", dataset={"path": str(data)})) is False


def test_any_unique_prefix_of_an_id_works_and_an_ambiguous_one_says_so(fake_script: Path):
    from tuneforge.errors import TuneforgeError

    service = JobService()
    first = service.submit(spec(fake_script, FAKE_STEPS="1", FAKE_DELAY="0"))
    second = service.submit(spec(fake_script, FAKE_STEPS="1", FAKE_DELAY="0"))
    done = service.wait(first.job_id[:-2], timeout=60, poll_seconds=0.1)  # all but the last two characters
    assert done.job_id == first.job_id and done.stage == "COMPLETED"
    assert service.status(second.job_id[:-1]).job_id == second.job_id
    common = next(i for i, (a, b) in enumerate(zip(first.job_id, second.job_id)) if a != b)
    with pytest.raises(TuneforgeError) as err:
        service.status(first.job_id[:common])
    assert err.value.code == "job.ambiguous_id"
    service.wait(second.job_id, timeout=60, poll_seconds=0.1)


def test_a_failed_job_says_its_cause_in_one_line_and_the_raw_log_keeps_everything(fake_script: Path):
    service = JobService()
    job = service.submit(spec(fake_script, FAKE_CRASH="1", FAKE_STEPS="1"))
    done = service.wait(job.job_id, timeout=60, poll_seconds=0.1)
    assert done.message.startswith("RuntimeError: CUDA out of memory (fake crash for the test)")
    assert "\n" not in done.message and "exited with code 1" in done.message
    clean = service.status(job.job_id).log_tail
    assert not any(line.startswith(("##tuneforge-event", "Traceback", "  File")) for line in clean)
    assert any(line.startswith("Traceback") for line in service.logs(job.job_id, tail=None))


@pytest.mark.slow
def test_one_step_trains_at_a_nonzero_rate_and_status_says_which_rows_were_dropped(
        tiny_llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """Issue 18: `--max-steps 1` must not be all warmup (learning rate 0), and rows left with nothing to train
    on are reported in status, not only in result.json. A real SFT run of the tiny model, through the CLI."""
    from cli_main import run_main
    from mcp_client import in_memory, text_of
    from safetensors.torch import load_file

    data = tmp_path / "chats.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"{i}."}]} for i in range(6)]
    rows += [{"messages": [{"role": "user", "content": "tell me " * 120}, {"role": "assistant", "content": "No."}]}] * 2
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {tiny_llama_dir}\ndataset: {{path: {data}, eval_fraction: 0}}\nmax_length: 64\n"
                      "eval_prompts: []\ntrain: {per_device_batch_size: 2, logging_steps: 1}\n")
    env_before = os.environ.get("TUNEFORGE_NO_TRACKIO")
    os.environ["TUNEFORGE_NO_TRACKIO"] = "1"
    try:
        trained = run_main(capsys, "train", "--config", str(config), "--max-steps", "1", "--wait")
    finally:
        if env_before is None:
            os.environ.pop("TUNEFORGE_NO_TRACKIO", None)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    [job] = JobService().list(limit=1)
    status = json.loads(run_main(capsys, "jobs", "status", job.job_id, "--json").stdout)
    assert status["stage"] == "COMPLETED", status
    assert status["progress"]["learning_rate"] > 0  # the rate the one step trained at
    result = status["outputs"]["result"]
    assert result["steps"] == 1 and result["rows_dropped_no_trainable"] == 2
    assert any("2 of 8 training rows had nothing to train on" in w for w in result["warnings"])
    people = " ".join(run_main(capsys, "jobs", "status", job.job_id).stdout.split())
    assert "Warning: 2 of 8 training rows had nothing to train on" in people

    # the step changed the adapter: LoRA's B matrices start at zero and move only with a learning rate above 0
    weights = load_file(str(Path(result["adapter_dir"]) / "adapter_model.safetensors"))
    lora_b = [w for name, w in weights.items() if "lora_B" in name]
    assert lora_b and any(float(w.abs().max()) > 0 for w in lora_b)

    # and over MCP the same job's status is compact, with the warning
    answer = in_memory(lambda s: s.call_tool("job_status", {"job_id": job.job_id}))
    assert not answer.is_error and len(text_of(answer)) < 2000, text_of(answer)
    assert "had nothing to train on" in text_of(answer)
