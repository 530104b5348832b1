"""Pipeline parts without training: the paid-pipeline confirmation, the end notification's payload, the faces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_main import run_main
from tuneforge.actions import pipeline as actions
from tuneforge.errors import TuneforgeError
from tuneforge.pipelines.notify import notify_end, payload
from tuneforge.pipelines.spec import parse_spec
from tuneforge.records.pipelines import (
    Pipeline,
    PipelineStore,
    StageEstimate,
    StageRecord,
)


def record(**changes) -> Pipeline:
    stages = [StageRecord(index=0, kind="train", label="sft", state="COMPLETED", job_ids=["tf-a"],
                          output={"metrics": {"eval_loss": {"before": 2.0, "after": 1.0}}}),
              StageRecord(index=1, kind="gguf", label="gguf q4_k_m", state="ERROR", job_ids=["tf-b"], message="gate",
                          output={"report": {"files": [{"quant": "q4_k_m", "path": "/x.gguf", "bytes": 9,
                                                        "checks": {"passed": False}}]}})]
    return Pipeline(pipeline_id="pl-test-1234", name="t", spec={}, stages=stages, created_at=1.0, state="ERROR", **changes)


def test_a_paid_pipeline_is_refused_until_confirmed_once_for_the_total(monkeypatch, tmp_path: Path):
    spec = parse_spec({"model": "m/m", "stages": [{"kind": "train", "dataset": "d"}, {"kind": "train", "dataset": "d"}]})
    plan = actions.PipelinePlan(name="", backend="hf", model="m/m", total_cost_usd=3.5, stages=[
        actions.StagePlan(index=i, kind="train", label="sft", estimate=StageEstimate(cost_usd=1.75)) for i in (0, 1)])
    monkeypatch.setattr(actions, "plan_pipeline", lambda *a, **k: plan)
    with pytest.raises(TuneforgeError) as err:
        actions.run_pipeline(spec, backend="hf", confirmed=False)
    assert err.value.code == "pipeline.not_confirmed" and "$3.50 in total" in err.value.message
    assert PipelineStore().list() == []  # nothing recorded, nothing started


def test_the_end_notification_carries_every_stage_and_never_the_url(monkeypatch):
    body = payload(record())
    assert [s["state"] for s in body["stages"]] == ["COMPLETED", "ERROR"]
    assert body["stages"][0]["metrics"]["eval_loss"] == {"before": 2.0, "after": 1.0}
    assert body["stages"][1]["files"] == [{"quant": "q4_k_m", "path": "/x.gguf", "bytes": 9, "passed": False}]
    assert "1/2 stages completed" in body["text"]
    sent = []
    notify = pytest.importorskip("tuneforge.templates._shared.notify")  # engineer "notify"'s sender
    monkeypatch.setattr(notify, "send", lambda url, data, **kw: sent.append((url, data)) or True)
    pl = PipelineStore().create(record())
    assert notify_end(pl, "https://hooks.example.com/secret-path") is True
    assert sent[0][0] == "https://hooks.example.com/secret-path" and sent[0][1]["pipeline_id"] == pl.pipeline_id
    stored = PipelineStore().get(pl.pipeline_id)
    assert stored.notified and "secret-path" not in stored.model_dump_json()
    assert notify_end(stored, "https://hooks.example.com/secret-path") is False  # once


def test_status_list_and_errors_through_the_cli(capsys):
    PipelineStore().create(record())
    proc = run_main(capsys, "pipeline", "list", "--json")
    code, out = proc.returncode, proc.stdout
    assert code == 0 and json.loads(out)["count"] == 1
    proc = run_main(capsys, "pipeline", "status", "pl-test", "--json")
    code, out = proc.returncode, proc.stdout
    data = json.loads(out)
    assert code == 0 and data["state"] == "ERROR" and data["next"].startswith("tuneforge pipeline resume pl-test-1234")
    proc = run_main(capsys, "pipeline", "status", "pl-nope", "--json")
    code, out = proc.returncode, proc.stdout
    assert code != 0 and json.loads(out)["code"] == "pipeline.not_found"
    proc = run_main(capsys, "pipeline", "cancel", "pl-test-1234", "--json")
    code, out = proc.returncode, proc.stdout
    assert code != 0 and json.loads(out)["code"] == "pipeline.already_finished"


def test_train_then_builds_the_same_pipeline_a_file_would(tmp_path: Path):
    from tuneforge.config import RunConfig
    from tuneforge.errors import ConfigError
    from tuneforge.pipelines.spec import short_form

    data = tmp_path / "sft.jsonl"
    data.write_text("{}\n")
    config = RunConfig.from_dict({"model": "m/m", "dataset": {"path": str(data)}, "train": {"max_steps": 2},
                                  "push_to_hub": "me/run"})
    spec = short_form(config.model_dump(mode="json", exclude_unset=True), ["dpo:prefs.jsonl", "gguf:q4_k_m,q8_0"],
                      backend="hf")
    assert [s.label for s in spec.stages] == ["sft", "dpo", "gguf q4_k_m,q8_0"]
    assert spec.config == {"train": {"max_steps": 2}} and spec.push_to == "me/run"
    assert spec.stages[0].dataset["path"] == str(data) and spec.stages[2].push_to == "me/run-GGUF"
    with pytest.raises(ConfigError) as err:
        short_form(config.model_dump(mode="json", exclude_unset=True), ["zip:x"])
    assert err.value.code == "pipeline.bad_then"


def test_the_mcp_tools_answer_typed_and_in_tool_words():
    from mcp_client import in_memory, text_of

    PipelineStore().create(record())

    async def body(client):
        return (await client.call_tool("list_pipelines", {}), await client.call_tool("pipeline_status", {"pipeline_id": "pl-test"}),
                await client.call_tool("pipeline_status", {"pipeline_id": "pl-nope"}))

    listed, status, missing = in_memory(body)
    assert listed.structured_content["count"] == 1
    assert status.structured_content["state"] == "ERROR"
    assert status.structured_content["next"].startswith("resume_pipeline(pipeline_id='pl-test-1234')")
    assert missing.is_error and "pipeline.not_found" in text_of(missing) and "list_pipelines" in text_of(missing)
