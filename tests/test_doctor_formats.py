"""The dataset doctor recognises every layout TRL and tuneforge accept, and says per method whether the
data is ready, needs a column_map (target -> source, as RunConfig takes it), or cannot be used."""

from __future__ import annotations

import json
from pathlib import Path

from tuneforge.config import DatasetSpec
from tuneforge.doctor import DatasetReport, validate


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def chat(i: int) -> list[dict]:
    return [{"role": "user", "content": f"question {i}?"}, {"role": "assistant", "content": f"answer {i}."}]


def statuses(report: DatasetReport) -> dict[str, str]:
    return {name: v.status for name, v in report.methods.items()}


def test_chat_messages_are_ready_for_sft_and_nothing_else(tmp_path: Path) -> None:
    report = validate(str(write_jsonl(tmp_path / "chat.jsonl", [{"messages": chat(i)} for i in range(5)])))
    assert report.format == "messages" and report.conversational and report.rows == 5
    assert statuses(report) == {"sft": "ready", "dpo": "incompatible", "grpo": "incompatible",
                                "kto": "incompatible", "reward": "incompatible"}
    assert list(report.methods)[0] == "sft"  # the primary method comes first
    assert report.ready and report.exit_code == 0


def test_sharegpt_conversations_are_ready_because_tuneforge_converts_them(tmp_path: Path) -> None:
    rows = [{"conversations": [{"from": "system", "value": "Be nice."}, {"from": "human", "value": f"hi {i}"},
                               {"from": "gpt", "value": f"hello {i}"}]} for i in range(3)]
    report = validate(str(write_jsonl(tmp_path / "sg.jsonl", rows)))
    assert report.format == "sharegpt"
    assert report.methods["sft"].status == "ready" and report.methods["sft"].mapping == {}
    assert any("ShareGPT" in r for r in report.methods["sft"].reasons)


def test_alpaca_is_ready_for_sft_and_needs_a_prompt_mapping_for_grpo(tmp_path: Path) -> None:
    rows = [{"instruction": f"Add {i} and 1", "input": "", "output": str(i + 1)} for i in range(3)]
    report = validate(str(write_jsonl(tmp_path / "alpaca.jsonl", rows)))
    assert report.format == "alpaca"
    assert report.methods["sft"].status == "ready"
    assert report.methods["grpo"].status == "needs_mapping"
    assert report.methods["grpo"].mapping == {"prompt": "instruction"}


def test_prompt_completion_strings_and_message_lists_are_ready_for_sft_and_grpo(tmp_path: Path) -> None:
    strings = [{"prompt": f"The sky is {i}", "completion": " blue."} for i in range(3)]
    lists = [{"prompt": chat(i)[:1], "completion": chat(i)[1:]} for i in range(3)]
    for name, rows, conversational in (("s.jsonl", strings, False), ("l.jsonl", lists, True)):
        report = validate(str(write_jsonl(tmp_path / name, rows)))
        assert report.format == "prompt_completion"
        assert report.conversational is conversational
        assert report.methods["sft"].status == "ready"
        assert report.methods["grpo"].status == "ready"  # completion stays as an extra column
        assert report.methods["dpo"].status == "incompatible"


def test_text_rows_are_ready_for_sft_only(tmp_path: Path) -> None:
    report = validate(str(write_jsonl(tmp_path / "t.jsonl", [{"text": f"Once upon a time {i}."} for i in range(3)])))
    assert report.format == "text"
    assert statuses(report)["sft"] == "ready"
    assert {s for m, s in statuses(report).items() if m != "sft"} == {"incompatible"}


def test_explicit_preference_is_ready_for_dpo_reward_kto_and_grpo(tmp_path: Path) -> None:
    rows = [{"prompt": f"2+{i}=", "chosen": str(2 + i), "rejected": "7"} for i in range(3)]
    report = validate(str(write_jsonl(tmp_path / "p.jsonl", rows)), method="dpo")
    assert report.format == "preference"
    s = statuses(report)
    assert s["dpo"] == s["reward"] == s["kto"] == s["grpo"] == "ready"
    assert any("desirable" in r for r in report.methods["kto"].reasons)  # TRL unpairs it
    # SFT can learn the chosen answers: a rename, not a conversion
    assert report.methods["sft"].status == "needs_mapping"
    assert report.methods["sft"].mapping == {"completion": "chosen"}
    assert report.exit_code == 0


def test_implicit_preference_conversations_without_a_prompt_column_are_ready_for_dpo(tmp_path: Path) -> None:
    # llm-trainer's own DPO example gets this wrong: TRL splits the shared prompt off by itself.
    rows = [{"chosen": chat(i), "rejected": [chat(i)[0], {"role": "assistant", "content": "no idea"}]} for i in range(3)]
    report = validate(str(write_jsonl(tmp_path / "hh.jsonl", rows)), method="dpo")
    assert report.format == "preference_implicit" and report.conversational
    assert report.methods["dpo"].status == "ready" and report.methods["dpo"].mapping == {}
    assert report.methods["reward"].status == "ready"
    assert report.methods["sft"].mapping == {"messages": "chosen"}
    assert report.exit_code == 0


