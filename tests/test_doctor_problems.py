"""Row problems come with line numbers and a fix; dataset problems (duplicates, PII, size, eval overlap)
come with counts. Problems that would break training block the method; the others are warnings."""

from __future__ import annotations

import json
from pathlib import Path

from tuneforge.doctor import DatasetReport, validate
from tuneforge.doctor.duplicates import DuplicateSketch
from tuneforge.doctor.pii import find_pii


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def chat(i: int, extra: str = "") -> dict:
    return {"messages": [{"role": "user", "content": f"question number {i}{extra}"},
                         {"role": "assistant", "content": f"answer number {i}"}]}


def problems(report: DatasetReport, kind: str) -> list:
    return [p for p in report.problems if p.kind == kind]


def test_missing_null_and_empty_fields_are_reported_with_lines_and_block(tmp_path: Path) -> None:
    rows = [{"prompt": f"p{i}", "chosen": "good", "rejected": "bad"} for i in range(6)]
    rows[1] = {"prompt": "p1", "chosen": "good"}            # line 2: no rejected
    rows[3] = {"prompt": "p3", "chosen": None, "rejected": "x"}  # line 4: null chosen
    rows[4] = {"prompt": "", "chosen": "good", "rejected": "bad"}  # line 5: empty prompt
    report = validate(str(write_jsonl(tmp_path / "p.jsonl", rows)), method="dpo")
    missing = {p.message: p for p in problems(report, "missing")}
    assert any(p.lines == [2] and "rejected" in m for m, p in missing.items())
    assert any(p.lines == [4] and "null" in m and "chosen" in m for m, p in missing.items())
    assert all(p.blocking for p in missing.values())
    empty = problems(report, "empty")
    assert [p.line for p in empty] == [5] and not empty[0].blocking
    assert report.methods["dpo"].status == "incompatible"
    assert any("lines 2" in r for r in report.methods["dpo"].reasons)
    assert report.exit_code == 1


def test_roles_alternation_and_missing_assistant_turns_are_reported(tmp_path: Path) -> None:
    rows = [chat(i) for i in range(6)]
    rows[1]["messages"][0]["role"] = "developer"                                    # line 2
    rows[2]["messages"].insert(1, {"role": "user", "content": "and also"})          # line 3
    rows[3]["messages"] = [{"role": "user", "content": "no answer"}]                # line 4
    rows[4]["messages"][1]["content"] = "   "                                        # line 5
    rows[5]["messages"].append({"role": "system", "content": "late system"})        # line 6
    report = validate(str(write_jsonl(tmp_path / "c.jsonl", rows)))
    role = problems(report, "role")
    assert [p.line for p in role] == [2] and "developer" in role[0].message and not role[0].blocking
    alternation = sorted(p.line for p in problems(report, "alternation"))
    assert alternation == [3, 6]
    no_assistant = {p.line: p for p in problems(report, "no_assistant")}
    assert set(no_assistant) == {4, 5} and all(p.blocking for p in no_assistant.values())
    assert [p.line for p in problems(report, "empty")] == [5]
    assert report.methods["sft"].status == "incompatible"
    assert all(p.fix for p in report.problems)


def test_unknown_sharegpt_speakers_are_reported_but_known_aliases_are_not(tmp_path: Path) -> None:
    rows = [{"conversations": [{"from": "human", "value": "hi"}, {"from": "narrator", "value": "meanwhile"},
                               {"from": "bot", "value": "yo"}]}]
    report = validate(str(write_jsonl(tmp_path / "s.jsonl", rows)))
    [role] = problems(report, "role")
    assert "narrator" in role.message and not role.blocking  # the template passes it through; --model checks it
    assert report.methods["sft"].status == "ready"


def test_rows_in_another_layout_are_flagged_as_mixed_format(tmp_path: Path) -> None:
    rows = [chat(i) for i in range(8)]
    rows[2] = {"text": "a plain text row"}
    rows[6] = {"prompt": "p", "completion": "c"}
    report = validate(str(write_jsonl(tmp_path / "m.jsonl", rows)))
    assert report.format == "messages"
    mixed = problems(report, "mixed_format")
    assert sorted(p.line for p in mixed) == [3, 7]
    assert report.methods["sft"].status == "incompatible"  # rows 3 and 7 have no messages
    assert any("lines 3, 7" in r for r in report.methods["sft"].reasons)


