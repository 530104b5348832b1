"""The diagnosis of a failed run (issue 13 item 2): recorded logs of every kind in the libraries' own words,
the choice between kinds, the retry's config change from the run's config, scrubbing, and the faces
(`tuneforge diagnose`, `jobs status`, MCP diagnose_log and job_status, api.diagnose).

The logs under tests/data/logs/ are named KIND__what.log: each must be diagnosed as KIND.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_main import run_main
from mcp_client import in_memory, text_of
from tuneforge import api
from tuneforge.config import RunConfig
from tuneforge.diagnosis import diagnose_lines, read_log
from tuneforge.diagnosis.fixes import TIMEOUT_MAX
from tuneforge.jobs.service import JobService
from tuneforge.records import Job, JobStore
from tuneforge.reports.diagnosis import KINDS

LOGS = Path(__file__).parent / "data" / "logs"
FIXTURES = sorted(LOGS.glob("*.log"))


def config(**train) -> RunConfig:
    return RunConfig(model="owner/model", dataset={"path": "owner/data"}, train=train)


def applied(cfg: RunConfig, retry_with: dict) -> RunConfig:
    """The config with retry_with's dotted fields set: every key must name a RunConfig field."""
    data = cfg.model_dump()
    for dotted, value in retry_with.items():
        *parents, leaf = dotted.split(".")
        node = data
        for part in parents:
            node = node[part]
        assert leaf in node, f"{dotted} is not a RunConfig field"
        node[leaf] = value
    return RunConfig.model_validate(data, context={"stored": True})


def test_every_kind_but_unknown_has_a_recorded_log():
    kinds = {p.name.split("__")[0] for p in FIXTURES}
    assert kinds == set(KINDS), set(KINDS) ^ kinds


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_each_recorded_log_is_diagnosed_as_its_kind_with_its_own_lines_as_evidence(path: Path):
    lines = read_log(path)
    d = diagnose_lines(lines, config(per_device_batch_size=4, gradient_accumulation_steps=2))
    assert d.kind == path.name.split("__")[0], d
    assert d.fix and d.evidence and len(d.evidence) <= 5
    text = path.read_text()
    for line in d.evidence:  # evidence is the log's own lines (or, for losses, the step they were logged at)
        assert line.removesuffix("…") in text or line.startswith("step "), line  # long lines are cut


def test_the_most_specific_root_cause_wins():
    oom_then_nccl = read_log(LOGS / "out_of_memory__trl_sft_cuda_then_nccl.log")
    d = diagnose_lines(oom_then_nccl)
    assert d.kind == "out_of_memory" and "CUDA out of memory" in d.evidence[0]
    gated = diagnose_lines(read_log(LOGS / "gated_model__transformers_from_pretrained.log"))
    assert gated.kind == "gated_model"  # a 403 on a gated repo is not a token problem
    # a missing repo asked for without a token: the Hub's "Invalid username or password" is not an auth failure
    assert diagnose_lines(read_log(LOGS / "not_found__model_id_typo.log")).kind == "not_found"
    # NaN losses, then a failed push: the run diverged first
    nan_then_network = ["{'loss': nan, 'grad_norm': nan, 'epoch': 0.5}", "requests.exceptions.ConnectionError: Max retries exceeded"]
    assert diagnose_lines(nan_then_network).kind == "divergence"
    assert diagnose_lines(["{'loss': 1.2, 'epoch': 0.5}", "ValueError: x"]).kind == "unknown"


def test_an_exploding_loss_is_divergence_and_a_falling_one_is_not():
    rising = [f"{{'loss': {v}, 'epoch': 0.1}}" for v in (2.0, 1.8, 30.0, 41.0, 55.0)]
    assert diagnose_lines(rising).kind == "divergence"
    falling = [f"{{'loss': {v}, 'epoch': 0.1}}" for v in (2.0, 1.8, 1.5, 1.2, 1.1)]
    assert diagnose_lines(falling).kind == "unknown"


