"""The diagnosis on real failures made here (issue 13 item 2): a host out-of-memory under a memory limit, a
full disk (a 1 MiB tmpfs in a private mount namespace, else /dev/full), a diverging loss from an absurd
learning rate, a missing package, a kill by SIGKILL, a read-only token against the Hub emulator, and a bad
column map in the real SFT template, through the real local backend and the CLI.

Each run is a real subprocess; only the last one imports the training stack. Run under the shared lock:
    flock /tmp/tf-heavy.lock .venv/bin/python -m pytest -q tests/test_diagnosis_runs.py
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_main import run_main
from tuneforge.config import RunConfig
from tuneforge.diagnosis import diagnose_lines
from tuneforge.jobs.service import JobService
from tuneforge.records import JobSpec, JobStore


def run_script(tmp_path: Path, source: str, *, wrap: list[str] | None = None, timeout: float = 120) -> list[str]:
    """Run a Python script (optionally under a wrapper command) and return its output lines; it must fail."""
    script = tmp_path / "failing.py"
    script.write_text(textwrap.dedent(source))
    proc = subprocess.run([*(wrap or []), sys.executable, str(script)], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    return (proc.stdout + proc.stderr).splitlines()


def test_a_host_out_of_memory_under_a_memory_limit(tmp_path: Path):
    """torch under RLIMIT_AS asks for more than the limit: the CPU allocator's own message."""
    lines = run_script(tmp_path, """
        import resource, torch
        vm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize:")) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + (256 << 20), vm + (256 << 20)))
        torch.empty(2 << 30, dtype=torch.uint8)
    """)
    assert any("DefaultCPUAllocator" in line for line in lines), lines
    cfg = RunConfig(model="o/m", dataset={"path": "o/d"}, train={"per_device_batch_size": 1})
    d = diagnose_lines(lines, cfg)
    assert d.kind == "out_of_memory" and "host" in d.fix
    assert d.retry_with == {"train.gradient_checkpointing": True}  # batch 1 already; off on CPU by default
    plain = run_script(tmp_path, """
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        rows = bytearray(2 << 30)
    """)
    assert diagnose_lines(plain).kind == "out_of_memory" and any("MemoryError" in x for x in diagnose_lines(plain).evidence)


def test_a_full_disk(tmp_path: Path):
    """A checkpoint written to a 1 MiB tmpfs (a private mount namespace: nothing is mounted for anyone else);
    where namespaces are not allowed, /dev/full fails writes with the same ENOSPC."""
    target = tmp_path / "small"
    target.mkdir()
    source = f"""
        import os, sys
        path = sys.argv[1] if len(sys.argv) > 1 else {str(target / 'checkpoint.bin')!r}
        with open(path, "wb") as fh:
            fh.write(os.urandom(2 << 20))
            fh.flush()
    """
    unshare = shutil.which("unshare")
    probe = subprocess.run([unshare, "-rm", "true"], capture_output=True) if unshare else None
    if probe is not None and probe.returncode == 0:
        script = tmp_path / "write.py"
        script.write_text(textwrap.dedent(source))
        proc = subprocess.run([unshare, "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {target} && "
                               f"{sys.executable} {script}"], capture_output=True, text=True, timeout=60)
        lines = (proc.stdout + proc.stderr).splitlines()
        if "mount" in proc.stderr and "Errno 28" not in proc.stderr:  # mounting refused: the OS's other full disk
            lines = run_script(tmp_path, source.replace("sys.argv[1] if len(sys.argv) > 1 else", "'/dev/full' or"))
    else:
        lines = run_script(tmp_path, source.replace("sys.argv[1] if len(sys.argv) > 1 else", "'/dev/full' or"))
    assert any("No space left on device" in line for line in lines), lines
    d = diagnose_lines(lines, RunConfig(model="o/m", dataset={"path": "o/d"}))
    assert d.kind == "disk_full" and d.retry_with == {"train.save_total_limit": 1}


def test_nan_from_an_absurd_learning_rate(tmp_path: Path):
    """A real torch model trained with a learning rate far too high, logging like the Trainer does."""
    lines = run_script(tmp_path, """
        import torch
        torch.manual_seed(0)
        model = torch.nn.Linear(8, 1)
        opt = torch.optim.SGD(model.parameters(), lr=1e6)
        x, y = torch.randn(64, 8), torch.randn(64, 1)
        for step in range(1, 30):
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad(); loss.backward(); opt.step()
            print({"loss": round(loss.item(), 4) if loss.isfinite() else loss.item(), "epoch": step / 30}, flush=True)
        raise SystemExit("training produced a broken model")
    """)
    assert any("nan" in line or "inf" in line for line in lines), lines
    cfg = RunConfig(model="o/m", dataset={"path": "o/d"}, train={"learning_rate": 0.5})
    d = diagnose_lines(lines, cfg)
    assert d.kind == "divergence" and d.retry_with == {"train.learning_rate": 0.05}