def test_unpaired_preference_is_ready_for_kto_but_not_for_sft(tmp_path: Path) -> None:
    rows = [{"prompt": f"q{i}", "completion": f"a{i}", "label": i % 2 == 0} for i in range(4)]
    report = validate(str(write_jsonl(tmp_path / "kto.jsonl", rows)))
    assert report.format == "unpaired_preference"
    assert list(report.methods)[0] == "kto"
    assert report.methods["kto"].status == "ready"
    assert report.methods["sft"].status == "incompatible"
    assert any("label" in r for r in report.methods["sft"].reasons)


def test_prompt_only_rows_are_ready_for_grpo_and_keep_extra_columns(tmp_path: Path) -> None:
    rows = [{"prompt": [{"role": "user", "content": f"Solve {i}+1"}], "solution": str(i + 1)} for i in range(3)]
    report = validate(str(write_jsonl(tmp_path / "g.jsonl", rows)))
    assert report.format == "prompt_only"
    assert list(report.methods)[0] == "grpo" and report.methods["grpo"].status == "ready"
    assert any("reward functions" in r for r in report.methods["grpo"].reasons)
    assert report.columns == {"prompt": "messages", "solution": "text"}


def test_renamed_preference_columns_get_a_mapping_the_training_config_accepts(tmp_path: Path) -> None:
    rows = [{"question": f"2+{i}?", "good_response": str(2 + i), "bad_response": "7"} for i in range(3)]
    report = validate(str(write_jsonl(tmp_path / "q.jsonl", rows)), method="dpo")
    verdict = report.methods["dpo"]
    assert verdict.status == "needs_mapping"
    assert verdict.mapping == {"prompt": "question", "chosen": "good_response", "rejected": "bad_response"}
    assert report.exit_code == 1  # readable, but not ready until the mapping is applied
    spec = DatasetSpec(path=str(tmp_path / "q.jsonl"), column_map=verdict.mapping)  # pastes into a config as is
    assert spec.column_map == verdict.mapping
    assert any("--column-map prompt=question" in r for r in verdict.reasons)
    renamed = [{t: row[s] for t, s in verdict.mapping.items()} for row in rows]  # apply it as training would
    assert validate(str(write_jsonl(tmp_path / "renamed.jsonl", renamed)), method="dpo").methods["dpo"].status == "ready"


def test_a_question_column_maps_to_prompt_for_grpo(tmp_path: Path) -> None:
    report = validate(str(write_jsonl(tmp_path / "q.jsonl", [{"question": f"q{i}", "answer": "x"} for i in range(3)])),
                      method="grpo")
    assert report.methods["grpo"].status == "needs_mapping"
    assert report.methods["grpo"].mapping == {"prompt": "question"}
    assert report.methods["sft"].mapping == {"prompt": "question", "completion": "answer"}


def test_role_content_conversations_under_another_name_need_a_messages_mapping(tmp_path: Path) -> None:
    report = validate(str(write_jsonl(tmp_path / "c.jsonl", [{"conversations": chat(i)} for i in range(3)])))
    assert report.methods["sft"].status == "needs_mapping"
    assert report.methods["sft"].mapping == {"messages": "conversations"}


def test_kto_labels_may_be_words_or_numbers_but_not_anything_else(tmp_path: Path) -> None:
    rows = [{"prompt": "q", "completion": f"a{i}", "label": label} for i, label in enumerate([1, 0, "yes", "bad"])]
    assert validate(str(write_jsonl(tmp_path / "k.jsonl", rows)), method="kto").methods["kto"].status == "ready"
    rows[2]["label"] = "maybe"
    verdict = validate(str(write_jsonl(tmp_path / "k2.jsonl", rows)), method="kto").methods["kto"]
    assert verdict.status == "incompatible"
    assert any("not true/false" in r and "lines 3" in r for r in verdict.reasons)


def test_implicit_preference_with_a_separate_text_prompt_column_is_not_ready(tmp_path: Path) -> None:
    rows = [{"prompt": f"question {i}?", "chosen": chat(i), "rejected": chat(i + 1)} for i in range(3)]
    verdict = validate(str(write_jsonl(tmp_path / "x.jsonl", rows)), method="dpo").methods["dpo"]
    assert verdict.status == "incompatible"
    assert any("Drop the 'prompt' column" in r for r in verdict.reasons)


def test_columns_that_mean_nothing_are_incompatible_for_every_method(tmp_path: Path) -> None:
    report = validate(str(write_jsonl(tmp_path / "n.jsonl", [{"a": i, "b": [1, 2]} for i in range(3)])))
    assert report.format == "unknown"
    assert set(statuses(report).values()) == {"incompatible"}
    assert report.exit_code == 1
    assert all(v.reasons for v in report.methods.values())