def test_out_of_memory_climbs_the_ladder_batch_then_checkpointing_then_qlora_or_max_length():
    gpu = ["torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."]
    host = ["RuntimeError: DefaultCPUAllocator: can't allocate memory: you tried to allocate 1048576000 bytes."]
    cfg = config(per_device_batch_size=8, gradient_accumulation_steps=2)
    assert diagnose_lines(gpu, cfg).retry_with == {"train.per_device_batch_size": 4, "train.gradient_accumulation_steps": 4}
    odd = config(per_device_batch_size=3, gradient_accumulation_steps=2)
    assert diagnose_lines(gpu, odd).retry_with == {"train.per_device_batch_size": 1, "train.gradient_accumulation_steps": 6}
    one = config(per_device_batch_size=1)
    # on a GPU gradient checkpointing is on by default (None), so the next step is QLoRA; on CPU it is off
    assert diagnose_lines(gpu, one).retry_with == {"peft.kind": "qlora"}
    assert diagnose_lines(host, one).retry_with == {"train.gradient_checkpointing": True}
    checkpointed = config(per_device_batch_size=1, gradient_checkpointing=True)
    assert diagnose_lines(host, checkpointed).retry_with == {"max_length": 512}
    qlora = checkpointed.model_copy(update={"peft": checkpointed.peft.model_copy(update={"kind": "qlora"})})
    last = diagnose_lines(gpu, qlora)
    assert last.retry_with == {} and "more memory" in last.fix
    kto = config(per_device_batch_size=2).model_copy(update={"method": "kto"})
    assert diagnose_lines(host, kto).retry_with == {"train.gradient_checkpointing": True}  # KTO needs 2 per batch
    for cfg_, lines in ((cfg, gpu), (odd, gpu), (one, gpu), (one, host), (checkpointed, host)):
        applied(cfg_, diagnose_lines(lines, cfg_).retry_with)
    assert diagnose_lines(gpu).retry_with == {} and "--batch-size" in diagnose_lines(gpu).fix  # no config: words only


def test_divergence_timeout_and_hardware_changes_come_from_the_config():
    cfg = config(learning_rate=3e-4).model_copy(update={"timeout_seconds": 3600})
    nan = read_log(LOGS / "divergence__tuneforge_watchdog.log")
    d = diagnose_lines(nan, cfg)
    assert d.retry_with == {"train.learning_rate": pytest.approx(3e-5)} and "watchdog" in d.fix
    assert diagnose_lines(["timeout: the job ran longer than its limit of 1h (3600 s) and was stopped"], cfg).retry_with == \
        {"timeout_seconds": 7200}
    at_max = cfg.model_copy(update={"timeout_seconds": TIMEOUT_MAX})
    assert diagnose_lines(["timeout: the job ran longer than its limit"], at_max).retry_with == {}
    no_gpu = diagnose_lines(read_log(LOGS / "unsupported_hardware__4bit_without_gpu.log"), cfg)
    assert no_gpu.retry_with == {"peft.kind": "lora"}
    bf16 = diagnose_lines(read_log(LOGS / "unsupported_hardware__bf16_on_t4.log"), cfg)
    assert bf16.retry_with == {"train.precision": "fp32"}
    t4 = diagnose_lines(["RuntimeError: Bfloat16 is only supported on GPUs with compute capability of at least 8.0. "
                         "Your Tesla T4 GPU has compute capability 7.5"], cfg)
    assert t4.kind == "unsupported_hardware" and t4.retry_with == {"train.precision": "fp16"}
    for lines in (nan, ["timeout: x"]):
        applied(cfg, diagnose_lines(lines, cfg).retry_with)


def test_the_fix_names_what_is_gated_or_missing():
    gated = diagnose_lines(read_log(LOGS / "gated_model__transformers_from_pretrained.log"))
    assert "open https://huggingface.co/meta-llama/Llama-3.2-1B," in gated.fix
    assert "Here: Qwen/Qwen3-0.6B-Instructt." in diagnose_lines(read_log(LOGS / "not_found__model_id_typo.log")).fix
    assert "Here: /app/data/chats.jsonl." in diagnose_lines(read_log(LOGS / "not_found__dataset_file.log")).fix


def test_variants_of_a_kind_get_their_own_fix():
    cfg = config()
    chats_only = diagnose_lines(read_log(LOGS / "dataset_format__trl_assistant_only_loss.log"), cfg)
    assert chats_only.retry_with == {"assistant_only_loss": False}
    applied(cfg, chats_only.retry_with)
    torn = diagnose_lines(read_log(LOGS / "network__incomplete_safetensors_download.log"), cfg)
    assert torn.kind == "network" and "hf cache delete" in torn.fix
    module = diagnose_lines(read_log(LOGS / "missing_dependency__no_module.log"), cfg)
    assert "`peft`" in module.fix
    disk = diagnose_lines(read_log(LOGS / "disk_full__checkpoint_save.log"), cfg)
    assert disk.retry_with == {"train.save_total_limit": 1}


@pytest.mark.parametrize("kind, command", [("auth", "hf auth login"), ("gated_model", "accept the license"),
                                           ("dataset_format", "tuneforge validate"), ("payment_required", "billing"),
                                           ("not_found", "check the id")])
