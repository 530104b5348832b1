"""The hf backend's boundaries, against the strict emulator with the real client: a private bucket or
nothing, exactly the files the run reads, and a service that refuses what the real one refuses."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from test_hf_backend import USER, hub, job_posts, submit, train_file  # noqa: F401  (fixtures)
from tuneforge.actions.train import start_training
from tuneforge.config import RunConfig
from tuneforge.errors import TuneforgeError
from tuneforge.records import JobStore

BUCKET = f"{USER}/jobs-artifacts"


def uploads_to(hub) -> list:
    return [r for r in hub.calls("POST", r"/api/buckets/.*/batch$")]


def test_a_public_bucket_of_that_name_gets_nothing_and_no_job_is_created(hub, train_file):
    hub.add_bucket(BUCKET, private=False)  # the user made it public earlier
    with pytest.raises(TuneforgeError) as err:
        submit(train_file)
    assert err.value.code == "hf.bucket_public"
    assert BUCKET in err.value.message and err.value.fix
    assert uploads_to(hub) == [] and job_posts(hub) == [] and hub.buckets[BUCKET] == {}


def test_a_bucket_whose_visibility_cannot_be_read_gets_nothing(hub, train_file):
    hub.fail("GET", rf"^/api/buckets/{BUCKET}$", 403, times=10)
    with pytest.raises(TuneforgeError) as err:
        submit(train_file)
    assert err.value.code == "hf.bucket_visibility_unknown"
    assert uploads_to(hub) == [] and job_posts(hub) == []


def test_the_bucket_is_created_private(hub, train_file):
    submit(train_file)
    create = hub.calls("POST", rf"^/api/buckets/{BUCKET}$")[0]
    assert json.loads(create.body) == {"visibility": "private"}
    assert hub.bucket_private[BUCKET] is True


@pytest.fixture
def cluttered(tmp_path: Path, tiny_llama_dir: Path) -> tuple[Path, Path]:
    """A dataset folder and a model folder with everything a real working folder collects."""
    data = tmp_path / "support-data"
    (data / ".git").mkdir(parents=True)
    (data / ".git" / "config").write_text("[core]\n")
    (data / ".env").write_text("HF_TOKEN=hf_secret_in_a_dotenv_file\n")
    (data / ".cache").mkdir()
    (data / ".cache" / "old.jsonl").write_text("{}\n")
    (data / "notes.txt").write_text("private notes\n")
    (data / "train.jsonl").write_text(train_file_rows())
    (data / "test.jsonl").write_text(train_file_rows())
    model = tmp_path / "my-model"
    model.mkdir()
    for f in tiny_llama_dir.iterdir():
        if f.is_file():
            (model / f.name).write_bytes(f.read_bytes())
    (model / "modeling_custom.py").write_text("import os\n")
    (model / "README.md").write_text("# my model\n")
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return data, model


def train_file_rows() -> str:
    rows = [{"messages": [{"role": "user", "content": f"{i}+{i}?"}, {"role": "assistant", "content": str(2 * i)}]} for i in range(12)]
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_only_the_files_the_run_reads_are_uploaded_and_the_result_lists_them(hub, cluttered):
    data, model = cluttered
    config = RunConfig(model=str(model), dataset={"path": str(data)}, push_to_hub=f"{USER}/m", timeout_seconds=1800)
    result = start_training(config, backend="hf", flavor="a10g-small", skip_plan=True)
    job = JobStore().get(result.job_id)
    files = set(hub.volume_files(job.backend_job_id))
    inputs = {f for f in files if f.startswith(("dataset/", "model/"))}
    model_files = {f"model/{f.name}" for f in model.iterdir() if f.is_file() and f.suffix in (".json", ".safetensors", ".txt", ".jinja")
                   and f.name not in ("README.md",)}
    assert inputs == {"dataset/train.jsonl", *model_files}
    assert not any(".env" in f or ".git" in f or f.endswith((".py", "notes.txt", "README.md")) for f in inputs)
    listed = {u.path: u.bytes for u in result.uploads}
    assert set(listed) == files
    assert listed["dataset/train.jsonl"] == (data / "train.jsonl").stat().st_size
    cloud = json.loads(hub.volume_files(job.backend_job_id)["config.json"])
    assert cloud["dataset"]["path"] == "/data/dataset" and cloud["model"] == "/data/model"


def test_a_read_only_token_can_create_neither_buckets_nor_jobs_nor_files(hub):
    ro = "hf_" + "r" * 30
    hub.add_user(ro, "bob", role="read")
    headers = {"authorization": f"Bearer {ro}"}
    with httpx.Client(base_url=hub.url, headers=headers) as client:
        assert client.post("/api/buckets/bob/jobs-artifacts", json={"visibility": "private"}).status_code == 403
        assert client.post("/api/jobs/bob", json={"command": ["true"], "flavor": "cpu-basic", "dockerImage": "x"}).status_code == 403
        assert client.get("/api/buckets/bob/jobs-artifacts/xet-write-token").status_code == 403
        assert client.get("/api/whoami-v2").status_code == 200  # reading still works


@pytest.mark.parametrize("spec, why", [
    ({"flavor": "cpu-basic", "dockerImage": "x"}, "command"),
    ({"command": "python train.py", "flavor": "cpu-basic", "dockerImage": "x"}, "command"),
    ({"command": ["true"], "flavor": "cpu-basic"}, "dockerImage"),
    ({"command": ["true"], "flavor": "cpu-basic", "dockerImage": "x", "timeoutSeconds": "30m"}, "timeoutSeconds"),
    ({"command": ["true"], "flavor": "cpu-basic", "dockerImage": "x", "environment": {"N": 3}}, "environment"),
    ({"command": ["true"], "flavor": "cpu-basic", "dockerImage": "x", "secrets": ["HF_TOKEN"]}, "secrets"),
    ({"command": ["true"], "flavor": "cpu-basic", "dockerImage": "x", "volumes": [{"type": "bucket", "source": "alice/none", "mountPath": "/data"}]}, "bucket"),
    ({"command": ["true"], "flavor": "cpu-basic", "dockerImage": "x", "volumes": [{"type": "bucket", "mountPath": "/data"}]}, "volume"),
    ({"command": ["true"], "flavor": "cpu-basic", "dockerImage": "x", "gpu": True}, "unknown"),
])
def test_the_emulator_refuses_job_specs_the_service_refuses(hub, spec, why):
    with httpx.Client(base_url=hub.url, headers={"authorization": f"Bearer {hub.token}"}) as client:
        answer = client.post(f"/api/jobs/{USER}", json=spec)
    assert answer.status_code == 400 and why in answer.json()["error"]


def test_a_finished_job_log_ends_with_the_hub_frame_line_which_our_log_leaves_out(hub, train_file):
    from tuneforge.jobs.service import JobService

    job = submit(train_file)
    hub.set_stage(job.backend_job_id, "RUNNING")
    hub.append_log(job.backend_job_id, "hello from the script")
    hub.set_stage(job.backend_job_id, "COMPLETED")
    with httpx.Client(base_url=hub.url, headers={"authorization": f"Bearer {hub.token}"}) as client:
        raw = client.get(f"/api/jobs/{USER}/{job.backend_job_id}/logs").text
    assert "===== Job finished: status=COMPLETED =====" in raw
    done = JobService().wait(job.job_id, timeout=30)
    assert Path(done.job_dir, "job.log").read_text().splitlines() == ["hello from the script"]


def test_a_local_eval_file_travels_with_the_job_and_the_cloud_config_points_at_it(hub, train_file, tmp_path):
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text(json.dumps({"prompt": "2+2?", "reference": "4"}) + "\n")
    config = RunConfig(model="HuggingFaceTB/SmolLM2-135M-Instruct", dataset={"path": str(train_file)},
                       push_to_hub=f"{USER}/m", timeout_seconds=1800, eval={"path": str(heldout)})
    result = start_training(config, backend="hf", flavor="a10g-small", skip_plan=True)
    job = JobStore().get(result.job_id)
    files = hub.volume_files(job.backend_job_id)
    assert files["heldout/heldout.jsonl"] == heldout.read_bytes()
    assert json.loads(files["config.json"])["eval"]["path"] == "/data/heldout/heldout.jsonl"
