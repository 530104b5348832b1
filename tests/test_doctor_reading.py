"""Every row of every supported source is read, and every unreadable line is named (1-based), without
a traceback for any input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tuneforge.doctor import validate
from tuneforge.errors import TuneforgeError

GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def line(i: int) -> str:
    return json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]})


def test_bad_json_lines_are_listed_by_line_number_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join([line(1), "{not json", line(3), "", line(5), '{"messages": [}', line(7)]) + "\n")
    report = validate(str(path))
    assert report.rows == 4
    assert [e.line for e in report.errors] == [2, 6]
    assert report.error_count == 2
    assert all("invalid JSON" in e.message for e in report.errors)
    assert report.exit_code == 2 and not report.ready


def test_unreadable_lines_are_capped_in_the_list_but_all_counted(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("".join("garbage\n" if i % 2 else line(i) + "\n" for i in range(300)))
    report = validate(str(path))
    assert report.rows == 150 and report.error_count == 150
    assert len(report.errors) == 50
    assert report.errors[0].line == 2 and report.errors[-1].line == 100


def test_json_scalars_and_arrays_instead_of_objects_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(["1", '"text"', "null", "[1, 2]", "true", line(6)]) + "\n")
    report = validate(str(path))
    assert report.rows == 1
    assert [(e.line, e.message.split(",")[0]) for e in report.errors] == [
        (1, "a JSON number"), (2, "a JSON string"), (3, "a JSON null"), (4, "a JSON array"), (5, "a JSON boolean")]


def test_a_truncated_last_line_is_called_truncated(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(line(1) + "\n" + line(2) + "\n" + line(3)[:25])
    report = validate(str(path))
    assert report.rows == 2
    assert report.errors[0].line == 3 and "truncated" in report.errors[0].message


def test_lines_in_another_encoding_are_reported_and_the_rest_is_read(tmp_path: Path) -> None:
    latin1 = json.dumps({"text": "café"}, ensure_ascii=False).encode("latin-1")
    (tmp_path / "d.jsonl").write_bytes(b"\n".join([line(1).encode(), latin1, line(3).encode(), b"\x93smart quotes\x94 \xff"]) + b"\n")
    report = validate(str(tmp_path / "d.jsonl"))
    assert report.rows == 2
    assert [e.line for e in report.errors] == [2, 4]
    assert "UTF-8" in report.errors[0].message and "Latin-1" in report.errors[0].message


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_bytes(b"\xef\xbb\xbf" + (line(1) + "\n" + line(2) + "\n").encode())
    report = validate(str(tmp_path / "d.jsonl"))
    assert report.rows == 2 and report.error_count == 0


def test_a_json_array_is_streamed_with_line_numbers(tmp_path: Path) -> None:
    rows = [json.loads(line(i)) for i in range(4)] + [5, json.loads(line(6))]
    (tmp_path / "d.json").write_text(json.dumps(rows, indent=2))
    report = validate(str(tmp_path / "d.json"))
    assert report.rows == 5 and report.format == "messages"
    assert report.error_count == 1
    text = (tmp_path / "d.json").read_text().splitlines()
    assert text[report.errors[0].line - 1].strip() == "5,"  # the line of the bad item


def test_a_truncated_json_array_is_reported(tmp_path: Path) -> None:
    text = json.dumps([json.loads(line(i)) for i in range(3)])
    (tmp_path / "d.json").write_text(text[:-30])
    report = validate(str(tmp_path / "d.json"))
    assert report.rows == 2
    assert report.error_count == 1 and "truncated" in report.errors[0].message


def test_json_lines_in_a_json_file_and_pretty_printed_objects_are_read(tmp_path: Path) -> None:
    (tmp_path / "lines.json").write_text(line(1) + "\n" + line(2) + "\n")
    assert validate(str(tmp_path / "lines.json")).rows == 2
    (tmp_path / "pretty.json").write_text(json.dumps(GOOD, indent=2) + "\n" + json.dumps(GOOD, indent=2))
    report = validate(str(tmp_path / "pretty.json"))
    assert report.rows == 2 and report.error_count == 0
    (tmp_path / "wrapped.json").write_text(json.dumps({"data": [GOOD, GOOD, GOOD]}, indent=1))
    assert validate(str(tmp_path / "wrapped.json")).rows == 3


def test_csv_rows_are_read_and_ragged_rows_are_errors(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text('prompt,completion\n"What is 2+2?",4\n"multi\nline prompt",ok\nonly-one-field\n"a","b"\n')
    report = validate(str(tmp_path / "d.csv"))
    assert report.rows == 3 and report.format == "prompt_completion"
    assert [(e.line, "1 fields" in e.message) for e in report.errors] == [(5, True)]
    assert report.methods["sft"].status == "ready"


def test_parquet_rows_are_read(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([{"prompt": f"p{i}", "chosen": "c", "rejected": "r"} for i in range(2500)])
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=1000)
    report = validate(str(tmp_path / "d.parquet"))
    assert report.rows == 2500 and report.format == "preference"
    assert report.methods["dpo"].status == "ready"


def test_a_directory_reads_its_train_files_and_names_the_file_of_each_problem(tmp_path: Path) -> None:
    data = tmp_path / "ds" / "data"
    data.mkdir(parents=True)
    (data / "train-00000.jsonl").write_text(line(1) + "\n" + line(2) + "\n")
    (data / "train-00001.jsonl").write_text(line(3) + "\n{oops\n")
    (data / "test-00000.jsonl").write_text(line(9) + "\n")
    report = validate(str(tmp_path / "ds"))
    assert report.rows == 3
    assert report.errors[0].file == "data/train-00001.jsonl" and report.errors[0].line == 2
    assert any("test-00000" in n for n in report.notes)


def test_unreadable_sources_raise_errors_that_say_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "bin.jsonl").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "gz.jsonl").write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 100)
    (tmp_path / "u16.jsonl").write_bytes((line(1) + "\n").encode("utf-16"))
    (tmp_path / "d.txt").write_text("hello\n")
    cases = {
        str(tmp_path / "missing.jsonl"): "dataset.not_found",
        str(tmp_path / "empty_dir"): "dataset.no_data_files",
        str(tmp_path / "bin.jsonl"): "dataset.binary",
        str(tmp_path / "gz.jsonl"): "dataset.binary",
        str(tmp_path / "u16.jsonl"): "dataset.wrong_encoding",
        str(tmp_path / "d.txt"): "dataset.unsupported_type",
    }
    for source, code in cases.items():
        with pytest.raises(TuneforgeError) as info:
            validate(source)
        assert info.value.code == code, source
        assert info.value.fix
    with pytest.raises(TuneforgeError) as info:
        validate(str(tmp_path / "gz.jsonl"))
    assert "gzip" in info.value.message  # the kind of binary data is named


def test_an_empty_file_and_a_file_of_blank_lines_have_no_rows(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "blank.jsonl").write_text("\n  \n\t\n\n")
    for name in ("empty.jsonl", "blank.jsonl"):
        report = validate(str(tmp_path / name))
        assert report.rows == 0 and report.format == "empty"
        assert report.exit_code == 2
        assert {v.status for v in report.methods.values()} == {"incompatible"}


def test_a_5mb_single_line_is_read(tmp_path: Path) -> None:
    big = {"messages": [{"role": "user", "content": "x " * (2_500_000)}, {"role": "assistant", "content": "ok"}]}
    (tmp_path / "big.jsonl").write_text(json.dumps(big) + "\n" + line(2) + "\n")
    report = validate(str(tmp_path / "big.jsonl"))
    assert report.rows == 2 and report.error_count == 0
    assert report.token_stats is not None and report.token_stats.max > 1_000_000


def test_a_hub_id_fails_fast_and_clearly_when_offline(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(TuneforgeError) as info:
        validate("someone/some-dataset")
    assert time.monotonic() - started < 5
    assert info.value.code == "dataset.hub_offline"
