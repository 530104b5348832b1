"""`tuneforge validate` as a user runs it: exit codes 0/1/2, the JSON contract, a short human report with
fixes and a ready-to-paste column_map, and never a traceback. The command runs in process through
`tuneforge.cli.main(argv)`; the import-lightness check starts a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_main import run_main


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess:
    return run_main(capsys, "validate", *args)


def chat(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}


def test_json_output_has_the_contract_shape_and_exit_zero_when_ready(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_jsonl(tmp_path / "chat.jsonl", [chat(i) for i in range(4)])
    done = run(capsys, str(data), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {"source", "format", "rows", "methods", "problems", "errors", "token_stats"} <= set(report)
    assert report["format"] == "messages" and report["rows"] == 4
    assert set(report["methods"]) == {"sft", "dpo", "grpo", "kto", "reward"}
    for verdict in report["methods"].values():
        assert set(verdict) >= {"status", "mapping", "reasons"}
    assert report["methods"]["sft"]["status"] == "ready"
    for p in report["problems"]:
        assert set(p) >= {"kind", "line", "message", "count"}
    assert report["errors"] == [] and report["token_stats"]["estimated"] is True


def test_exit_one_when_readable_but_the_requested_method_is_not_ready(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_jsonl(tmp_path / "chat.jsonl", [chat(i) for i in range(4)])
    done = run(capsys, str(data), "--method", "dpo", "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["methods"]["dpo"]["status"] == "incompatible"


def test_exit_two_with_line_numbers_when_rows_cannot_be_parsed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.jsonl").write_text(json.dumps(chat(1)) + "\n{oops\n" + json.dumps(chat(3)) + "\n")
    done = run(capsys, str(tmp_path / "bad.jsonl"), "--json")
    assert done.returncode == 2
    assert json.loads(done.stdout)["errors"] == [{"line": 2, "message": "invalid JSON at column 2: Expecting property "
                                                   "name enclosed in double quotes", "file": None}]


def test_an_eval_set_given_on_the_command_line_is_checked_for_overlap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [chat(i) for i in range(6)])
    evals = write_jsonl(tmp_path / "eval.jsonl", [chat(2), chat(50)])
    done = run(capsys, str(train), "--eval", str(evals), "--json")
    assert done.returncode == 0, done.stderr
    [overlap] = [p for p in json.loads(done.stdout)["problems"] if p["kind"] == "overlap"]
    assert overlap["count"] == 1 and overlap["line"] == 1


def test_the_human_report_gives_fixes_and_a_ready_to_paste_column_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"question": f"q{i}", "good_response": "yes", "bad_response": "no"} for i in range(3)]
    rows.append({"question": "write to bob@example.com", "good_response": "ok", "bad_response": "no"})
    done = run(capsys, str(write_jsonl(tmp_path / "p.jsonl", rows)), "--method", "dpo")
    assert done.returncode == 1
    out = done.stdout
    assert "needs_mapping" in out
    assert "--column-map prompt=question --column-map chosen=good_response --column-map rejected=bad_response" in out
    assert "{'prompt': 'question', 'chosen': 'good_response', 'rejected': 'bad_response'}" in out
    assert "pii" in out and "fix:" in out
    assert "Traceback" not in out + done.stderr


@pytest.mark.parametrize("content", [None, b"", b"\n\n   \n", bytes(range(256)) * 10, b"[1, 2, 3]", b"\x80\x81\x82\n"])
def test_no_malformed_input_produces_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None) -> None:
    path = tmp_path / "data.jsonl"
    if content is not None:
        path.write_bytes(content)
    for extra in ((), ("--json",)):
        done = run(capsys, str(path), *extra)
        assert done.returncode == 2, (content, done.stdout, done.stderr)
        assert "Traceback" not in done.stdout + done.stderr
        if extra:
            payload = json.loads(done.stdout)
            assert "error" in payload or "errors" in payload or payload["rows"] == 0
        else:
            assert done.stdout.strip() or "Fix:" in done.stderr


def test_a_directory_and_unknown_method_are_handled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    done = run(capsys, str(tmp_path))
    assert done.returncode == 2 and "Fix:" in done.stderr and "Traceback" not in done.stderr
    done = run(capsys, str(tmp_path), "--method", "ppo")
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_importing_the_doctor_and_its_command_stays_light() -> None:
    code = ("import sys, tuneforge.doctor, tuneforge.cli.validate, tuneforge.cli; tuneforge.cli.build_parser(); "
            "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