def local_job(tmp_path: Path, source: str, **spec) -> str:
    script = tmp_path / "job_script.py"
    script.write_text(textwrap.dedent(source))
    service = JobService()
    job = service.submit(JobSpec(script=script, **spec), config=RunConfig(model="o/m", dataset={"path": "o/d"}))
    done = service.wait(job.job_id, timeout=120, poll_seconds=0.1)
    assert done.stage == "ERROR", done
    return job.job_id


def test_a_missing_package_in_a_real_local_job_end_to_end(tmp_path: Path, capsys):
    """status --json carries the diagnosis, and `tuneforge diagnose job.log --json` says the same kind."""
    job_id = local_job(tmp_path, """
        print("loading the trainer", flush=True)
        import tuneforge_no_such_package_here
    """)
    status = run_main(capsys, "jobs", "status", job_id, "--json")
    diagnosis = json.loads(status.stdout)["diagnosis"]
    assert diagnosis["kind"] == "missing_dependency", status.stdout
    assert "tuneforge_no_such_package_here" in diagnosis["fix"]
    log = Path(JobStore().get(job_id).job_dir) / "job.log"
    from_file = run_main(capsys, "diagnose", str(log), "--json")
    assert from_file.returncode == 0 and json.loads(from_file.stdout) == {
        "kind": "missing_dependency", "evidence": diagnosis["evidence"], "fix": diagnosis["fix"], "retry_with": {}}


def test_a_job_killed_by_sigkill_is_out_of_memory_from_the_runners_message(tmp_path: Path):
    job_id = local_job(tmp_path, """
        import os, signal
        print("step 1", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    d = JobService().status(job_id).diagnosis
    assert d is not None and d.kind == "out_of_memory" and any("SIGKILL" in line for line in d.evidence)


def test_a_read_only_token_refused_by_the_hub_emulator_is_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A job saving its checkpoints to a bucket with a read-only token: the emulator's 403, through
    huggingface_hub's own error; the token never reaches the diagnosis."""
    from hf_emulator import HubEmulator

    hub = HubEmulator(tmp_path / "hub").start()
    try:
        token = "hf_" + secrets.token_urlsafe(24)
        hub.add_user(token, "reader", role="read")
        for key, value in {"HF_ENDPOINT": hub.url, "HF_TOKEN": token, "HF_HOME": str(tmp_path / "hf_home"),
                           "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}.items():
            monkeypatch.setenv(key, value)
        job_id = local_job(tmp_path, """
            from huggingface_hub import HfApi
            print("saving checkpoint-10 to the bucket", flush=True)
            HfApi().create_bucket("reader/checkpoints", private=True)
        """, hub_token=True)
    finally:
        hub.stop()
    status = JobService().status(job_id)
    assert status.diagnosis is not None and status.diagnosis.kind == "auth", status
    assert any("read-only" in line or "403" in line for line in status.diagnosis.evidence)
    assert "hf auth login" in status.diagnosis.fix and status.diagnosis.retry_with == {}
    assert token not in status.model_dump_json() and token not in JobStore().get(job_id).model_dump_json()


def test_a_bad_column_map_in_the_real_sft_template_is_dataset_format(tiny_llama_dir: Path, tmp_path: Path, capsys,
                                                                      monkeypatch: pytest.MonkeyPatch):
    """A real SFT job whose column_map names a column the rows lack (submitted past the pre-submit checks, as a
    file changed after submit would be): the template stops, status and `diagnose job.log` both say dataset_format."""
    monkeypatch.setenv("TUNEFORGE_NO_TRACKIO", "1")
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"input": f"Say {i}.", "output": f"{i}."}) + "\n" for i in range(4)))
    cfg = RunConfig(model=str(tiny_llama_dir), dataset={"path": str(data), "column_map": {"prompt": "question"},
                                                          "eval_fraction": 0}, max_length=32, eval_prompts=[],
                    train={"max_steps": 1})
    service = JobService()
    job = service.submit_training(cfg)
    done = service.wait(job.job_id, timeout=300, poll_seconds=0.2)
    assert done.stage == "ERROR", done.message
    status = json.loads(run_main(capsys, "jobs", "status", job.job_id, "--json").stdout)
    assert status["diagnosis"]["kind"] == "dataset_format", status["diagnosis"]
    assert "tuneforge validate" in status["diagnosis"]["fix"] and status["diagnosis"]["retry_with"] == {}
    people = run_main(capsys, "jobs", "status", job.job_id).stdout
    assert "diagnosis: dataset_format" in people
    from_file = json.loads(run_main(capsys, "diagnose", done.job_dir + "/job.log", "--json").stdout)
    assert from_file["kind"] == "dataset_format"