def test_exact_and_near_duplicates_are_counted_with_the_line_they_repeat(tmp_path: Path) -> None:
    rows = [chat(i) for i in range(10)]
    rows[4] = chat(1)                    # line 5 repeats line 2
    rows[7] = chat(1)                    # line 8 repeats line 2
    rows[8] = chat(3)
    rows[8]["messages"][0]["content"] = "QUESTION  number 3!!"  # line 9 ~ line 4
    rows[9] = dict(chat(6), id="row-10")  # metadata does not make a row unique
    report = validate(str(write_jsonl(tmp_path / "d.jsonl", rows)))
    [exact] = problems(report, "duplicate")
    assert exact.count == 3 and exact.lines == [5, 8, 10]
    assert "line 5 repeats line 2" in exact.message
    [near] = problems(report, "near_duplicate")
    assert near.count == 1 and near.line == 9 and "line 9 repeats line 4" in near.message
    assert not exact.blocking and report.methods["sft"].status == "ready"


def test_personal_data_is_counted_by_kind(tmp_path: Path) -> None:
    texts = ["write to jane.doe@example.org", "call +44 20 7946 0958 now", "card 4111 1111 1111 1111",
             "my number is (415) 555-2671", "pi is 3.14159265358979", "order 12345678901234567 shipped", "nothing"]
    rows = [{"text": t} for t in texts]
    report = validate(str(write_jsonl(tmp_path / "pii.jsonl", rows)))
    found = {p.message.split("contain ")[1]: (p.count, p.lines) for p in problems(report, "pii")}
    assert found == {"email addresses": (1, [1]), "phone numbers": (2, [2, 4]), "card-like numbers": (1, [3])}


def test_too_few_rows_is_a_warning_not_a_blocker(tmp_path: Path) -> None:
    report = validate(str(write_jsonl(tmp_path / "few.jsonl", [chat(i) for i in range(3)])))
    [few] = problems(report, "too_few_rows")
    assert few.count == 3 and not few.blocking and "100" in few.message
    assert report.ready
    many = validate(str(write_jsonl(tmp_path / "many.jsonl", [chat(i) for i in range(120)])))
    assert not problems(many, "too_few_rows")


def test_identical_chosen_and_rejected_are_flagged(tmp_path: Path) -> None:
    rows = [{"prompt": "p", "chosen": f"c{i}", "rejected": "r"} for i in range(3)] + [{"prompt": "p", "chosen": "s", "rejected": "s"}]
    [same] = problems(validate(str(write_jsonl(tmp_path / "x.jsonl", rows)), method="dpo"), "identical_pair")
    assert same.line == 4


def test_eval_rows_that_also_appear_in_training_are_counted(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [chat(i) for i in range(20)])
    evals = write_jsonl(tmp_path / "eval.jsonl", [chat(100), chat(3), chat(5, extra="  "), chat(101)])
    report = validate(str(train), eval_source=str(evals))
    [overlap] = problems(report, "overlap")
    assert overlap.count == 2 and overlap.lines == [2, 3] and overlap.file and overlap.file.startswith("eval:")
    assert report.ready  # a warning: the data still trains
    assert any("4 row(s)" in n for n in report.notes)


def test_an_eval_set_in_another_layout_blocks_and_its_bad_lines_count(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [chat(i) for i in range(5)])
    (tmp_path / "eval.jsonl").write_text(json.dumps({"text": "plain"}) + "\n{broken\n")
    report = validate(str(train), eval_source=str(tmp_path / "eval.jsonl"))
    assert problems(report, "eval_format")[0].blocking
    assert report.methods["sft"].status == "incompatible"
    assert report.errors[-1].line == 2 and report.errors[-1].file.startswith("eval:")
    assert report.exit_code == 2


