"""Resume and retry (issue 13 items 1 and 3): a stopped local job continued from its checkpoint, a retry with
the diagnosis's fix, the refusals, the MCP tools, and --max-restarts restarting a timed-out job in place.

One real run of the tiny Llama (slow, under the heavy-test lock): stopped after a checkpoint, resumed with
`jobs resume`, it completes with the global step, loss curve and RNG continuing. The rest uses real job
records, real detached supervisors (with a stand-in script where a template's training is not the point),
the CLI in process and the MCP server in memory.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cli_main import run_main
from mcp_client import in_memory
from tuneforge.config import RunConfig
from tuneforge.jobs.service import JobService
from tuneforge.progress import EVENT_PREFIX
from tuneforge.records import Job, JobSpec, JobStore
from tuneforge.reports.diagnosis import Diagnosis
from tuneforge.templates._shared.checkpoints import checkpoint_step, local_resume_point, newest_complete

ROWS = [{"messages": [{"role": "user", "content": f"Code for item {i}?"}, {"role": "assistant", "content": f"C-{i % 7}"}]}
        for i in range(40)]


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return path


def fake_checkpoint(root: Path, step: int, *, complete: bool = True) -> Path:
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    (folder / "optimizer.pt").write_bytes(b"adam")
    if complete:
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    return folder


def stored_job(tmp_path: Path, config: RunConfig, **fields) -> Job:
    job_dir = tmp_path / "old-job"
    job_dir.mkdir(exist_ok=True)
    job = Job(job_id=fields.pop("job_id", "tf-20260101-000000-aaaaaa"), backend="local", kind=fields.pop("kind", "train"),
              method=config.method, job_dir=str(job_dir), config=config, created_at=time.time(), **fields)
    return JobStore().create(job)


def events(lines: list[str], kind: str = "progress") -> list[dict]:
    out = [json.loads(line[len(EVENT_PREFIX):]) for line in lines if line.startswith(EVENT_PREFIX)]
    return [e for e in out if e["type"] == kind]


# ---- which checkpoint ------------------------------------------------------------------------------
def test_the_newest_complete_checkpoint_is_chosen_and_one_cut_short_is_skipped(tmp_path: Path):
    root = tmp_path / "checkpoints"
    fake_checkpoint(root, 2)
    fake_checkpoint(root, 4)
    fake_checkpoint(root, 6, complete=False)  # killed while saving: no trainer_state.json
    (root / "checkpoint-10").mkdir()  # empty
    assert newest_complete(root) == root / "checkpoint-4"
    assert checkpoint_step(root / "checkpoint-4") == 4 and checkpoint_step(root / "checkpoint-6") is None
    (root / "checkpoint-4" / "optimizer.pt").unlink()  # weights alone cannot continue the optimizer
    assert newest_complete(root) == root / "checkpoint-2"
    # a run that stopped before saving its own: the checkpoint it resumed from
    assert local_resume_point(tmp_path / "elsewhere", str(root / "checkpoint-2")) == (str(root / "checkpoint-2"), 2)
    assert local_resume_point(tmp_path / "elsewhere", "hf://alice/x/last-checkpoint") is None


def test_a_config_refuses_a_checkpoint_that_is_not_one(tmp_path: Path, data_file: Path):
    from tuneforge.errors import ConfigError

    base = {"model": str(tmp_path), "dataset": {"path": str(data_file)}}
    for bad in (str(tmp_path), "hf://not a repo/last-checkpoint", "-x"):
        with pytest.raises(ConfigError) as err:
            RunConfig.from_dict({**base, "resume_from_checkpoint": bad})
        assert err.value.code == "config.invalid"
    ok = RunConfig.from_dict({**base, "resume_from_checkpoint": "hf://alice/model/last-checkpoint"})
    assert ok.resume_from_checkpoint == "hf://alice/model/last-checkpoint"


def test_train_takes_max_restarts_into_the_config(tmp_path: Path, data_file: Path):
    from tuneforge.cli import build_parser
    from tuneforge.cli.train import config_from_args

    args = build_parser().parse_args(["train", "--model", str(tmp_path), "--dataset", str(data_file), "--max-restarts", "2"])
    assert config_from_args(args).max_restarts == 2
    assert RunConfig.from_dict({"model": str(tmp_path), "dataset": {"path": str(data_file)}}).max_restarts == 0  # off unless given


# ---- refusals ---------------------------------------------------------------------------------------
def test_resume_and_retry_refuse_with_codes_what_they_cannot_continue(tmp_path: Path, data_file: Path, capsys):
    config = RunConfig.from_dict({"model": str(tmp_path), "dataset": {"path": str(data_file)},
                                  "output_dir": str(tmp_path / "old-job" / "outputs")})
    failed = stored_job(tmp_path, config, stage="ERROR", message="the training process exited with code 1",
                        job_id="tf-20260101-000000-e00001")
    done = stored_job(tmp_path, config, stage="COMPLETED", job_id="tf-20260101-000000-c00001")
    gguf = stored_job(tmp_path, config, stage="ERROR", kind="gguf", job_id="tf-20260101-000000-g00001")
    running = stored_job(tmp_path, config, stage="RUNNING", job_id="tf-20260101-000000-r00001")  # within the start grace

    def code(*argv: str) -> tuple[int, str]:
        proc = run_main(capsys, "jobs", *argv, "--json")
        return proc.returncode, json.loads(proc.stdout)["code"]

    assert code("resume", failed.job_id) == (2, "recovery.no_checkpoint")
    assert "retry it instead" in json.loads(run_main(capsys, "jobs", "resume", failed.job_id, "--json").stdout)["fix"].lower()
    assert code("resume", done.job_id)[1] == code("retry", done.job_id)[1] == "recovery.completed"
    assert code("resume", gguf.job_id)[1] == "recovery.not_train"
    assert code("retry", running.job_id)[1] == "recovery.still_running"
    # a CANCELED job has no diagnosis to apply
    canceled = stored_job(tmp_path, config, stage="CANCELED", job_id="tf-20260101-000000-x00001")
    assert code("retry", canceled.job_id, "--apply-fix")[1] == "recovery.no_diagnosis"
    assert JobStore().list(limit=50).__len__() == 5  # nothing was submitted


# ---- retry with the fix ------------------------------------------------------------------------------
def test_retry_with_the_fix_submits_the_changed_config_linked_to_the_old_job(tmp_path: Path, data_file: Path,
                                                                            tiny_llama_dir: Path, capsys):
    config = RunConfig.from_dict({"model": str(tiny_llama_dir), "dataset": {"path": str(data_file)}, "max_length": 64,
                                  "train": {"max_steps": 4, "per_device_batch_size": 4, "gradient_accumulation_steps": 2},
                                  "output_dir": str(tmp_path / "old-job" / "outputs")})
    oom = Diagnosis(kind="out_of_memory", evidence=["torch.OutOfMemoryError: CUDA out of memory."], fix="halve the batch",
                    retry_with={"train.per_device_batch_size": 2, "train.gradient_accumulation_steps": 4})
    old = stored_job(tmp_path, config, stage="ERROR", message="out of memory", diagnosis=oom)

    proc = run_main(capsys, "jobs", "retry", old.job_id, "--apply-fix", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    answer = json.loads(proc.stdout)
    service = JobService()
    try:
        new = service.store.get(answer["job_id"])
        assert answer["action"] == "retry" and answer["previous_job_id"] == old.job_id
        assert answer["diagnosis_kind"] == "out_of_memory"
        assert answer["changes"] == [
            {"field": "train.per_device_batch_size", "old": 4, "new": 2},
            {"field": "train.gradient_accumulation_steps", "old": 2, "new": 4}]
        assert new.retry_of == old.job_id and new.resumed_from is None
        assert new.config.train.per_device_batch_size == 2 and new.config.train.gradient_accumulation_steps == 4
        assert new.config.train.max_steps == 4 and new.config.model == config.model  # the rest as it was
        assert new.config.resume_from_checkpoint is None
        assert Path(new.config.output_dir).parent == Path(new.job_dir)  # its own folder, not the old job's
        # a plain retry: the same config again
        plain = json.loads(run_main(capsys, "jobs", "retry", old.job_id, "--json").stdout)
        assert plain["changes"] == [] and service.store.get(plain["job_id"]).config.train.per_device_batch_size == 4
    finally:
        for job in service.store.list(limit=10):
            if not job.terminal:
                service.cancel(job.job_id)


# ---- MCP ------------------------------------------------------------------------------------------------
def test_mcp_resume_job_and_retry_job_answer_with_codes_and_the_new_job(tmp_path: Path, data_file: Path):
    config = RunConfig.from_dict({"model": str(tmp_path), "dataset": {"path": str(data_file)},
                                  "output_dir": str(tmp_path / "old-job" / "outputs")})
    done = stored_job(tmp_path, config, stage="COMPLETED", job_id="tf-20260101-000000-c00002")
    failed = stored_job(tmp_path, config, stage="ERROR", message="boom", job_id="tf-20260101-000000-e00002",
                        diagnosis=Diagnosis(kind="auth", evidence=["401"], fix="Use a write token.", retry_with={}))

    async def body(client):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        completed = await client.call_tool("resume_job", {"job_id": done.job_id})
        no_ckpt = await client.call_tool("resume_job", {"job_id": failed.job_id})
        no_fix = await client.call_tool("retry_job", {"job_id": failed.job_id, "apply_fix": True})
        return tools, completed, no_ckpt, no_fix

    tools, completed, no_ckpt, no_fix = in_memory(body)
    for name in ("resume_job", "retry_job"):
        assert tools[name].annotations.destructive_hint and not tools[name].annotations.read_only_hint
        assert "confirmed" in tools[name].input_schema["properties"]
    assert completed.is_error and "[recovery.completed]" in completed.content[0].text
    assert no_ckpt.is_error and "[recovery.no_checkpoint]" in no_ckpt.content[0].text
    assert "retry_job" in no_ckpt.content[0].text  # the fix in the agent's words
    assert no_fix.is_error and "[recovery.no_fix]" in no_fix.content[0].text


# ---- --max-restarts: a local job that times out is restarted in place from its checkpoint --------------------
STUB = textwrap.dedent("""
    import json, sys, time
    cfg = json.load(open(sys.argv[sys.argv.index("--config") + 1]))
    P = "##tuneforge-event "
    if not cfg.get("resume_from_checkpoint"):
        print(P + json.dumps({"type": "progress", "step": 3, "total_steps": 6}), flush=True)
        time.sleep(60)  # runs past the time limit
    print(P + json.dumps({"type": "status", "message": "resuming from " + cfg["resume_from_checkpoint"]}), flush=True)
    print(P + json.dumps({"type": "progress", "step": 6, "total_steps": 6}), flush=True)
