"""The CLI's config merge and job commands, in process through `tuneforge.cli.main(argv)`.

`train` and the MCP tool `submit_training` build their config with the same merge
(tuneforge.config.overrides): layers in order, flat overrides by dotted field, one validated RunConfig.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest
from cli_main import run_main
from tuneforge.cli import build_parser
from tuneforge.cli.train import config_from_args
from tuneforge.config import DatasetSpec, RunConfig
from tuneforge.config.overrides import merge_config, set_field
from tuneforge.errors import ConfigError
from tuneforge.records import Job, JobStore

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "server" / "tuneforge" / "data" / "demo" / "train.jsonl"
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_flags_override_the_config_file_field_by_field(tmp_path: Path):
    config = tmp_path / "run.yaml"
    config.write_text(textwrap.dedent(f"""\
        model: {MODEL}
        dataset: {DEMO}
        method: dpo
        train: {{learning_rate: 0.0001, epochs: 3}}
        peft: {{r: 8}}
    """))
    args = build_parser().parse_args(["train", "--config", str(config), "--method", "sft", "--epochs", "2",
                                      "--lora-alpha", "64", "--column-map", "prompt=question", "--timeout", "45m"])
    cfg = config_from_args(args)
    assert cfg.method == "sft" and cfg.model == MODEL
    assert cfg.dataset.path == str(DEMO) and cfg.dataset.column_map == {"prompt": "question"}
    assert (cfg.train.learning_rate, cfg.train.epochs) == (0.0001, 2)  # the file's, then the flag's
    assert (cfg.peft.r, cfg.peft.alpha) == (8, 64)
    assert cfg.timeout_seconds == 45 * 60


def test_one_merge_layers_in_order_and_overrides_win():
    file_layer = {"model": MODEL, "dataset": str(DEMO), "train": {"epochs": 3, "learning_rate": 0.001}}
    partial = {"train": {"epochs": 2}, "dataset": {"column_map": {"prompt": "q"}}}
    cfg = merge_config(file_layer, None, partial, source="test",
                       overrides={"train.max_steps": 5, "train.learning_rate": None, "dataset.column_map": {"chosen": "c"}})
    assert isinstance(cfg, RunConfig)
    assert (cfg.train.epochs, cfg.train.learning_rate, cfg.train.max_steps) == (2, 0.001, 5)
    assert cfg.dataset.path == str(DEMO) and cfg.dataset.column_map == {"prompt": "q", "chosen": "c"}


def test_merge_errors_carry_codes_and_name_the_field():
    with pytest.raises(ConfigError) as missing:
        merge_config({"dataset": str(DEMO)}, source="test", required={"model": "--model", "dataset": "--dataset"})
    assert missing.value.code == "config.missing_field" and "--model" in missing.value.message
    assert missing.value.details["fields"] == ["model"]
    with pytest.raises(ConfigError) as bad:
        merge_config({"model": MODEL, "dataset": str(DEMO), "max_length": 8}, source="run.yaml")
    assert bad.value.code == "config.invalid" and "max_length" in bad.value.message and "run.yaml" in bad.value.message
    with pytest.raises(ConfigError) as flat:
        set_field({"train": 3}, "train.epochs", 2)
    assert flat.value.code == "config.not_a_mapping" and flat.value.details["field"] == "train"


def test_train_errors_come_back_as_json_with_their_code(capsys: pytest.CaptureFixture[str]):
    done = run_main(capsys, "train", "--dataset", str(DEMO), "--json")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    err = json.loads(done.stdout)
    assert set(err) >= {"error", "code", "fix"} and err["code"] == "config.missing_field" and "--model" in err["error"]
    done = run_main(capsys, "train", "--model", MODEL, "--dataset", str(DEMO), "--column-map", "prompt", "--json")
    assert done.returncode == 2 and json.loads(done.stdout)["code"] == "config.bad_column_map"
    done = run_main(capsys, "train", "--model", MODEL, "--dataset", str(DEMO), "--backend", "hf", "--json")
    assert done.returncode == 2 and json.loads(done.stdout)["code"] == "config.push_target_required"
    assert "--push-to" in json.loads(done.stdout)["fix"]


def seed_job(lines: int, stage: str = "COMPLETED") -> Job:
    from tuneforge import paths

    job_id = "tf-20260101-000000-cli000"
    job_dir = paths.jobs_dir() / job_id
    job_dir.mkdir(parents=True)
    (job_dir / "job.log").write_text("".join(f"line {i}\n" for i in range(1, lines + 1)))
    now = time.time()
    return JobStore().create(Job(
        job_id=job_id, backend="local", kind="train", method="sft", stage=stage, message="done", job_dir=str(job_dir),
        config=RunConfig(model=MODEL, dataset=DatasetSpec(path=str(DEMO))), created_at=now - 60, started_at=now - 50,
        finished_at=now - 5, progress={"step": 4, "total_steps": 4, "loss": 0.5}))


def test_jobs_commands_follow_wait_and_map_a_missing_job_to_its_code(capsys: pytest.CaptureFixture[str]):
    job = seed_job(lines=30)
    follow = run_main(capsys, "jobs", "logs", job.job_id, "--follow")
    assert follow.returncode == 0 and follow.stdout.splitlines() == [f"line {i}" for i in range(1, 31)]
    waited = run_main(capsys, "jobs", "wait", job.job_id, "--json")
    assert waited.returncode == 0 and json.loads(waited.stdout)["stage"] == "COMPLETED"
    listed = run_main(capsys, "jobs", "list", "--json")
    assert [j["job_id"] for j in json.loads(listed.stdout)["jobs"]] == [job.job_id]
    missing = run_main(capsys, "jobs", "status", "tf-20990101-000000-ffffff", "--json")
    assert missing.returncode == 2 and json.loads(missing.stdout)["code"] == "job.not_found"
    people = run_main(capsys, "jobs", "status", "tf-20990101-000000-ffffff")
    assert people.returncode == 2 and "Fix:" in people.stderr and "Traceback" not in people.stderr