def test_the_duplicate_sketch_stays_bounded_and_scales_its_counts() -> None:
    sketch = DuplicateSketch(cap=1000)
    for i in range(20_000):
        sketch.add(i, f"row {i % 5000}")  # every row appears 4 times
    assert len(sketch.rows) <= 1000 and sketch.level > 0
    exact, near = sketch.find()
    assert exact.estimated and abs(exact.count - 15_000) / 15_000 < 0.25
    assert near.count == 0


def test_pii_patterns_leave_ordinary_numbers_alone() -> None:
    assert find_pii("version 1.2.3, 2024-01-15 12:30:45, x=1234567890") == (False, False, False)
    assert find_pii("reach me: ops@company.io, +1 (415) 555-2671") == (True, True, False)
    assert find_pii("5500 0000 0000 0004 is a test card")[2]


def alpaca(i: int) -> dict:
    return {"instruction": f"question number {i}", "input": "", "output": f"answer number {i}"}


def test_row_problems_are_listed_with_their_lines_whether_or_not_a_method_is_given(tmp_path: Path) -> None:
    rows = [alpaca(i) for i in range(20)]
    rows[9]["output"] = None                                   # line 10
    del rows[14]["instruction"]                                 # line 15
    path = str(write_jsonl(tmp_path / "a.jsonl", rows))
    for method in ("auto", "sft"):
        report = validate(path, method=method, cache=False)
        missing = {p.line: p for p in problems(report, "missing")}
        assert set(missing) == {10, 15}, method
        assert missing[10].lines == [10] and missing[10].count == 1 and "'output'" in missing[10].message
        assert "null" in missing[10].message and "'instruction'" in missing[15].message
        assert all(p.blocking and p.fix for p in missing.values())
        # the verdict's reasons come from the same findings: the same words, with the lines
        assert any(missing[10].message in r and "lines 10" in r for r in report.methods["sft"].reasons)
        assert not problems(report, "empty")  # Alpaca's empty optional input is normal, not a problem


def test_with_method_auto_each_column_problem_is_listed_once(tmp_path: Path) -> None:
    rows = [{"prompt": f"p{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(12)]
    rows[1] = {"prompt": "p1", "chosen": "good"}                # line 2: no rejected
    rows[6]["chosen"] = 7                                       # line 7: a number where text belongs
    path = str(write_jsonl(tmp_path / "p.jsonl", rows))
    auto = validate(path, cache=False)   # dpo, kto and reward all read chosen/rejected
    dpo = validate(path, method="dpo", cache=False)

    def shape(report: DatasetReport) -> list:
        return sorted((p.kind, p.line, tuple(p.lines), p.count, p.blocking) for p in report.problems
                      if p.kind in ("missing", "type", "empty"))

    assert shape(auto) == shape(dpo) == [("missing", 2, (2,), 1, True), ("type", 7, (7,), 1, True)]


def test_an_empty_conversation_blocks_and_is_listed(tmp_path: Path) -> None:
    rows = [chat(i) for i in range(6)]
    rows[2]["messages"] = []                                    # line 3
    report = validate(str(write_jsonl(tmp_path / "e.jsonl", rows)), cache=False)
    [empty] = problems(report, "empty")
    assert empty.line == 3 and empty.blocking and "empty conversation" in empty.message
    assert report.methods["sft"].status == "incompatible"
    assert any("empty conversation" in r and "lines 3" in r for r in report.methods["sft"].reasons)


def test_a_column_missing_from_rows_shaped_like_the_first_is_counted_with_its_lines(tmp_path: Path) -> None:
    rows = [{"prompt": "p1"}, {"prompt": "p2", "completion": "c2"}, {"completion": "c3"}, {"prompt": "p4"},
            {"prompt": "p5", "completion": "c5"}]
    report = validate(str(write_jsonl(tmp_path / "gaps.jsonl", rows)), method="sft", cache=False)
    missing = {p.message: p.lines for p in problems(report, "missing")}
    assert missing == {"1 row(s) have no 'prompt'": [3], "2 row(s) have no 'completion'": [1, 4]}
