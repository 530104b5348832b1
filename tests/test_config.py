"""The training config: unknown keys and hostile values are refused or stored inertly; templates never change."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from tuneforge import paths
from tuneforge.config import RunConfig, format_duration, parse_duration
from tuneforge.errors import ConfigError


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    p = tmp_path / "train.jsonl"
    p.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}) + "\n")
    return p


def base(data_file: Path, **changes) -> dict:
    cfg = {"model": "HuggingFaceTB/SmolLM2-135M-Instruct", "dataset": {"path": str(data_file)}}
    cfg.update(changes)
    return cfg


def test_a_minimal_config_fills_in_sane_defaults(data_file: Path):
    cfg = RunConfig.from_dict(base(data_file))
    assert cfg.method == "sft" and cfg.peft.kind == "lora" and cfg.assistant_only_loss
    assert cfg.dataset.path == str(data_file.resolve())


@pytest.mark.parametrize("key", ["env", "script", "command", "trust_remote_code"])
def test_unknown_top_level_keys_are_refused_by_name(data_file: Path, key: str):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(base(data_file, **{key: {"HF_TOKEN": "x"}}))
    assert f"{key}: unknown key" in err.value.message
    assert err.value.fix


def test_unknown_nested_keys_are_refused_with_their_path(data_file: Path):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(base(data_file, train={"learning_rate": 1e-4, "lr_warmup": 3}))
    assert "train.lr_warmup: unknown key" in err.value.message


@pytest.mark.parametrize(
    "changes, where",
    [
        ({"model": "--help"}, "model"),
        ({"model": "owner/name\nrm -rf /"}, "model"),
        ({"model": "../../etc/passwd-not-here"}, "model"),
        ({"model": "owner/../../name"}, "model"),
        ({"output_dir": "../../escape"}, "output_dir"),
        ({"output_dir": "-rf"}, "output_dir"),
        ({"push_to_hub": "me/model\"; import os #"}, "push_to_hub"),
        ({"push_to_hub": "just-a-name"}, "push_to_hub"),
        ({"trackio": {"project": "p; rm -rf"}}, "trackio.project"),
        ({"peft": {"target_modules": ["q_proj", "--all"]}}, "peft.target_modules"),
        ({"train": {"learning_rate": -1}}, "train.learning_rate"),
        ({"train": {"epochs": -2}}, "train.epochs"),
        ({"max_length": 0}, "max_length"),
    ],
)
def test_hostile_or_invalid_values_are_refused_naming_the_key(data_file: Path, changes: dict, where: str):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(base(data_file, **changes))
    assert where in err.value.message


def test_hostile_dataset_values_are_refused(data_file: Path):
    for dataset in ({"path": "-x"}, {"path": str(data_file), "split": "train\n"}, {"path": str(data_file), "column_map": {"prompt;": "q"}}):
        with pytest.raises(ConfigError):
            RunConfig.from_dict(base(data_file, dataset=dataset))


def test_free_text_is_stored_inertly_and_templates_are_never_modified(data_file: Path, tmp_path: Path):
    template = paths.template_path("sft")
    before = hashlib.sha256(template.read_bytes()).hexdigest()
    nasty = 'You are "helpful"\n\'\'\'); import os; os.system("echo pwned") #\n{{ config }} ${HF_TOKEN}'
    cfg = RunConfig.from_dict(base(data_file, system_prompt=nasty, eval_prompts=["-rf /", "line\nbreak"]))
    written = cfg.write(tmp_path / "config.json")
    again = RunConfig.load(written)
    assert again.system_prompt == nasty and again.eval_prompts == ["-rf /", "line\nbreak"]
    assert "env" not in json.loads(written.read_text())
    assert hashlib.sha256(template.read_bytes()).hexdigest() == before


def test_the_template_itself_refuses_a_config_with_an_env_block(tmp_path: Path, data_file: Path):
    cfg = json.loads(RunConfig.from_dict(base(data_file)).model_dump_json())
    cfg["env"] = {"HF_TOKEN": "stolen"}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg))
    import sys

    out = subprocess.run([sys.executable, str(paths.template_path("sft")), "--config", str(path)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "unknown config keys ['env']" in out.stderr


def test_yaml_and_json_syntax_errors_point_at_line_and_column(tmp_path: Path):
    bad_yaml = tmp_path / "c.yaml"
    bad_yaml.write_text("model: x\ndataset:\n  path: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        RunConfig.load(bad_yaml)
    assert "c.yaml:" in err.value.message and "invalid YAML" in err.value.message
    bad_json = tmp_path / "c.json"
    bad_json.write_text('{"model": "x",\n "dataset": }')
    with pytest.raises(ConfigError) as err:
        RunConfig.load(bad_json)
    assert "c.json:2:" in err.value.message


def test_durations_read_and_print_like_people_write_them():
    assert parse_duration("1h30m") == 5400
    assert parse_duration("45m") == 2700
    assert parse_duration("90") == 90
    assert format_duration(5400) == "1h30m"
    assert format_duration(20) == "1m"
    assert format_duration(7200) == "2h"
    with pytest.raises(ConfigError):
        parse_duration("soon")


def test_cli_train_rejects_bad_flags_without_a_traceback(tuneforge_cli, data_file: Path):
    out = subprocess.run([*tuneforge_cli, "train", "--model", "--evil", "--dataset", str(data_file), "--json"],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    out = subprocess.run([*tuneforge_cli, "train", "--model=-rf", "--dataset", str(data_file), "--json"], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    err = json.loads(out.stdout)
    assert "model" in err["error"] and err["fix"]
    out = subprocess.run([*tuneforge_cli, "train", "--dataset", str(data_file), "--json"], capture_output=True, text=True)
    assert out.returncode == 2 and "--model" in json.loads(out.stdout)["error"]


# ---- where a job may write -------------------------------------------------------------------------
@pytest.fixture
def strict_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Only the defaults: the directory the command started in (tmp_path/cwd) and $TUNEFORGE_HOME."""
    monkeypatch.delenv("TUNEFORGE_ALLOWED_ROOTS", raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_an_absolute_output_dir_outside_the_allowed_roots_is_refused(data_file: Path, strict_roots: Path, tmp_path: Path):
    outside = tmp_path / "elsewhere" / "out"
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(base(data_file, output_dir=str(outside)))
    assert err.value.code == "config.invalid"
    assert "output_dir" in err.value.message and "TUNEFORGE_ALLOWED_ROOTS" in err.value.message


def test_output_dirs_under_the_start_directory_home_or_listed_roots_are_accepted(
        data_file: Path, strict_roots: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert RunConfig.from_dict(base(data_file, output_dir=str(strict_roots / "runs" / "a"))).output_dir
    assert RunConfig.from_dict(base(data_file, output_dir=str(paths.home() / "exports")))
    assert RunConfig.from_dict(base(data_file, output_dir="relative/inside/the/job")).output_dir == "relative/inside/the/job"
    extra = tmp_path / "team-share"
    monkeypatch.setenv("TUNEFORGE_ALLOWED_ROOTS", f"/nonexistent-root{':'}{extra}")
    assert RunConfig.from_dict(base(data_file, output_dir=str(extra / "run1")))


def test_a_symlink_inside_an_allowed_root_that_points_outside_is_refused(data_file: Path, strict_roots: Path, tmp_path: Path):
    target = tmp_path / "outside-target"
    target.mkdir()
    (strict_roots / "link").symlink_to(target)
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(base(data_file, output_dir=str(strict_roots / "link" / "out")))
    assert str(target) in err.value.message


def test_a_stored_config_is_read_back_even_when_its_paths_are_gone(data_file: Path, strict_roots: Path):
    from tuneforge.config.schema import STORED

    cfg = RunConfig.from_dict(base(data_file, output_dir=str(strict_roots / "out")))
    data_file.unlink()
    again = RunConfig.model_validate_json(cfg.model_dump_json(), context=STORED)
    assert again == cfg
    with pytest.raises(ConfigError):
        RunConfig.from_dict(cfg.model_dump())  # a new submission checks the paths again


def test_a_value_that_looks_like_a_path_is_never_taken_for_a_hub_id(tmp_path: Path):
    from tuneforge.config.schema import looks_like_path

    for path_like in ("mesages.jsonl", "./SmolLM2-135M", "../m", "/abs/m", "~/m", "a/b/c", "data\\train.csv", "x.parquet"):
        assert looks_like_path(path_like), path_like
    for hub_id in ("HuggingFaceTB/SmolLM2-135M", "Qwen/Qwen2.5-0.5B-Instruct", "gpt2", "openai/gsm8k",
                   "TinyLlama/TinyLlama-1.1B-Chat-v1.0"):
        assert not looks_like_path(hub_id), hub_id
    with pytest.raises(ConfigError) as exc:
        RunConfig.from_dict({"model": "Qwen/Qwen3-0.6B", "dataset": {"path": "mesages.jsonl"}})
    assert exc.value.code == "config.path_not_found" and exc.value.details == {"field": "dataset.path",
                                                                              "path": "mesages.jsonl"}
    with pytest.raises(ConfigError) as exc:
        RunConfig.from_dict({"model": "Qwen/Qwen3-0.6B", "dataset": {"path": "owner/name"}, "method": "grpo",
                             "method_args": {"reward_functions": ["accuracy", "bleu"]}})
    assert exc.value.code == "config.unknown_reward" and "length" in exc.value.fix
    with pytest.raises(ConfigError) as exc:  # the comma form pasted into a config: refused, not a column name
        RunConfig.from_dict({"model": "Qwen/Qwen3-0.6B",
                             "dataset": {"path": "owner/name", "column_map": {"prompt": "question,chosen=good"}}})
    assert "column_map" in exc.value.message
    auto = RunConfig.from_dict({"model": "Qwen/Qwen3-0.6B", "dataset": {"path": "owner/name"}, "peft": {"kind": "auto"}})
    assert auto.peft.kind == "auto" and auto.method_args.reward_functions == []
