"""Resume and retry on Hugging Face Jobs, against the emulator (tests/hf_emulator.py) with the real client.

A cloud run's checkpoint is `last-checkpoint/` in its push target (the templates push every save in full:
transformers' hub_strategy="checkpoint"). A continuation job gets the same upload and config, pointing at
hf://<repo>/last-checkpoint, and the template run from that upload downloads exactly that folder
(snapshot_download with allow_patterns) before `trainer.train(resume_from_checkpoint=...)`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_hf_backend import USER, hub, job_posts, make_config, train_file  # noqa: F401  (fixtures)
from tuneforge.actions.recovery import resume, retry, vram_per_gpu
from tuneforge.errors import TuneforgeError
from tuneforge.jobs.service import JobService
from tuneforge.reports.diagnosis import Diagnosis

REPO = f"{USER}/smollm2-sums"  # make_config's push target
LOCATION = f"hf://{REPO}/last-checkpoint"


def checkpoint_files(step: int) -> dict[str, bytes]:
    """What the template's push leaves in the repo: the final-model files and the full last checkpoint."""
    return {"README.md": b"# model", "adapter_config.json": b"{}",
            "last-checkpoint/trainer_state.json": json.dumps({"global_step": step, "log_history": []}).encode(),
            "last-checkpoint/adapter_model.safetensors": b"w" * 64, "last-checkpoint/optimizer.pt": b"o" * 32,
            "last-checkpoint/scheduler.pt": b"s" * 8, "last-checkpoint/rng_state.pth": b"r" * 8}


@pytest.fixture
def model_dir(tmp_path: Path, smollm2_dir: Path) -> Path:
    """SmolLM2's config and tokenizer without its weights: what the planner and the doctor read, found here (a
    Hub id would send them to huggingface.co: huggingface_hub fixed its endpoint when it was imported)."""
    folder = tmp_path / "model"
    folder.mkdir()
    for f in smollm2_dir.iterdir():
        if f.is_file() and f.suffix != ".safetensors":
            (folder / f.name).write_bytes(f.read_bytes())
    return folder


def config(train_file: Path, model_dir: Path, **overrides):  # noqa: F811
    return make_config(train_file, model=str(model_dir), **overrides)


def timed_out(hub, train_file, model_dir, **overrides):  # noqa: F811
    service = JobService()
    job = service.submit_training(config(train_file, model_dir, **overrides), backend="hf", flavor="a10g-small")
    hub.set_stage(job.backend_job_id, "ERROR", "Job timeout")
    return service, job


def cloud_config(hub, job) -> dict:  # noqa: F811
    return json.loads(hub.volume_files(job.backend_job_id)["config.json"])


