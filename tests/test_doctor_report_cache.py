"""A validation report is cached by the files' identity: a second validate of unchanged files does not
read them again (planning and submitting after validating read the data once), and any change to the
files or the arguments reads them again."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from tuneforge.doctor import report_cache, sources, validate
from tuneforge.doctor.sources import open_source
from tuneforge.errors import TuneforgeError

ROW = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def write_old(path: Path, rows: list[dict], age_s: float = 60) -> Path:
    """Rows as JSON Lines, with a modification time AGE_S seconds ago (older than the racy window)."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    set_age(path, age_s)
    return path


def set_age(path: Path, age_s: float) -> None:
    t = time.time_ns() - int(age_s * 1e9)
    os.utime(path, ns=(t, t))


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The JSON files the doctor opens for reading rows (each pass over a file counts once)."""
    calls: list[str] = []
    real = sources.read_json_file

    def counting(path, name, keep=None):
        calls.append(str(path))
        return real(path, name, keep)

    monkeypatch.setattr(sources, "read_json_file", counting)
    return calls


def test_a_second_validation_of_an_unchanged_file_does_not_read_it(tmp_path: Path, reads: list[str]) -> None:
    data = write_old(tmp_path / "d.jsonl", [ROW] * 3)
    first = validate(str(data))
    assert len(reads) == 1
    second = validate(str(data))
    assert len(reads) == 1  # from the cache
    assert second.model_dump() == first.model_dump()
    assert list(report_cache.reports_dir().glob("*.json")) and not list(report_cache.reports_dir().glob("*.tmp"))


def test_touching_the_file_or_changing_an_argument_reads_it_again(tmp_path: Path, reads: list[str]) -> None:
    data = write_old(tmp_path / "d.jsonl", [ROW] * 3)
    validate(str(data))
    set_age(data, 30)  # same content, a new modification time
    validate(str(data))
    assert len(reads) == 2
    validate(str(data))
    assert len(reads) == 2
    validate(str(data), method="sft")
    validate(str(data), max_length=512)
    assert len(reads) == 4
    validate(str(data), max_length=1024)  # the default, as planning passes it
    assert len(reads) == 4
    validate(str(data), cache=False)
    assert len(reads) == 5


def test_a_rewritten_file_gives_the_new_report(tmp_path: Path, reads: list[str]) -> None:
    data = write_old(tmp_path / "d.jsonl", [ROW] * 3)
    assert validate(str(data)).rows == 3
    write_old(data, [ROW] * 5, age_s=20)
    assert validate(str(data)).rows == 5
    other = write_old(tmp_path / "e.jsonl", [ROW] * 3)
    assert validate(str(other)).rows == 3 and len(reads) == 3  # another file is another entry


def test_a_corrupt_cache_file_is_ignored_and_replaced(tmp_path: Path, reads: list[str]) -> None:
    data = write_old(tmp_path / "d.jsonl", [ROW] * 3)
    first = validate(str(data))
    [cached] = report_cache.reports_dir().glob("*.json")
    cached.write_text('{"source": "d.jsonl", "rows": ')  # a torn write from another tool
    again = validate(str(data))
    assert len(reads) == 2 and again.model_dump() == first.model_dump()
    assert json.loads(cached.read_text())["rows"] == 3
    validate(str(data))
    assert len(reads) == 2


def test_a_file_modified_just_now_is_not_cached(tmp_path: Path, reads: list[str]) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(ROW) + "\n")  # a same-size rewrite within one timestamp tick could go unseen
    validate(str(data))
    validate(str(data))
    assert len(reads) == 2 and not list(report_cache.reports_dir().glob("*.json"))


def test_a_directory_and_an_eval_set_are_part_of_the_key(tmp_path: Path, reads: list[str]) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    write_old(folder / "train-0.jsonl", [ROW] * 2)
    evals = write_old(tmp_path / "eval.jsonl", [ROW])
    assert validate(str(folder), eval_source=str(evals)).rows == 2
    validate(str(folder), eval_source=str(evals))
    assert len(reads) == 2  # train file and eval file, once
    write_old(folder / "train-1.jsonl", [ROW] * 4)
    assert validate(str(folder), eval_source=str(evals)).rows == 6
    assert len(reads) == 5
    set_age(evals, 10)
    validate(str(folder), eval_source=str(evals))
    assert len(reads) == 8  # both train files and the eval file again


def test_the_report_names_the_source_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_old(tmp_path / "d.jsonl", [ROW] * 3)
    validate(str(data))
    monkeypatch.chdir(tmp_path)
    assert validate("d.jsonl").source == "d.jsonl"


def test_hub_sources_are_never_cached() -> None:
    hub = open_source("someone/some-dataset")
    assert report_cache.cache_slot(hub, None, method="auto", model=None, max_length=None) is None
    with pytest.raises(TuneforgeError) as info:  # offline in tests: still refused, not served from a cache
        validate("someone/some-dataset")
    assert info.value.code == "dataset.hub_offline"


def test_argument_errors_carry_codes(tmp_path: Path) -> None:
    data = write_old(tmp_path / "d.jsonl", [ROW])
    with pytest.raises(TuneforgeError) as info:
        validate(str(data), method="ppo")
    assert info.value.code == "dataset.unknown_method"
    with pytest.raises(TuneforgeError) as info:
        validate(str(data), max_length=4)
    assert info.value.code == "dataset.max_length_out_of_range"


def test_with_a_model_the_tokenizer_files_are_part_of_the_key(tmp_path: Path, smollm2_dir: Path,
                                                               reads: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    model = tmp_path / "model"
    model.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json", "chat_template.jinja"):
        shutil.copy(smollm2_dir / name, model / name)
    data = write_old(tmp_path / "d.jsonl", [ROW] * 4)
    first = validate(str(data), model=str(model))
    measured = len(reads)
    assert first.token_stats is not None and not first.token_stats.estimated
    monkeypatch.chdir(tmp_path)
    again = validate("d.jsonl", model="./model")  # the same files under other names
    assert len(reads) == measured
    assert again.token_stats.tokenizer == "./model"
    assert again.token_stats.model_dump(exclude={"tokenizer"}) == first.token_stats.model_dump(exclude={"tokenizer"})
    set_age(model / "tokenizer_config.json", 5)  # the tokenizer changed: measure again
    validate("d.jsonl", model="./model")
    assert len(reads) == 2 * measured