def test_kinds_a_retry_cannot_fix_change_nothing_and_name_what_helps(kind: str, command: str):
    [path, *_] = [p for p in FIXTURES if p.name.startswith(kind + "__")]
    d = diagnose_lines(read_log(path), config())
    assert d.kind == kind and d.retry_with == {} and command in d.fix


def test_evidence_is_clean_and_never_holds_a_secret(monkeypatch: pytest.MonkeyPatch):
    secret = "hf_" + "S3cr3tT0kenValue" * 3
    monkeypatch.setenv("HF_TOKEN", secret)
    other = "hf_" + "a1B2c3D4" * 5  # a token-shaped word that is not this machine's
    lines = [f"\x1b[31mhuggingface_hub.errors.HfHubHTTPError: Invalid user token. {secret}\x1b[0m",
             f"ConnectionError: https://user:pa55word@proxy.example:8080 token={other}"]
    d = diagnose_lines(lines)
    assert d.kind == "auth"
    dumped = json.dumps(d.model_dump())
    assert secret not in dumped and other not in dumped and "\x1b" not in dumped and "pa55word" not in dumped
    assert d.evidence == ["huggingface_hub.errors.HfHubHTTPError: Invalid user token. hf_***"]


def test_the_cli_answers_exactly_the_four_keys_and_exits_by_whether_it_classified(capsys, tmp_path: Path):
    r = run_main(capsys, "diagnose", str(LOGS / "rate_limited__hub_429.log"), "--json")
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert set(answer) == {"kind", "evidence", "fix", "retry_with"} and answer["kind"] == "rate_limited"
    unknown = run_main(capsys, "diagnose", str(LOGS / "unknown__plain_value_error.log"), "--json")
    assert unknown.returncode == 1 and json.loads(unknown.stdout)["kind"] == "unknown"
    people = run_main(capsys, "diagnose", str(LOGS / "out_of_memory__host_cpu_allocator.log"))
    assert people.returncode == 0 and "kind: out_of_memory" in people.stdout and "fix:" in people.stdout
    missing = run_main(capsys, "diagnose", str(tmp_path / "nope.log"), "--json")
    assert missing.returncode == 2 and json.loads(missing.stdout)["code"] == "diagnose.log_not_found"
    folder = run_main(capsys, "diagnose", str(tmp_path), "--json")
    assert folder.returncode == 2 and json.loads(folder.stdout)["code"] == "diagnose.log_is_folder"


