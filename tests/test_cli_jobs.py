"""`tuneforge jobs ...` in process (tuneforge.cli.main): whole ids, id prefixes, clean and raw logs, `-f --tail`,
cancel of a finished job, Ctrl-C while waiting, case-insensitive --stage, the list's JSON object, warnings.

Jobs are real records in the test's own $TUNEFORGE_HOME (written through the job store) or real local jobs
(detached supervisors running small scripts).
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import threading
import time
from pathlib import Path

import pytest
from cli_main import run_main
from tuneforge.jobs.service import JobService
from tuneforge.records import Job, JobSpec, JobStore

EVENT = "##tuneforge-event "
LONG = "the training process exited with code 2 after the dataset row 17 had no assistant turn at all " * 2


def seed(job_id: str, *, stage: str = "COMPLETED", message: str = "completed", log: list[str] | None = None,
         outputs: dict | None = None, created: float = 0.0) -> Job:
    home = Path(os.environ["TUNEFORGE_HOME"])
    job_dir = home / "jobs" / job_id
    job_dir.mkdir(parents=True)
    (job_dir / "job.log").write_text("".join(line + "\n" for line in (log or [])))
    now = time.time()
    return JobStore().create(Job(job_id=job_id, backend="local", kind="train", method="sft", stage=stage, message=message,
                                 job_dir=str(job_dir), created_at=now - 100 + created, started_at=now - 90,
                                 finished_at=now - 5, outputs=outputs or {}, progress={"step": 2, "total_steps": 2}))


NOISY_LOG = [
    "loading data",
    EVENT + json.dumps({"type": "progress", "step": 1, "total_steps": 2, "loss": 2.5}),
    "\x1b[32mstep one done\x1b[0m",
    "Map: 100%|██████████| 40/40 [00:00<00:00, 900.00 examples/s]",
    "Traceback (most recent call last):",
    '  File "sft.py", line 3, in <module>',
    "ValueError: a row had no assistant turn",
    EVENT + json.dumps({"type": "status", "message": "done"}),
    "finished",
]


def test_jobs_list_prints_whole_ids_and_json_is_one_object(capsys: pytest.CaptureFixture[str]):
    ids = [f"tf-20260101-00000{i}-abc12{i}" for i in range(3)]
    for i, (job_id, stage) in enumerate(zip(ids, ("COMPLETED", "ERROR", "CANCELED"))):
        seed(job_id, stage=stage, message=LONG, created=i)

    listed = run_main(capsys, "jobs", "list")  # captured output is 80 columns wide
    assert listed.returncode == 0, listed.stderr
    for job_id in ids:
        assert job_id in listed.stdout, listed.stdout
    assert all(len(line) <= 80 for line in listed.stdout.splitlines()), listed.stdout

    as_json = json.loads(run_main(capsys, "jobs", "list", "--json").stdout)
    assert set(as_json) == {"jobs", "count"} and as_json["count"] == 3
    assert [j["job_id"] for j in as_json["jobs"]] == ids[::-1]  # newest first
    for spelling in ("error", "Error", "ERROR"):
        only = json.loads(run_main(capsys, "jobs", "list", "--stage", spelling, "--json").stdout)
        assert [j["job_id"] for j in only["jobs"]] == [ids[1]], spelling
    assert '{"jobs": [...], "count": N}' in " ".join(run_main(capsys, "jobs", "list", "--help").stdout.split())


def test_any_unique_prefix_of_an_id_works_and_an_ambiguous_one_says_so(capsys: pytest.CaptureFixture[str]):
    first = seed("tf-20260101-000000-aaa111", log=["hello"])
    seed("tf-20260101-000000-bbb222", created=1)
    status = run_main(capsys, "jobs", "status", "tf-20260101-000000-a", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["job_id"] == first.job_id
    logs = run_main(capsys, "jobs", "logs", "tf-20260101-000000-aa", "--json")
    assert json.loads(logs.stdout) == {"job_id": first.job_id, "lines": ["hello"]}
    waited = run_main(capsys, "jobs", "wait", "tf-20260101-000000-aaa", "--json")
    assert waited.returncode == 0 and json.loads(waited.stdout)["job_id"] == first.job_id
    ambiguous = run_main(capsys, "jobs", "status", "tf-20260101-000000", "--json")
    assert ambiguous.returncode == 2 and json.loads(ambiguous.stdout)["code"] == "job.ambiguous_id"


def test_logs_and_status_tails_are_clean_by_default_and_raw_on_request(capsys: pytest.CaptureFixture[str]):
    job = seed("tf-20260101-000000-c1ea11", log=NOISY_LOG)
    clean = run_main(capsys, "jobs", "logs", job.job_id)
    assert clean.returncode == 0
    assert clean.stdout.splitlines() == ["loading data", "step one done", "ValueError: a row had no assistant turn", "finished"]
    raw = json.loads(run_main(capsys, "jobs", "logs", job.job_id, "--raw", "--json").stdout)["lines"]
    assert raw == NOISY_LOG

    status = json.loads(run_main(capsys, "jobs", "status", job.job_id, "--json").stdout)
    assert status["log_tail"] == ["loading data", "step one done", "ValueError: a row had no assistant turn", "finished"]
    raw_status = json.loads(run_main(capsys, "jobs", "status", job.job_id, "--raw", "--json").stdout)
    assert raw_status["log_tail"] == NOISY_LOG
    people = run_main(capsys, "jobs", "status", job.job_id).stdout
    assert EVENT not in people and "\x1b[" not in people and "File \"sft.py\"" not in people


def _script(tmp_path: Path, name: str, code: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return path


def _until(check, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_logs_follow_shows_the_last_tail_lines_first_then_new_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    go = tmp_path / "go"
    script = _script(tmp_path, "lines.py", f"""\
        import pathlib, time
        for i in range(1, 11):
            print(f"line {{i}}", flush=True)
        while not pathlib.Path({str(go)!r}).exists():
            time.sleep(0.05)
        for i in range(11, 14):
            print(f"line {{i}}", flush=True)
    """)
    job = JobService().submit(JobSpec(script=script), backend="local", kind="train", method="sft")
    _until(lambda: "line 10" in JobService().logs(job.job_id, tail=None), "the job never printed its first lines")
    threading.Timer(1.5, go.write_text, args=("yes",)).start()  # new lines come while -f follows
    followed = run_main(capsys, "jobs", "logs", job.job_id, "-f", "--tail", "2")
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.splitlines() == ["line 9", "line 10", "line 11", "line 12", "line 13"]

    finished = run_main(capsys, "jobs", "logs", job.job_id, "--follow", "--tail", "3")
    assert finished.stdout.splitlines() == ["line 11", "line 12", "line 13"]
    everything = run_main(capsys, "jobs", "logs", job.job_id, "--follow", "--all")
    assert everything.stdout.splitlines() == [f"line {i}" for i in range(1, 14)]


@pytest.mark.parametrize("stage", ["COMPLETED", "ERROR", "CANCELED"])
def test_cancel_of_a_job_that_already_ended_fails_and_says_so(stage: str, capsys: pytest.CaptureFixture[str]):
    job = seed("tf-20260101-000000-f1a15d", stage=stage, message="it ended")
    as_json = run_main(capsys, "jobs", "cancel", job.job_id, "--json")
    assert as_json.returncode != 0
    err = json.loads(as_json.stdout)
    assert err["code"] == "job.already_finished" and "already ended" in err["error"] and stage in err["error"]
    people = run_main(capsys, "jobs", "cancel", job.job_id)
    assert people.returncode != 0 and "already ended" in people.stderr and "Fix:" in people.stderr
    assert JobStore().get(job.job_id).stage == stage and JobStore().get(job.job_id).message == "it ended"


def test_ctrl_c_while_waiting_says_the_job_keeps_running_and_how_to_check_or_cancel_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    script = _script(tmp_path, "forever.py", """\
        import time
        print("working", flush=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            time.sleep(0.1)
    """)
    job = JobService().submit(JobSpec(script=script), backend="local", kind="train", method="sft")
    try:
        for argv in (["jobs", "wait", job.job_id], ["jobs", "wait", job.job_id, "--json"], ["jobs", "logs", job.job_id, "-f"]):
            threading.Timer(1.0, os.kill, args=(os.getpid(), signal.SIGINT)).start()  # Ctrl-C
            waited = run_main(capsys, *argv)
            assert waited.returncode == 130, (argv, waited.stderr)
            said = " ".join(waited.stderr.split())
            assert f"job {job.job_id} keeps running" in said, (argv, said)
            assert f"tuneforge jobs status {job.job_id}" in said and f"tuneforge jobs cancel {job.job_id}" in said
            assert JobService().status(job.job_id, log_tail=0).stage in ("SCHEDULING", "RUNNING")
    finally:
        JobService().cancel(job.job_id)


def test_status_shows_the_warnings_a_run_reported(capsys: pytest.CaptureFixture[str]):
    warning = "3 of 20 training rows had nothing to train on (no assistant tokens left within max_length) and were dropped"
    job = seed("tf-20260101-000000-3a4b5c", outputs={"output_dir": "/tmp/out", "result": {
        "train_loss": 1.5, "rows_dropped_no_trainable": 3, "warnings": [warning]}})
    people = run_main(capsys, "jobs", "status", job.job_id)
    assert people.returncode == 0
    assert "Warning:" in people.stdout and warning in " ".join(people.stdout.split())