def test_resume_on_hf_continues_from_the_push_targets_last_checkpoint_after_the_users_go_ahead(hub, train_file, tmp_path,  # noqa: F811
                                                                                                model_dir):
    service, old = timed_out(hub, train_file, model_dir)
    assert service.status(old.job_id).stage == "ERROR"
    with pytest.raises(TuneforgeError) as err:
        resume(old.job_id, confirmed=True)
    assert err.value.code == "recovery.no_checkpoint"  # nothing pushed yet

    hub.add_model(REPO, checkpoint_files(5))
    posts = len(job_posts(hub))
    with pytest.raises(TuneforgeError) as err:
        resume(old.job_id)
    assert err.value.code == "recovery.not_confirmed" and err.value.details["flavor"] == "a10g-small"
    assert len(job_posts(hub)) == posts  # nothing submitted without the go-ahead

    result = resume(old.job_id, confirmed=True)
    assert len(job_posts(hub)) == posts + 1
    new = service.store.get(result.job_id)
    assert result.resumed_from_step == 5 and result.checkpoint == LOCATION and new.resumed_from == old.job_id
    assert new.flavor == old.flavor and new.timeout_seconds == old.timeout_seconds
    before, after = cloud_config(hub, old), cloud_config(hub, new)
    assert after.pop("resume_from_checkpoint") == LOCATION
    assert before.pop("resume_from_checkpoint") is None and after == before  # the same config otherwise
    assert set(hub.volume_files(new.backend_job_id)) == set(hub.volume_files(old.backend_job_id))
    assert hub.jobs[new.backend_job_id]["command"] == hub.jobs[old.backend_job_id]["command"]

    # the template, as the job runs it (its staged folder, the uploaded config), downloads that checkpoint
    cfg_path = tmp_path / "cloud-config.json"
    cfg_path.write_text(json.dumps({**after, "resume_from_checkpoint": LOCATION}))
    out = tmp_path / "job-outputs"
    code = ("import json, sys, types; sys.path.insert(0, sys.argv[1]); from _finish import resume_point; "
            "cfg = json.load(open(sys.argv[2])); t = types.SimpleNamespace(args=types.SimpleNamespace(output_dir=sys.argv[3])); "
            "print(json.dumps(resume_point(t, cfg)))")
    proc = subprocess.run([sys.executable, "-c", code, new.job_dir, str(cfg_path), str(out / "checkpoints")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    folder, step = json.loads(proc.stdout.strip().splitlines()[-1])
    assert step == 5 and Path(folder) == out / "resumed-checkpoint" / "last-checkpoint"
    served = {k.split("/", 1)[1]: v for k, v in checkpoint_files(5).items() if k.startswith("last-checkpoint/")}
    assert {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()} == served  # that folder, exactly


def test_max_restarts_continues_a_timed_out_hf_job_once_at_the_next_status_call(hub, train_file, model_dir):  # noqa: F811
    service, old = timed_out(hub, train_file, model_dir, max_restarts=1)
    assert old.max_restarts == 1
    hub.add_model(REPO, checkpoint_files(7))
    posts = len(job_posts(hub))
    status = service.status(old.job_id)
    assert status.stage == "ERROR" and "continued automatically from step 7" in status.message
    record = service.store.get(old.job_id)
    new = service.store.get(record.outputs["continued_by"])
    assert new.resumed_from == old.job_id and new.restarts == 1 and new.max_restarts == 1
    assert cloud_config(hub, new)["resume_from_checkpoint"] == LOCATION
    service.status(old.job_id)
    assert len(job_posts(hub)) == posts + 1  # once

    hub.set_stage(new.backend_job_id, "ERROR", "Job timeout")  # the continuation times out too: no restarts left
    status = service.status(new.job_id)
    assert "continued" not in status.message and len(job_posts(hub)) == posts + 1
    assert (status.resumed_from, status.restarts, status.max_restarts) == (old.job_id, 1, 1)  # jobs status shows the links
    with pytest.raises(TuneforgeError) as err:
        resume(old.job_id, confirmed=True)
    assert err.value.code == "recovery.already_continued"
    assert service.wait(old.job_id, timeout=10, poll_seconds=0.05).job_id == new.job_id  # wait follows it


def test_an_oom_retry_on_hf_at_batch_1_with_checkpointing_moves_to_a_bigger_flavor(hub, train_file, model_dir):  # noqa: F811
    service = JobService()
    old = service.submit_training(config(train_file, model_dir, train={"max_steps": 10, "per_device_batch_size": 1,
                                                                  "gradient_checkpointing": True}),
                                  backend="hf", flavor="a10g-small")
    hub.set_stage(old.backend_job_id, "ERROR", "CUDA out of memory")
    service.store.update(old.job_id, stage="ERROR", finished_at=1.0, diagnosis=Diagnosis(
        kind="out_of_memory", evidence=["torch.OutOfMemoryError: CUDA out of memory."], fix="QLoRA",
        retry_with={"peft.kind": "qlora"}))
    with pytest.raises(TuneforgeError) as err:
        retry(old.job_id, apply_fix=True)
    assert err.value.code == "recovery.not_confirmed"
    result = retry(old.job_id, apply_fix=True, confirmed=True)
    new = service.store.get(result.job_id)
    assert new.retry_of == old.job_id and new.flavor != "a10g-small"
    assert vram_per_gpu(new.flavor) > vram_per_gpu("a10g-small")
    assert new.config.peft.kind == "lora"  # a bigger GPU instead of QLoRA
    assert {"field": "flavor", "old": "a10g-small", "new": new.flavor} in [c.model_dump() for c in result.changes]
    assert hub.jobs[new.backend_job_id]["flavor"] == new.flavor
