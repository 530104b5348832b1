"""The MCP server through the SDK's own client: tools, schemas, structured results, tool errors.

Most tests connect the SDK's `Client` to `build_server()` in memory (the test's own $TUNEFORGE_HOME);
the start-up handshake and the end-to-end runs go through `python -m tuneforge mcp` as a real subprocess
over stdio. Jobs the tools read are real records in that home (written through the job store) or real
local jobs (detached supervisor processes running small scripts), never mocks.
"""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mcp_client import REPO, in_memory, server_env, text_of, with_session

from tuneforge.config import RunConfig
from tuneforge.jobs.service import JobService, JobStatus
from tuneforge.mcp.results import JobList, JobLogs, JobWait
from tuneforge.records import Job, JobStore
from tuneforge.reports.setup import SetupReport

DEMO = REPO / "server" / "tuneforge" / "data" / "demo" / "train.jsonl"
READ_ONLY = {"check_setup", "validate_dataset", "plan_training", "job_status", "job_logs", "list_jobs", "wait_for_job"}
DESTRUCTIVE = {"submit_training", "cancel_job"}
ALL_TOOLS = READ_ONLY | DESTRUCTIVE | {"export_gguf"}


def seed_finished_job(home: Path, lines: int = 1000, stage: str = "COMPLETED") -> Job:
    """A finished local job record with a log of `lines` numbered lines, as the job store keeps it."""
    job_id = "tf-20260101-000000-abc123"
    job_dir = home / "jobs" / job_id
    job_dir.mkdir(parents=True)
    (job_dir / "job.log").write_text("".join(f"line {i}\n" for i in range(1, lines + 1)))
    now = time.time()
    job = Job(job_id=job_id, backend="local", kind="train", method="sft", stage=stage, message="completed",
              job_dir=str(job_dir), config=RunConfig(model="HuggingFaceTB/SmolLM2-135M-Instruct", dataset={"path": "owner/data"}), created_at=now - 60,
              started_at=now - 50, finished_at=now - 5, progress={"step": 10, "total_steps": 10, "loss": 1.25})
    return JobStore().create(job)


