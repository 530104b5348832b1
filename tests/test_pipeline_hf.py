"""A pipeline on the hf backend against the Jobs emulator: the same driver submits each stage's cloud job when
the one before completes, and the next stage trains on the repo the previous one pushed. A paid pipeline is
refused until confirmed once, for its total. The stages' jobs are driven by the test through the emulator."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from hf_emulator import HubEmulator
from test_hf_backend import USER, event, hub, train_file  # noqa: F401  (fixtures)
from test_hf_backend_cli import MODEL, serve_model
from tuneforge.actions.pipeline import cancel_pipeline, pipeline_status, resume_pipeline
from tuneforge.errors import TuneforgeError
from tuneforge.pipelines.spec import parse_spec
from tuneforge.records import JobStore


def spec_for(data: Path, prefs: Path):
    return parse_spec({
        "name": "cloud", "model": MODEL, "push_to": f"{USER}/sums", "flavor": "a10g-small",
        "config": {"train": {"max_steps": 5}, "timeout_seconds": 1800},
        "stages": [{"kind": "train", "method": "sft", "dataset": str(data)},
                   {"kind": "train", "method": "dpo", "dataset": str(prefs)}],
    })


def hf_job_of(pipeline_id: str, stage: int, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = pipeline_status(pipeline_id)
        job_id = st.stages[stage].job_id
        if job_id and JobStore().get(job_id).backend_job_id:
            return job_id
        time.sleep(0.3)
    raise AssertionError(f"stage {stage} never got a job: {st.model_dump_json(indent=1)}")


def complete(emu: HubEmulator, job_id: str) -> None:
    hf_id = JobStore().get(job_id).backend_job_id
    emu.set_stage(hf_id, "RUNNING")
    emu.append_log(hf_id, event("progress", step=5, total_steps=5, loss=0.5),
                   event("result", eval_loss_before=2.0, eval_loss_after=1.0, steps=5))
    emu.set_stage(hf_id, "COMPLETED")


@pytest.mark.slow  # the planner reads the model's tokenizer from the emulated Hub (~15 s), twice
def test_an_hf_pipeline_chains_cloud_jobs_each_on_the_repo_the_last_one_pushed(hub, train_file, smollm2_dir, tmp_path,  # noqa: F811
                                                                                monkeypatch, tuneforge_cli):
    monkeypatch.setenv("TUNEFORGE_PIPELINE_POLL_SECONDS", "0.2")
    serve_model(hub, smollm2_dir)
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text("".join(json.dumps({"prompt": f"{i}?", "chosen": "yes", "rejected": "no"}) + "\n" for i in range(12)))
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(spec_for(train_file, prefs).model_dump(mode="json")))
    # through the CLI (a subprocess: huggingface_hub reads HF_ENDPOINT when it is imported)
    proc = subprocess.run([*tuneforge_cli, "pipeline", "run", str(path), "--backend", "hf", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    answer = json.loads(proc.stdout)
    plan, pipeline_id = answer["plan"], answer["pipeline_id"]
    assert [s["estimate"]["flavor"] for s in plan["stages"]] == ["a10g-small", "a10g-small"]
    assert plan["total_cost_usd"] == pytest.approx(sum(s["estimate"]["cost_usd"] for s in plan["stages"]))
    canceled = hf_job_of(pipeline_id, 0)
    # cancel stops the running stage's cloud job and the rest; resume gives that stage a new job
    st = cancel_pipeline(pipeline_id)
    assert st.state == "CANCELED" and [s.state for s in st.stages] == ["CANCELED", "CANCELED"]
    assert hub.jobs[JobStore().get(canceled).backend_job_id]["status"]["stage"] == "CANCELED"
    assert resume_pipeline(pipeline_id).state == "PENDING"
    deadline = time.monotonic() + 60
    while (first := pipeline_status(pipeline_id).stages[0].job_id) == canceled and time.monotonic() < deadline:
        time.sleep(0.3)
    first = hf_job_of(pipeline_id, 0)
    assert first != canceled and pipeline_status(pipeline_id).stages[0].attempts == 2
    sft = JobStore().get(first)
    assert sft.config.push_to_hub == f"{USER}/sums-0-sft" and sft.pipeline_id == pipeline_id
    assert len(hub.calls("POST", rf"^/api/jobs/{USER}$")) == 2  # the next stage waits for this one
    serve_model(hub, smollm2_dir, f"{USER}/sums-0-sft")  # what the SFT job pushed (the emulator runs no job)
    complete(hub, first)

    second = hf_job_of(pipeline_id, 1)
    dpo = JobStore().get(second)
    assert dpo.config.model == f"{USER}/sums-0-sft" and dpo.config.method == "dpo" and dpo.pipeline_stage == 1
    complete(hub, second)
    deadline = time.monotonic() + 60
    while not (st := pipeline_status(pipeline_id)).ended and time.monotonic() < deadline:
        time.sleep(0.3)
    assert st.state == "COMPLETED" and [s.state for s in st.stages] == ["COMPLETED", "COMPLETED"]
    assert st.stages[0].output["metrics"]["eval_loss"] == {"before": 2.0, "after": 1.0}
    with pytest.raises(TuneforgeError) as err:
        cancel_pipeline(pipeline_id)
    assert err.value.code == "pipeline.already_finished"
