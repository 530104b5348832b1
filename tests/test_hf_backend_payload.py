"""The payload an hf job receives really trains: run the exact command and files locally.

Submit through the hf backend to the emulator, take back what the Hub received (the command list and
the files uploaded to the job's /data bucket folder, read from the local CAS), put those files in a
local folder standing for /data, rewrite only the /data prefix, and run the command with this
machine's Python in place of `uv run` (the template's PEP 723 header names the same packages this
venv has). The job's secret HF_TOKEN is provided the way HF Jobs provides it, as an environment
variable, and the Hub it pushes to is the emulator: the run must train, write result.json, and push
the adapter and the model card.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_hf_backend import USER, hub, train_file  # noqa: F401  (fixtures)
from tuneforge import paths
from tuneforge.config import RunConfig
from tuneforge.jobs.service import JobService
from tuneforge.jobs.workspace import support_files

MOUNT = "/data"


def rewrite(value: Any, local: Path) -> Any:
    """Only the /data prefix changes: /data/x -> <local>/x."""
    if isinstance(value, str) and (value == MOUNT or value.startswith(MOUNT + "/")):
        return str(local) + value[len(MOUNT):]
    if isinstance(value, list):
        return [rewrite(v, local) for v in value]
    if isinstance(value, dict):
        return {k: rewrite(v, local) for k, v in value.items()}
    return value


@pytest.mark.slow
def test_the_exact_payload_an_hf_job_receives_trains_the_tiny_model_and_pushes(hub, train_file, tiny_llama_dir, tmp_path):  # noqa: F811
    config = RunConfig.from_dict({
        "model": str(tiny_llama_dir),
        "dataset": {"path": str(train_file)},
        "push_to_hub": f"{USER}/tiny-sums",
        "max_length": 128,
        "train": {"max_steps": 2, "per_device_batch_size": 2, "save_steps": 1},
        "timeout_seconds": 1800,
    })
    job = JobService().submit_training(config, backend="hf", flavor="a10g-small")
    received = hub.jobs[job.backend_job_id]
    command: list[str] = received["command"]
    assert command[:2] == ["uv", "run"] and command[2:] == ["/data/sft.py", "--config", "/data/config.json"]

    data = tmp_path / "mount"  # stands for the bucket folder mounted at /data
    for rel, content in hub.volume_files(job.backend_job_id).items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(content)
    cloud = json.loads((data / "config.json").read_text())
    assert cloud["model"] == "/data/model" and cloud["dataset"]["path"] == "/data/dataset/train.jsonl"
    (data / "config.json").write_text(json.dumps(rewrite(cloud, data)))
    assert (data / "model" / "model.safetensors").read_bytes() == (tiny_llama_dir / "model.safetensors").read_bytes()
    # the template's shared helpers sit next to it in /data, as shipped
    for rel in support_files(paths.templates_dir()):
        assert (data / rel).read_bytes() == (paths.templates_dir() / rel).read_bytes()

    workdir = tmp_path / "job-cwd"  # the container's working directory: outputs are relative to it
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TUNEFORGE_"))}
    env.update(received["environment"])
    env.update(received["_secrets"])  # what HF Jobs injects: HF_TOKEN
    env.update({"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "job-hf-home"), "HF_HUB_OFFLINE": "0",
                "TRANSFORMERS_OFFLINE": "0", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TUNEFORGE_NO_TRACKIO": "1"})
    proc = subprocess.run([sys.executable, *rewrite(command[2:], data)], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    result = json.loads((workdir / "outputs" / "result.json").read_text())
    assert result["steps"] == 2 and result["train_loss"] > 0 and result["eval_loss_after"] is not None
    assert (workdir / "outputs" / "adapter" / "adapter_model.safetensors").is_file()
    events = [json.loads(line.split(" ", 1)[1]) for line in proc.stdout.splitlines() if line.startswith("##tuneforge-event ")]
    assert [e["step"] for e in events if e["type"] == "progress"][-1] == 2

    pushed = hub.repo_files(f"{USER}/tiny-sums")
    summaries = [c["ops"][0]["value"]["summary"] for c in hub.commits]
    assert "Training in progress, step 1" in summaries  # checkpoints are pushed as they are saved
    assert "README.md" in pushed and any(p.endswith("adapter_model.safetensors") for p in pushed)
    assert "eval loss before" in hub.read_repo_file(f"{USER}/tiny-sums", "README.md").decode()
    unanswered = [f"{r.method} {r.path}" for r in hub.requests if r.status == 404]
    assert not unanswered, unanswered
    assert hub.token not in proc.stdout + proc.stderr
