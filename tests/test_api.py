"""The Python API returns the core's typed models and raises errors with codes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tuneforge import api
from tuneforge.config import DatasetSpec, RunConfig
from tuneforge.errors import TuneforgeError
from tuneforge.jobs.service import JobStatus, JobSummary
from tuneforge.records import Job, JobStore
from tuneforge.reports.dataset import DatasetReport

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "server" / "tuneforge" / "data" / "demo" / "train.jsonl"
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_job_calls_return_typed_status_and_summaries(tuneforge_home: Path):
    job_dir = tuneforge_home / "jobs" / "tf-20260101-000000-api000"
    job_dir.mkdir(parents=True)
    (job_dir / "job.log").write_text("one\ntwo\n")
    now = time.time()
    JobStore().create(Job(job_id=job_dir.name, backend="local", kind="train", method="sft", stage="COMPLETED",
                          message="done", job_dir=str(job_dir), created_at=now - 9, started_at=now - 8, finished_at=now,
                          config=RunConfig(model=MODEL, dataset=DatasetSpec(path=str(DEMO)))))
    [summary] = api.list_jobs()
    assert isinstance(summary, JobSummary) and summary.model == MODEL
    for status in (api.status(job_dir.name), api.wait(job_dir.name, timeout=5), api.cancel(job_dir.name)):
        assert isinstance(status, JobStatus) and status.stage == "COMPLETED"
    assert api.logs(job_dir.name) == ["one", "two"]
    with pytest.raises(TuneforgeError) as missing:
        api.status("tf-20990101-000000-ffffff")
    assert missing.value.code == "job.not_found"


def test_validate_returns_the_doctor_s_report_and_train_refuses_a_cloud_run_without_a_push_target():
    report = api.validate(str(DEMO), method="sft")
    assert isinstance(report, DatasetReport) and report.methods["sft"].status == "ready"
    with pytest.raises(TuneforgeError) as refused:
        api.train({"model": MODEL, "dataset": {"path": str(DEMO)}}, backend="hf")
    assert refused.value.code == "config.push_target_required"