def test_the_cli_computes_retry_with_from_a_config_file(capsys, tmp_path: Path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model: owner/model\ndataset: {path: /gone/data.jsonl}\ntrain: {per_device_batch_size: 8}\n")
    r = run_main(capsys, "diagnose", str(LOGS / "out_of_memory__trl_sft_cuda_then_nccl.log"), "--json", "--config", str(cfg))
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["retry_with"] == {"train.per_device_batch_size": 4, "train.gradient_accumulation_steps": 2}
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: owner/model\ndataset: {path: x}\ntrain: {per_device_batch_size: 0}\n")
    r = run_main(capsys, "diagnose", str(LOGS / "out_of_memory__host_cpu_allocator.log"), "--json", "--config", str(bad))
    assert r.returncode == 2 and json.loads(r.stdout)["code"].startswith("config.")


def test_a_big_log_is_read_from_its_end(tmp_path: Path):
    log = tmp_path / "big.log"
    with log.open("w") as fh:
        fh.write("ModuleNotFoundError: No module named 'early'\n")
        fh.write(("x" * 99 + "\n") * 100_000)  # 10 MB of noise
        fh.write("torch.OutOfMemoryError: CUDA out of memory.\n")
    lines = read_log(log)
    assert len(lines) < 45_000 and lines[-1].startswith("torch.OutOfMemoryError")
    assert api.diagnose(str(log)).kind == "out_of_memory"


def failed_job(home: Path, log: str, message: str, **fields) -> Job:
    job_dir = home / "jobs" / "tf-diag"
    job_dir.mkdir(parents=True)
    (job_dir / "job.log").write_text(log)
    job = Job(**{"job_id": "tf-diag", "backend": "local", "kind": "train", "stage": "ERROR", "message": message,
                 "job_dir": str(job_dir), "created_at": time.time(), "started_at": time.time() - 5,
                 "finished_at": time.time(), "config": config(), **fields})
    JobStore().create(job)
    return job


def test_an_error_job_gets_its_diagnosis_once_and_every_face_shows_it(tuneforge_home: Path, capsys):
    failed_job(tuneforge_home, (LOGS / "out_of_memory__trl_sft_cuda_then_nccl.log").read_text(),
               "torch.OutOfMemoryError: CUDA out of memory. (the training process exited with code 1)")
    status = JobService().status("tf-diag")
    assert status.diagnosis is not None and status.diagnosis.kind == "out_of_memory"
    assert status.diagnosis.retry_with == {"train.per_device_batch_size": 2, "train.gradient_accumulation_steps": 2}
    stored = JobStore().get("tf-diag").diagnosis
    assert stored == status.diagnosis
    (Path(JobStore().get("tf-diag").job_dir) / "job.log").write_text("ModuleNotFoundError: No module named 'x'\n")
    assert JobService().status("tf-diag").diagnosis.kind == "out_of_memory"  # computed once, kept
    assert api.status("tf-diag").diagnosis.kind == "out_of_memory"

    cli = json.loads(run_main(capsys, "jobs", "status", "tf-diag", "--json").stdout)
    assert cli["diagnosis"]["kind"] == "out_of_memory" and cli["diagnosis"]["evidence"]
    people = run_main(capsys, "jobs", "status", "tf-diag").stdout
    assert "diagnosis: out_of_memory" in people and "tuneforge jobs retry tf-diag --apply-fix" in people

    answer = in_memory(lambda c: c.call_tool("job_status", {"job_id": "tf-diag"}))
    assert not answer.is_error
    mcp = answer.structured_content["diagnosis"]
    assert mcp["kind"] == "out_of_memory" and mcp["retry_with"]
    assert "batch_size" in mcp["fix"] or "batch" in mcp["fix"]


def test_the_runners_own_verdicts_in_the_message_count(tuneforge_home: Path):
    failed_job(tuneforge_home, "{'loss': 1.5, 'epoch': 0.2}\n",
               "the training process was killed by SIGKILL (often: out of memory); the full log: `tuneforge jobs logs tf-diag --raw`")
    d = JobService().status("tf-diag").diagnosis
    assert d.kind == "out_of_memory" and any("SIGKILL" in line for line in d.evidence)


@pytest.mark.parametrize("fields", [{"kind": "gguf"}, {"stage": "COMPLETED"}, {"stage": "CANCELED"}])
def test_only_a_failed_training_job_gets_a_diagnosis(tuneforge_home: Path, fields: dict):
    failed_job(tuneforge_home, "torch.OutOfMemoryError: CUDA out of memory.\n", "failed", **fields)
    assert JobService().status("tf-diag").diagnosis is None


def test_mcp_diagnose_log_answers_the_diagnosis_in_agent_words(tmp_path: Path):
    async def body(client):
        ok = await client.call_tool("diagnose_log", {"path": str(LOGS / "dataset_format__missing_column_map.log")})
        missing = await client.call_tool("diagnose_log", {"path": str(tmp_path / "none.log")})
        return ok, missing

    ok, missing = in_memory(body)
    assert not ok.is_error and ok.structured_content["kind"] == "dataset_format"
    assert "validate_dataset" in ok.structured_content["fix"] and "--column-map" not in ok.structured_content["fix"]
    assert missing.is_error and "[diagnose.log_not_found]" in text_of(missing)


def test_an_unreadable_log_gives_a_diagnosis_from_the_record_and_is_read_again_later(tuneforge_home: Path):
    failed_job(tuneforge_home, "", "timeout: the job ran longer than its limit of 1h (3600 s) and Hugging Face stopped it")
    service = JobService()

    class LogServiceDown:  # a cloud log stream that does not answer
        name = "local"

        def logs(self, job, tail=None):
            raise ConnectionError("the log service did not answer")

    service._backends["local"] = LogServiceDown()
    job = service.refresh("tf-diag")
    assert job.diagnosis is not None and job.diagnosis.kind == "timeout"
    assert job.diagnosis.retry_with == {"timeout_seconds": 2 * 6 * 3600}  # the config's limit, doubled
    assert JobStore().get("tf-diag").diagnosis is None  # not kept: the next read has the whole log
    assert JobService().refresh("tf-diag").diagnosis.kind == "timeout"
    assert JobStore().get("tf-diag").diagnosis is not None


def test_a_warning_counts_only_when_no_other_line_says_anything():
    harmless = ["/usr/lib/python3/site-packages/x.py:12: UserWarning: No module named 'flash_attn'; using sdpa",
                "W1201 10:00:00.000 12 api.py:110] Out of memory: Killed process 77 (a sibling job)",
                "WARNING: Not enough space left: No space left on device for the cache copy"]
    # the error that stopped the run wins over warnings of kinds that would otherwise rank above it
    assert diagnose_lines([*harmless, "pyarrow.lib.ArrowInvalid: JSON parse error: Invalid value. in row 3"]).kind == \
        "dataset_format"
    assert diagnose_lines(harmless[:1]).kind == "missing_dependency"  # nothing else to go on