def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **extra: str) -> None:
    """The test's environment without any Hugging Face token (env or file), plus `extra`."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for key in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH"):
        monkeypatch.delenv(key, raising=False)
    for key, value in extra.items():
        monkeypatch.setenv(key, value)


def code_of(result) -> str | None:
    """The error code a tool error carries (`[area.reason] message`)."""
    found = re.search(r"\[([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+)\]", text_of(result))
    return found.group(1) if found else None


def test_every_capability_is_a_titled_described_annotated_tool_with_typed_input_and_output():
    async def body(session):
        listed = await session.list_tools()
        return listed.tools

    tools = {t.name: t for t in in_memory(body)}
    assert ALL_TOOLS <= set(tools)
    for name, tool in tools.items():
        assert tool.title, name
        assert len(tool.description) > 120 and "Use " in tool.description, name
        assert "\n        " not in tool.description, f"{name}: docstring indentation leaked into the description"
        assert tool.input_schema["type"] == "object"
        for prop, schema in tool.input_schema.get("properties", {}).items():
            if prop not in ("job_id",):
                assert schema.get("description") or "$ref" in json.dumps(schema), f"{name}.{prop} has no description"
        assert tool.output_schema and tool.output_schema.get("properties"), f"{name} has no output schema"
        assert tool.annotations is not None
    for name in READ_ONLY:
        assert tools[name].annotations.read_only_hint is True, name
        assert tools[name].annotations.destructive_hint is False, name
    for name in DESTRUCTIVE:
        assert tools[name].annotations.read_only_hint is False, name
        assert tools[name].annotations.destructive_hint is True, name
        assert tools[name].annotations.open_world_hint is True, name
    # structured outputs are the core's own models
    assert set(SetupReport.model_json_schema()["properties"]) == set(tools["check_setup"].output_schema["properties"])
    assert set(JobStatus.model_json_schema()["properties"]) == set(tools["job_status"].output_schema["properties"])
    assert {"rows", "format", "methods"} <= set(tools["validate_dataset"].output_schema["properties"])
    assert {"flavor", "hours", "cost_usd", "timeout_seconds"} <= set(tools["plan_training"].output_schema["properties"])
    assert {"files", "passed", "out_dir"} <= set(tools["export_gguf"].output_schema["properties"])
    # submit takes the whole typed RunConfig as well as flat fields
    assert "config" in tools["submit_training"].input_schema["properties"]
    assert "RunConfig" in json.dumps(tools["submit_training"].input_schema)


def test_the_server_introduces_the_workflow_and_its_version():
    import anyio
    from mcp import ClientSession, StdioServerParameters, stdio_client

    async def main():
        params = StdioServerParameters(command=sys.executable, args=["-m", "tuneforge", "mcp"], env=server_env(), cwd=str(REPO))
        with open(os.devnull, "w") as log:
            async with stdio_client(params, errlog=log) as (r, w):
                async with ClientSession(r, w) as s:
                    return await s.initialize()

    init = anyio.run(main)
    import tuneforge

    assert init.server_info.name == "tuneforge"
    assert init.server_info.version == tuneforge.__version__
    for step in ("check_setup", "validate_dataset", "plan_training", "submit_training", "job_status", "export_gguf"):
        assert step in init.instructions
    assert "ask" in init.instructions.lower()


def test_check_setup_says_where_the_token_comes_from_and_never_shows_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    secret = "hf_SuperSecretValue123456"

    async def body(session):
        return await session.call_tool("check_setup", {})

    clean_env(monkeypatch, tmp_path)
    without = in_memory(body)
    assert not without.is_error
    report = SetupReport.model_validate(without.structured_content)
    assert report.hf_token.present is False and report.hf_token.source == "none"
    assert any("hf auth login" in step for step in report.next_steps)
    assert {b.name for b in report.backends} == {"local", "hf"}
    assert report.disk.free_gb > 0 and report.home.startswith(os.environ["TUNEFORGE_HOME"])
    assert report.torch.installed is True and report.train_extra.installed is True  # the test venv has the extra

    clean_env(monkeypatch, tmp_path, HF_TOKEN=secret)
    with_env = in_memory(body)
    report = SetupReport.model_validate(with_env.structured_content)
    assert report.hf_token.present is True and report.hf_token.source == "HF_TOKEN"
    assert secret not in text_of(with_env) and secret not in json.dumps(with_env.structured_content)

    token_file = tmp_path / "hf" / "token"
    token_file.parent.mkdir(parents=True)
    token_file.write_text(secret + "\n")
    clean_env(monkeypatch, tmp_path)
    from_file = in_memory(body)
    report = SetupReport.model_validate(from_file.structured_content)
    assert report.hf_token.source == "token file" and report.hf_token.path == str(token_file)
    assert secret not in text_of(from_file)


def test_job_tools_read_a_finished_job_with_capped_logs_and_a_way_to_page_back(tuneforge_home: Path):
    job = seed_finished_job(tuneforge_home, lines=1000)

    async def body(session):
        return (
            await session.call_tool("list_jobs", {}),
            await session.call_tool("list_jobs", {"stage": "RUNNING"}),
            await session.call_tool("job_status", {"job_id": job.job_id, "log_tail": 5}),
            await session.call_tool("job_logs", {"job_id": job.job_id, "tail": 50}),
            await session.call_tool("job_logs", {"job_id": job.job_id, "tail": 50, "skip": 50}),
            await session.call_tool("job_logs", {"job_id": job.job_id, "tail": 500, "skip": 990}),
            await session.call_tool("wait_for_job", {"job_id": job.job_id, "timeout_seconds": 5}),
        )

    listed, running, status, logs, older, oldest, waited = in_memory(body)
    for result in (listed, running, status, logs, older, oldest, waited):
        assert not result.is_error, text_of(result)
    jobs = JobList.model_validate(listed.structured_content)
    assert jobs.count == 1 and jobs.jobs[0].job_id == job.job_id and jobs.jobs[0].step == 10
    assert JobList.model_validate(running.structured_content).count == 0

    st = JobStatus.model_validate(status.structured_content)
    assert st.stage == "COMPLETED" and st.terminal and st.progress["loss"] == 1.25
    assert st.log_tail == [f"line {i}" for i in range(996, 1001)]

    page = JobLogs.model_validate(logs.structured_content)
    assert page.lines == [f"line {i}" for i in range(951, 1001)]
    assert (page.first_line, page.total_lines, page.truncated) == (951, 1000, True)
    assert "skip=50" in page.more
    page2 = JobLogs.model_validate(older.structured_content)
    assert page2.lines[0] == "line 901" and page2.lines[-1] == "line 950"
    first = JobLogs.model_validate(oldest.structured_content)
    assert first.lines == [f"line {i}" for i in range(1, 11)] and first.first_line == 1
    assert "start of the log" in first.more

    w = JobWait.model_validate(waited.structured_content)
    assert w.finished and w.job.stage == "COMPLETED"


def test_log_pages_stay_within_the_character_budget(tuneforge_home: Path):
    job = seed_finished_job(tuneforge_home, lines=0)
    Path(job.job_dir, "job.log").write_text("".join(f"{i:04d} " + "x" * 2000 + "\n" for i in range(300)))

    async def body(session):
        return await session.call_tool("job_logs", {"job_id": job.job_id, "tail": 500})

    result = in_memory(body)
    page = JobLogs.model_validate(result.structured_content)
    assert sum(len(line) + 1 for line in page.lines) <= 24_000
    assert all(len(line) <= 600 for line in page.lines)
    assert page.lines[-1].startswith("0299 ") and page.truncated and "skip=" in page.more


MALFORMED = [
    ("check_setup", {"online": "perhaps"}),
    ("list_jobs", {"limit": 0}),
    ("list_jobs", {"stage": "DONE"}),
    ("job_status", {"job_id": "-rf"}),
    ("job_status", {"job_id": "tf-1", "log_tail": 1000}),
    ("job_logs", {"job_id": "tf-20260101-000000-abc123", "tail": 0}),
    ("job_logs", {}),
    ("wait_for_job", {"job_id": "tf-20260101-000000-abc123", "timeout_seconds": 0}),
    ("validate_dataset", {"source": ""}),
    ("validate_dataset", {"source": "data.jsonl", "method": "rlhf"}),
    ("plan_training", {"model": "Qwen/Qwen3-0.6B", "method": "ppo"}),
    ("plan_training", {"model": "Qwen/Qwen3-0.6B", "rows": 0}),  # model may come from config/config_path: not required
]


def test_read_only_tools_refuse_malformed_arguments_as_tool_errors():
    async def body(session):
        return [(tool, args, await session.call_tool(tool, args)) for tool, args in MALFORMED]

    accepted = []
    for tool, args, result in in_memory(body):
        if not (result.is_error and tool in text_of(result) and "validation error" in text_of(result)):
            accepted.append(f"{tool}({args}) -> {text_of(result)[:200]}")
    assert not accepted, "malformed calls not refused:\n" + "\n".join(accepted)


def test_a_missing_job_or_dataset_comes_back_as_an_error_that_names_the_fix(tmp_path: Path):
    async def body(session):
        return [
            await session.call_tool(name, args)
            for name, args in (
                ("job_status", {"job_id": "tf-20990101-000000-ffffff"}),
                ("job_logs", {"job_id": "tf-20990101-000000-ffffff"}),
                ("cancel_job", {"job_id": "tf-20990101-000000-ffffff"}),
                ("wait_for_job", {"job_id": "tf-20990101-000000-ffffff", "timeout_seconds": 5}),
                ("validate_dataset", {"source": str(tmp_path / "missing.jsonl")}),
            )
        ]

    results = in_memory(body)
    for result in results[:4]:
        text = text_of(result)
        assert result.is_error and "tf-20990101-000000-ffffff" in text
        assert "Fix: call list_jobs" in text
        assert code_of(result) == "job.not_found"
    missing = results[4]
    assert missing.is_error and "missing.jsonl" in text_of(missing) and "Fix:" in text_of(missing)
    assert code_of(missing) == "dataset.not_found"


def test_the_dataset_doctor_and_planner_answer_through_the_server(smollm2_dir: Path):
    async def body(session):
        return (
            await session.call_tool("validate_dataset", {"source": str(DEMO), "method": "sft"}),
            await session.call_tool("plan_training", {"model": str(smollm2_dir), "method": "sft", "dataset": str(DEMO),
                                                      "backend": "hf"}),
        )

    report, plan = in_memory(body)
    assert not report.is_error, text_of(report)
    assert report.structured_content["rows"] == sum(1 for line in DEMO.read_text().splitlines() if line.strip())
    assert report.structured_content["format"] == "messages"
    assert report.structured_content["methods"]["sft"]
    assert not plan.is_error, text_of(plan)
    p = plan.structured_content
    assert 0.12 < p["params_b"] < 0.15  # SmolLM2-135M, counted from its config
    assert p["backend"] == "hf" and p["flavor"] and p["cost_usd"] > 0 and p["timeout_seconds"] > 0
    assert p["rows"] == report.structured_content["rows"]


def test_a_paid_run_is_refused_until_the_user_confirmed_and_nothing_is_submitted():
    async def body(session):
        refused = await session.call_tool("submit_training", {
            "model": "Qwen/Qwen3-0.6B", "dataset": str(DEMO), "backend": "hf", "push_to_hub": "someone/qwen-demo"})
        nowhere = await session.call_tool("submit_training", {
            "model": "Qwen/Qwen3-0.6B", "dataset": str(DEMO), "backend": "hf", "confirmed": True})
        missing = await session.call_tool("submit_training", {"dataset": str(DEMO)})
        bad = await session.call_tool("submit_training", {"model": "Qwen/Qwen3-0.6B", "dataset": str(DEMO), "max_length": 8})
        jobs = await session.call_tool("list_jobs", {})
        return refused, nowhere, missing, bad, jobs

    refused, nowhere, missing, bad, jobs = in_memory(body)
    assert nowhere.is_error and "push_to_hub=" in text_of(nowhere)
    assert refused.is_error and "confirmed=true" in text_of(refused) and "plan_training" in text_of(refused)
    assert missing.is_error and "needs model" in text_of(missing) and "Fix:" in text_of(missing)
    assert bad.is_error and "max_length" in text_of(bad)
    assert [code_of(r) for r in (refused, nowhere, missing)] == [
        "train.not_confirmed", "config.push_target_required", "config.missing_field"]
    assert JobList.model_validate(jobs.structured_content).count == 0


def test_a_config_file_and_flat_arguments_combine_into_one_validated_config(tmp_path: Path):
    config = tmp_path / "run.yaml"
    config.write_text(textwrap.dedent(f"""\
        model: Qwen/Qwen3-0.6B
        dataset: {DEMO}
        method: dpo
        train: {{learning_rate: 0.0001}}
        bogus_key: 1
    """))

    async def body(session):
        return await session.call_tool("submit_training", {"config_path": str(config), "max_steps": 3})

    result = in_memory(body)
    assert result.is_error
    assert "bogus_key: unknown key" in text_of(result) and str(config) in text_of(result)
    assert code_of(result) == "config.invalid"


def _script(tmp_path: Path, name: str, code: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return path


def test_waiting_for_a_running_job_sends_progress_notifications_until_it_completes(tmp_path: Path):
    from tuneforge.records import JobSpec

    script = _script(tmp_path, "steps.py", """\
        import json, time
        for step in range(1, 4):
            print("##tuneforge-event " + json.dumps({"type": "progress", "step": step, "total_steps": 3, "loss": 2.0 / step}), flush=True)
            time.sleep(0.6)
    """)
    job = JobService().submit(JobSpec(script=script), backend="local", kind="train", method="sft")
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async def body(session):
        return await session.call_tool("wait_for_job", {"job_id": job.job_id, "timeout_seconds": 60, "poll_seconds": 0.2},
                                       progress_callback=on_progress)

    result = in_memory(body)
    assert not result.is_error, text_of(result)
    waited = JobWait.model_validate(result.structured_content)
    assert waited.finished and waited.job.stage == "COMPLETED"
    assert updates, "no progress notification arrived"
    steps = [p for p, total, _ in updates if total == 3]
    assert steps and steps == sorted(steps) and max(steps) == 3
    assert any("loss" in (m or "") for _, _, m in updates)


def test_cancel_job_stops_a_running_local_job(tmp_path: Path):
    from tuneforge.records import JobSpec

    started = tmp_path / "started"
    script = _script(tmp_path, "forever.py", f"""\
        import pathlib, time
        pathlib.Path({str(started)!r}).write_text("yes")
        deadline = time.time() + 120
        while time.time() < deadline:
            time.sleep(0.1)
    """)
    job = JobService().submit(JobSpec(script=script), backend="local", kind="train", method="sft")
    deadline = time.monotonic() + 60
    while not started.exists():
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)

    async def body(session):
        waited = await session.call_tool("wait_for_job", {"job_id": job.job_id, "timeout_seconds": 0.5, "poll_seconds": 30})
        return waited, await session.call_tool("cancel_job", {"job_id": job.job_id})

    started_waiting = time.monotonic()
    waited, result = in_memory(body)
    # a wait that times out answers at its timeout (not after a poll interval), and says the job goes on
    w = JobWait.model_validate(waited.structured_content)
    assert not w.finished and w.job.stage == "RUNNING" and "keeps running" in w.next
    assert time.monotonic() - started_waiting < 10
    assert not result.is_error, text_of(result)
    assert JobStatus.model_validate(result.structured_content).stage == "CANCELED"
    pgid = JobStore().get(job.job_id).pgid
    assert pgid
    from tuneforge.backends.local.processes import group_alive

    deadline = time.monotonic() + 30
    while group_alive(pgid):
        assert time.monotonic() < deadline, "the job's processes survived the cancel"
        time.sleep(0.1)


@pytest.mark.slow
def test_an_agent_can_train_a_tiny_model_end_to_end_through_the_tools(tiny_llama_dir: Path):
    """submit_training -> wait_for_job (progress notifications) -> job_status with the result, for real."""
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async def body(session):
        submitted = await session.call_tool("submit_training", {
            "model": str(tiny_llama_dir), "dataset": str(DEMO), "method": "sft", "max_steps": 3, "max_length": 256,
            "config": {"model": str(tiny_llama_dir), "dataset": {"path": str(DEMO), "eval_fraction": 0.05},
                       "train": {"per_device_batch_size": 2, "logging_steps": 1}},
        })
        assert not submitted.is_error, text_of(submitted)
        job_id = submitted.structured_content["job_id"]
        waited = await session.call_tool("wait_for_job", {"job_id": job_id, "timeout_seconds": 600, "poll_seconds": 0.5},
                                         progress_callback=on_progress)
        status = await session.call_tool("job_status", {"job_id": job_id, "log_tail": 10})
        return submitted, waited, status

    submitted, waited, status = with_session(body, timeout=900)
    sub = submitted.structured_content
    assert sub["backend"] == "local" and sub["stage"] in ("SCHEDULING", "RUNNING") and sub["job_id"] in sub["next"]
    w = JobWait.model_validate(waited.structured_content)
    assert w.finished and w.job.stage == "COMPLETED", text_of(status)
    assert any(total == 3 for _, total, _ in updates), updates
    st = JobStatus.model_validate(status.structured_content)
    result = st.outputs["result"]
    assert result["eval_loss_after"] is not None and result["train_loss"] > 0
    assert Path(st.outputs["output_dir"]).is_dir()


@pytest.mark.slow
def test_export_gguf_sends_progress_and_returns_verified_files(tiny_llama_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from conftest import test_cache_dir

    from tuneforge.gguf import toolchain as tcm

    # the same persistent toolchain cache as tests/test_gguf.py (CI builds it ahead: make toolchain)
    monkeypatch.setenv("TUNEFORGE_TOOLCHAIN_DIR", str(test_cache_dir() / "toolchain"))
    tcm.ensure()
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async def body(session):
        return await session.call_tool("export_gguf", {"model": str(tiny_llama_dir), "quants": ["q8_0"], "out": str(tmp_path / "gguf")},
                                       progress_callback=on_progress)

    result = with_session(body, env=server_env(), timeout=900)
    assert not result.is_error, text_of(result)
    report = result.structured_content
    assert report["passed"] and [f["quant"].lower() for f in report["files"]] == ["q8_0"]
    assert Path(report["files"][0]["path"]).is_file() and report["files"][0]["path"].startswith(str(tmp_path))
    assert len(updates) >= 2 and all(total and 0 < p <= total for p, total, _ in updates)
    assert [p for p, _, _ in updates] == sorted(p for p, _, _ in updates)


def test_export_gguf_needs_something_to_export_and_says_so():
    async def body(session):
        return (await session.call_tool("export_gguf", {}),
                await session.call_tool("export_gguf", {"model": "/nonexistent/model-dir"}))

    nothing, missing = in_memory(body)
    assert nothing.is_error and "Fix:" in text_of(nothing)
    assert missing.is_error and "/nonexistent/model-dir" in text_of(missing) and "Fix:" in text_of(missing)
    assert (code_of(nothing), code_of(missing)) == ("gguf.nothing_to_export", "gguf.not_found")
    assert "job_id" in text_of(nothing)  # the agent's spelling, not the CLI's --job


# ---- issue 18: argument errors with a code and a fix in tool terms; compact status; ids; clean logs -------------

#: a CLI flag or command in an answer (an agent cannot pass `--column-map`; it passes column_map)
CLI_WORDS = re.compile(r"(?<![\w-])--[a-z][a-z-]+|\btuneforge (?:jobs|train|validate|plan|setup|gguf)\b")


def test_every_argument_error_comes_back_with_a_code_the_fields_and_a_fix_in_argument_terms():
    calls = [
        ("validate_dataset", {"source": str(DEMO), "method": "ppo"}, "method"),
        ("submit_training", {"config": {"dataset": {"path": str(DEMO)}}}, "config.model"),
        ("submit_training", {"model": "m", "dataset": str(DEMO), "backend": "cloud"}, "backend"),
        ("plan_training", {"model": "Qwen/Qwen3-0.6B", "method": "ppo"}, "method"),
        ("list_jobs", {"stage": "DONE"}, "stage"),
        ("job_logs", {"job_id": "tf-20260101-000000-abc123", "tail": 0}, "tail"),
        ("check_setup", {"online": "perhaps"}, "online"),
    ]

    async def body(session):
        return [await session.call_tool(tool, args) for tool, args, _ in calls]

    for (tool, args, field), result in zip(calls, in_memory(body)):
        text = text_of(result)
        assert result.is_error and code_of(result) == "tool.invalid_arguments", (tool, text)
        message, _, fix = text.partition("\nFix: ")
        assert field in message and fix and field.split(".")[0] in fix, (tool, text)
        assert not CLI_WORDS.search(text), (tool, text)
        assert "validation error" in text and tool in text  # as the SDK words them, so clients that match it still do
    method_fix = text_of(in_memory(lambda s: s.call_tool("validate_dataset", {"source": str(DEMO), "method": "ppo"})))
    assert all(m in method_fix for m in ("'sft'", "'dpo'", "'grpo'", "'kto'", "'reward'", "'auto'"))


def test_answers_name_tool_arguments_not_cli_flags(tmp_path: Path, tuneforge_home: Path, smollm2_dir: Path):
    renamed = tmp_path / "qa.jsonl"
    renamed.write_text("".join(json.dumps({"question": f"q{i}?", "response": f"a{i}"}) + "\n" for i in range(40)))
    failed = seed_finished_job(tuneforge_home, lines=3, stage="ERROR")
    JobStore().update(failed.job_id, message=(
        f"ValueError: no assistant turn (the training process exited with code 2; the full log: "
        f"`tuneforge jobs logs {failed.job_id} --raw`)"))

    async def body(session):
        return [
            await session.call_tool("validate_dataset", {"source": str(renamed), "method": "sft"}),
            await session.call_tool("plan_training", {"model": str(smollm2_dir), "backend": "local", "flavor": "a10g-large"}),
            await session.call_tool("submit_training", {"model": "Qwen/Qwen3-0.6B", "dataset": str(DEMO), "backend": "hf",
                                                        "confirmed": True}),
            await session.call_tool("job_status", {"job_id": failed.job_id}),
            await session.call_tool("list_jobs", {}),
            await session.call_tool("submit_training", {"config_path": str(tmp_path / "missing.yaml")}),
        ]

    results = in_memory(body)
    for result in results:
        assert not CLI_WORDS.search(text_of(result)), text_of(result)[:2000]
    report = results[0].structured_content
    assert any("column_map={" in r for r in report["methods"]["sft"]["reasons"]), report["methods"]["sft"]
    status = JobStatus.model_validate(results[3].structured_content)
    assert f"job_logs(job_id='{failed.job_id}', raw=true)" in status.message
    assert code_of(results[5]) == "config.file_not_found" and "config_path" in text_of(results[5])


def seed_two_step_job(home: Path, smollm2_dir: Path) -> Job:
    """A finished 2-step job as the template leaves one: the plan, a result with history and samples, a noisy log."""
    from tuneforge.planner import plan

    job = seed_finished_job(home, lines=0)
    log = []
    for step in (1, 2):
        log += [f"Map: {50 * step}%|#####     | {step}/2 [00:01<00:01]",
                "##tuneforge-event " + json.dumps({"type": "progress", "step": step, "total_steps": 2, "loss": 2.0 / step,
                                                   "learning_rate": 1e-4, "tokens_per_second": 900.0, "eta_seconds": 1.0})]
    log += [f"{{'loss': 1.{i}, 'grad_norm': 0.93, 'learning_rate': 0.0001, 'epoch': 0.{i}}} trainer line {i}" for i in range(150)]
    log += ["a long line " + "x" * 900]
    log += ["##tuneforge-event " + json.dumps({"type": "status", "message": "done"})]
    Path(job.job_dir, "job.log").write_text("\n".join(log) + "\n")
    result = {"base_model": str(smollm2_dir), "method": "sft", "train_loss": 1.4, "eval_loss_before": 2.2,
              "eval_loss_after": 1.9, "steps": 2, "tokens_trained": 4096, "runtime_seconds": 12.5,
              "data": {"rows": 40, "truncated": 0, "no_trainable": 3, "tokens": 5000},
              "warnings": ["3 of 40 training rows had nothing to train on and were dropped"],
              "log_history": [{"loss": 2.0 / s, "step": s, "learning_rate": 1e-4, "grad_norm": 1.0} for s in (1, 2)] * 40,
              "samples": [{"prompt": "p" * 200, "before": "b" * 300, "after": "a" * 300} for _ in range(4)]}
    return JobStore().update(job.job_id, outputs={"output_dir": str(home / "out"), "result": result},
                             progress={"step": 2, "total_steps": 2, "loss": 1.0, "tokens_per_second": 900.0},
                             plan=plan(str(smollm2_dir), dataset=str(DEMO), backend="local"))


def test_job_status_is_compact_by_default_and_detailed_on_request(tuneforge_home: Path, smollm2_dir: Path):
    job = seed_two_step_job(tuneforge_home, smollm2_dir)

    async def body(session):
        return (await session.call_tool("job_status", {"job_id": job.job_id}),
                await session.call_tool("job_status", {"job_id": job.job_id, "detail": True}),
                await session.call_tool("job_status", {"job_id": job.job_id[:-3], "raw": True, "log_tail": 3}))

    compact, detailed, raw = in_memory(body)
    assert not compact.is_error, text_of(compact)
    assert len(text_of(compact)) < 2000, len(text_of(compact))
    st = JobStatus.model_validate(compact.structured_content)
    assert st.progress["step"] == 2 and st.progress["loss"] == 1.0
    result = st.outputs["result"]
    assert result["eval_loss_after"] == 1.9 and result["warnings"] and result["data"]["no_trainable"] == 3
    assert "log_history" not in result and "samples" not in result and st.plan is None
    assert "detail=true" in st.outputs["more"]
    assert len(st.log_tail) == 3 and all("##tuneforge-event" not in line and "%|" not in line for line in st.log_tail)

    full = JobStatus.model_validate(detailed.structured_content)
    assert full.plan is not None and len(full.outputs["result"]["log_history"]) == 80 and len(full.log_tail) == 20
    raw_status = JobStatus.model_validate(raw.structured_content)
    assert raw_status.job_id == job.job_id and raw_status.log_tail[-1].startswith("##tuneforge-event")


def test_job_tools_take_an_id_prefix_logs_are_clean_unless_raw_and_cancel_of_an_ended_job_is_an_error(tuneforge_home: Path):
    job = seed_finished_job(tuneforge_home, lines=2)
    Path(job.job_dir, "job.log").write_text("start\n##tuneforge-event {\"type\": \"status\", \"message\": \"x\"}\n"
                                             "\x1b[31mred\x1b[0m\nTraceback (most recent call last):\n  File \"a.py\"\n"
                                             "KeyError: 'messages'\n")
    prefix = job.job_id[:-4]

    async def body(session):
        return (await session.call_tool("job_logs", {"job_id": prefix}),
                await session.call_tool("job_logs", {"job_id": prefix, "raw": True}),
                await session.call_tool("wait_for_job", {"job_id": prefix, "timeout_seconds": 5}),
                await session.call_tool("cancel_job", {"job_id": prefix}))

    clean, raw, waited, cancel = in_memory(body)
    page = JobLogs.model_validate(clean.structured_content)
    assert page.job_id == job.job_id and page.lines == ["start", "red", "KeyError: 'messages'"]
    assert JobLogs.model_validate(raw.structured_content).total_lines == 6
    assert JobWait.model_validate(waited.structured_content).job.job_id == job.job_id
    assert cancel.is_error and code_of(cancel) == "job.already_finished" and "already ended" in text_of(cancel)
    assert "job_status" in text_of(cancel) and not CLI_WORDS.search(text_of(cancel))
    assert JobStore().get(job.job_id).stage == "COMPLETED"