""")


def restart_job(tmp_path: Path, data_file: Path, *, with_checkpoint: bool) -> Job:
    out = tmp_path / "out"
    if with_checkpoint:
        fake_checkpoint(out / "checkpoints", 3)
    config = RunConfig.from_dict({"model": str(tmp_path), "dataset": {"path": str(data_file)}, "output_dir": str(out),
                                  "max_restarts": 1})
    script = tmp_path / "stub.py"
    script.write_text(STUB)
    config_path = config.write(tmp_path / "config.json")
    spec = JobSpec(script=script, args=["--config", str(config_path)], timeout_seconds=2)
    service = JobService()
    job = service.submit(spec, config=config, method=config.method)
    assert job.max_restarts == 1
    return service.wait(job.job_id, timeout=60, poll_seconds=0.1)


def test_max_restarts_restarts_a_timed_out_local_job_from_its_checkpoint(tmp_path: Path, data_file: Path):
    done = restart_job(tmp_path, data_file, with_checkpoint=True)
    log = JobService().logs(done.job_id, tail=None)
    assert done.stage == "COMPLETED", log
    assert done.restarts == 1 and done.progress["step"] == 6
    checkpoint = str(tmp_path / "out" / "checkpoints" / "checkpoint-3")
    assert done.config.resume_from_checkpoint == checkpoint  # the record says what the job ran with
    assert json.loads((tmp_path / "config.json").read_text())["resume_from_checkpoint"] == checkpoint
    assert [e["message"] for e in events(log, "status")] == [f"resuming from {checkpoint}"]


def test_max_restarts_without_a_checkpoint_ends_with_the_timeout(tmp_path: Path, data_file: Path):
    done = restart_job(tmp_path, data_file, with_checkpoint=False)
    assert done.stage == "ERROR" and done.message.startswith("timeout:") and done.restarts == 0


# ---- the real thing: a tiny Llama stopped after a checkpoint, resumed to the end -----------------------
@pytest.mark.slow
def test_a_real_run_stopped_after_a_checkpoint_resumes_to_the_end_with_the_loss_curve_continuing(
        tmp_path: Path, data_file: Path, tiny_llama_dir: Path, capsys):
    max_steps = 10
    config = RunConfig.from_dict({
        "model": str(tiny_llama_dir), "dataset": {"path": str(data_file), "eval_fraction": 0.0}, "max_length": 48,
        "seed": 7, "peft": {"kind": "lora", "r": 4, "alpha": 8, "dropout": 0.0},
        "train": {"learning_rate": 5e-3, "max_steps": max_steps, "per_device_batch_size": 2, "logging_steps": 1,
                  "warmup_ratio": 0.0, "lr_scheduler": "linear", "save_steps": 3}})
    service = JobService()
    first = service.submit_training(config)
    checkpoints = Path(first.config.output_dir) / "checkpoints"
    deadline = time.monotonic() + 300
    while newest_complete(checkpoints) is None and time.monotonic() < deadline:
        assert not service.refresh(first.job_id).terminal, service.logs(first.job_id, tail=30)
        time.sleep(0.05)
    service.cancel(first.job_id)  # stopped mid-run, after checkpoint-3 (maybe -6)
    stopped = service.store.get(first.job_id)
    assert stopped.stage == "CANCELED"
    saved = checkpoint_step(newest_complete(checkpoints))
    assert saved is not None and saved < max_steps

    proc = run_main(capsys, "jobs", "resume", first.job_id, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["resumed_from_step"] == saved and answer["previous_job_id"] == first.job_id
    done = service.wait(answer["job_id"], timeout=600, poll_seconds=0.2)
    log = service.logs(done.job_id, tail=None)
    assert done.stage == "COMPLETED", "\n".join(log[-30:])
    assert done.resumed_from == first.job_id
    result = done.outputs["result"]
    assert result["resumed_from_step"] == saved and result["steps"] == max_steps
    # the global step goes on from the checkpoint: this run logged only the steps after it
    new_steps = [e["step"] for e in events(log)]
    assert new_steps == list(range(saved + 1, max_steps + 1))
    # the loss history is one curve: the checkpoint's steps, then this run's, each once
    assert [h["step"] for h in result["log_history"]] == list(range(1, max_steps + 1))
    # optimizer, scheduler, data order and RNG continue: the first step after the checkpoint trains exactly as the
    # stopped run trained it (when that run got that far before it was stopped)
    before = {e["step"]: e for e in events(service.logs(first.job_id, tail=None))}
    after = events(log)[0]
    if saved + 1 in before:
        assert after["loss"] == pytest.approx(before[saved + 1]["loss"], rel=1e-3)
        assert after["learning_rate"] == pytest.approx(before[saved + 1]["learning_rate"], rel=1e-6)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
