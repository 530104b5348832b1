"""With --model, rows are rendered with the model's own tokenizer and chat template: token lengths,
truncation, trainable tokens under assistant-only loss, EOS inside the trained span, double BOS and
templates that cannot train are all measured on real SmolLM2 tokenizer files."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from tuneforge.doctor import (
    DatasetReport,
    chat_tokenizer,
    sequences,
    token_counting,
    validate,
)

NO_EOS_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                   "{% if add_generation_prompt %}assistant: {% endif %}")
NO_SYSTEM_TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not "
                      "supported') }}{% endif %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                      "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def tokenizer_copy(smollm2_dir: Path, dest: Path, template: str | None = "same") -> Path:
    """SmolLM2's tokenizer files (no weights) with another chat template, or none."""
    dest.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json"):
        shutil.copy(smollm2_dir / name, dest / name)
    if template == "same":
        shutil.copy(smollm2_dir / "chat_template.jinja", dest / "chat_template.jinja")
    elif template is not None:
        (dest / "chat_template.jinja").write_text(template)
    return dest


def chats(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    words = "the cat sat on a mat while seven dogs ran far away from home and came back later".split()
    rows = []
    for i in range(n):
        msgs = [{"role": "user", "content": " ".join(rng.choices(words, k=rng.randint(3, 40)))},
                {"role": "assistant", "content": " ".join(rng.choices(words, k=rng.randint(1, 60)))}]
        if i % 3 == 0:
            msgs.insert(0, {"role": "system", "content": "You answer in English."})
        rows.append({"messages": msgs})
    return rows


def problem(report: DatasetReport, kind: str):
    return next((p for p in report.problems if p.kind == kind), None)


def test_token_lengths_and_trainable_tokens_match_the_models_own_template(tmp_path: Path, smollm2_dir: Path) -> None:
    from transformers import AutoTokenizer

    rows = chats(60)
    report = validate(str(write_jsonl(tmp_path / "c.jsonl", rows)), model=str(smollm2_dir), max_length=60)
    tok = AutoTokenizer.from_pretrained(str(smollm2_dir))

    def n_tokens(messages: list, gen: bool = False) -> int:
        return len(tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=gen, return_dict=False))

    lengths = sorted(n_tokens(r["messages"]) for r in rows)
    prompts = [n_tokens(r["messages"][:-1], gen=True) for r in rows]
    full = [n_tokens(r["messages"]) for r in rows]
    trained = sum(max(0, min(f, 60) - min(p, 60)) for p, f in zip(prompts, full))
    ts = report.token_stats
    assert ts is not None and not ts.estimated and ts.tokenizer == str(smollm2_dir)
    assert ts.rows == 60 and ts.max == lengths[-1] and ts.p50 == lengths[29]
    assert ts.total_tokens == sum(lengths) and ts.mean == round(sum(lengths) / 60, 1)
    over = sum(1 for n in lengths if n > 60)
    assert over > 0 and ts.truncated_rows == over and ts.truncated_share == round(over / 60, 4)
    assert ts.trainable_tokens == trained
    assert problem(report, "too_long").count == over
    assert ts.zero_trainable_rows == sum(1 for n in prompts if n >= 60)  # the answer starts past max_length
    assert ts.no_eos_rows == 0 and ts.chat_template == "model"


def test_rows_whose_answer_is_cut_off_by_max_length_have_nothing_to_learn(tmp_path: Path, smollm2_dir: Path) -> None:
    rows = chats(5) + [{"messages": [{"role": "user", "content": "word " * 300}, {"role": "assistant", "content": "ok"}]}]
    data = write_jsonl(tmp_path / "c.jsonl", rows)
    report = validate(str(data), model=str(smollm2_dir), max_length=128)
    zero = problem(report, "zero_trainable")
    assert zero is not None and zero.lines == [6] and not zero.blocking  # the template drops it and says so
    assert report.token_stats.zero_trainable_rows == 1 and report.methods["sft"].status == "ready"
    assert problem(validate(str(data), model=str(smollm2_dir), max_length=1024), "zero_trainable") is None
    nothing = validate(str(data), model=str(smollm2_dir), max_length=16)  # every answer starts past 16 tokens
    assert problem(nothing, "zero_trainable").blocking and nothing.methods["sft"].status == "incompatible"


def test_a_template_that_never_closes_assistant_turns_is_caught(tmp_path: Path, smollm2_dir: Path) -> None:
    model = tokenizer_copy(smollm2_dir, tmp_path / "noeos", NO_EOS_TEMPLATE)
    data = write_jsonl(tmp_path / "c.jsonl", chats(8))
    report = validate(str(data), model=str(model))
    no_eos = problem(report, "no_eos")
    assert no_eos is not None and no_eos.count == 8 and no_eos.blocking
    assert report.methods["sft"].status == "incompatible" and report.exit_code == 1
    assert any("stop" in r for r in report.methods["sft"].reasons)
    good = validate(str(data), model=str(smollm2_dir))
    assert good.token_stats.no_eos_rows == 0 and good.exit_code == 0


def test_a_model_without_a_chat_template_cannot_train_on_conversations(tmp_path: Path, smollm2_dir: Path) -> None:
    model = tokenizer_copy(smollm2_dir, tmp_path / "base", template=None)
    report = validate(str(write_jsonl(tmp_path / "c.jsonl", chats(4))), model=str(model))
    assert report.methods["sft"].status == "incompatible"
    assert any("no chat template" in r for r in report.methods["sft"].reasons)
    assert report.token_stats.chat_template == "none"
    text = validate(str(write_jsonl(tmp_path / "t.jsonl", [{"text": "hello world"}] * 2)), model=str(model))
    assert text.methods["sft"].status == "ready" and text.token_stats.chat_template == "not_needed"


def test_rows_the_template_rejects_are_listed_with_its_error(tmp_path: Path, smollm2_dir: Path) -> None:
    model = tokenizer_copy(smollm2_dir, tmp_path / "nosys", NO_SYSTEM_TEMPLATE)
    report = validate(str(write_jsonl(tmp_path / "c.jsonl", chats(6))), model=str(model))
    failed = next(p for p in report.problems if p.kind == "template" and p.blocking)
    assert failed.lines == [1, 4] and "System role not supported" in failed.message
    assert report.methods["sft"].status == "incompatible"


def test_text_that_already_starts_with_bos_gets_a_double_bos(tmp_path: Path, smollm2_dir: Path) -> None:
    model = tokenizer_copy(smollm2_dir, tmp_path / "bos")
    spec = json.loads((model / "tokenizer.json").read_text())
    spec["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [0], "tokens": ["<|endoftext|>"]}},
    }
    (model / "tokenizer.json").write_text(json.dumps(spec))
    config = json.loads((model / "tokenizer_config.json").read_text())
    (model / "tokenizer_config.json").write_text(json.dumps({**config, "bos_token": "<|endoftext|>"}))
    rows = [{"text": "<|endoftext|>Once upon a time."}, {"text": "A normal row."}, {"text": "<|endoftext|>Again."}]
    report = validate(str(write_jsonl(tmp_path / "t.jsonl", rows)), model=str(model))
    double = problem(report, "double_bos")
    assert double is not None and double.lines == [1, 3]
    assert report.token_stats.double_bos_rows == 2
    plain = validate(str(tmp_path / "t.jsonl"), model=str(smollm2_dir))  # SmolLM2 adds no BOS to text
    assert plain.token_stats.double_bos_rows == 0


def test_every_layout_is_measured_with_the_sequences_its_trainer_builds(tmp_path: Path, smollm2_dir: Path) -> None:
    user = [{"role": "user", "content": "What is two plus two?"}]
    cases = {
        "alpaca": ([{"instruction": "Add", "input": "2 and 2", "output": "4"}] * 2, "sft"),
        "sharegpt": ([{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}] * 2, "sft"),
        "prompt_completion": ([{"prompt": "The sky is", "completion": " blue."}] * 2, "sft"),
        "preference": ([{"prompt": user, "chosen": [{"role": "assistant", "content": "Four."}],
                         "rejected": [{"role": "assistant", "content": "Five, probably."}]}] * 2, "dpo"),
        "preference_implicit": ([{"chosen": user + [{"role": "assistant", "content": "Four."}],
                                  "rejected": user + [{"role": "assistant", "content": "Five."}]}] * 2, "dpo"),
        "unpaired_preference": ([{"prompt": "2+2=", "completion": "4", "label": True},
                                 {"prompt": "2+2=", "completion": "5", "label": False}], "kto"),
        "prompt_only": ([{"prompt": user, "answer": "4"}] * 2, "grpo"),
    }
    for name, (rows, method) in cases.items():
        report = validate(str(write_jsonl(tmp_path / f"{name}.jsonl", rows)), model=str(smollm2_dir))
        ts = report.token_stats
        assert report.format == name and ts.method == method and ts.rows == 2, name
        assert ts.max > 0 and not ts.estimated, name
        assert report.methods[method].status == "ready", (name, report.methods[method].reasons)
        if method == "grpo":
            assert ts.trainable_tokens is None
        else:
            assert ts.trainable_tokens > 0 and ts.zero_trainable_rows == 0 and ts.no_eos_rows == 0, name


def test_the_fast_counter_agrees_with_the_tokenizer_on_awkward_text(smollm2_dir: Path) -> None:
    tok = chat_tokenizer.load_tokenizer(str(smollm2_dir))
    renderer, fast = sequences.Renderer(tok), token_counting.FastCounter.build(tok)
    assert fast is not None
    rng = random.Random(7)
    alphabet = list("ab Z  \n\n\t12 3.,!?'s'VE ü漢😀-_\x0b\r") + [" the", "<|im_end|>", "<|im_start|>", "\r\n", " \n"]
    text = lambda n: "".join(rng.choice(alphabet) for _ in range(n))  # noqa: E731
    seqs = []
    for _ in range(400):
        msgs = [{"role": "user", "content": text(rng.randint(0, 30))}, {"role": "assistant", "content": text(rng.randint(0, 30))}]
        seqs += [renderer.conversation(msgs), renderer.pair(text(10), text(10))]
    for limit in (10**6, 12):
        real = token_counting.count_with_tokenizer(tok, seqs, limit)
        counted = [(fast.count(s, limit), r) for s, r in zip(seqs, real)]
        assert all(f == r for f, r in counted if f is not None)
        assert sum(f is not None for f, _ in counted) > len(seqs) // 2  # most take the fast route


def test_a_fast_count_that_disagrees_with_the_tokenizer_is_dropped(tmp_path: Path, smollm2_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_jsonl(tmp_path / "c.jsonl", chats(20))
    honest = validate(str(data), model=str(smollm2_dir)).token_stats
    real_count = token_counting.FastCounter.count

    def off_by_one(self, seq, limit):
        result = real_count(self, seq, limit)
        if result is not None:
            result.tokens += 1
        return result

    monkeypatch.setattr(token_counting.FastCounter, "count", off_by_one)
    checked = validate(str(data), model=str(smollm2_dir), cache=False).token_stats
    assert any("disagreed" in n for n in checked.notes)
    assert (checked.p50, checked.max, checked.total_tokens) == (honest.p50, honest.max, honest.total_tokens)


def test_ascii_patterns_translate_unicode_classes() -> None:
    assert token_counting.ascii_pattern(r" ?\p{L}+|\s+(?!\S)") == r" ?[A-Za-z]+|[\t\n\x0b\x0c\r ]+(?![^\t\n\x0b\x0c\r ])"
    assert token_counting.ascii_pattern(r"[^\s\p{L}\p{N}]+") == r"[^\t\n\x0b\x0c\r A-Za-z0-9]+"
    assert token_counting.ascii_pattern(r"\p{Lu}+") is None


def test_an_unknown_model_is_a_clear_error(tmp_path: Path) -> None:
    from tuneforge.errors import TuneforgeError

    data = write_jsonl(tmp_path / "c.jsonl", chats(2))
    with pytest.raises(TuneforgeError) as info:
        validate(str(data), model="nobody/no-such-model-xyz")
    assert info.value.code == "model.tokenizer_unavailable" and info.value.fix


@pytest.mark.slow
def test_large_inputs_measured_by_helper_processes_give_the_same_report(tmp_path: Path, smollm2_dir: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from tuneforge.doctor import token_measuring, validation, worker_pool

    rows = chats(1500, seed=3)
    rows[700] = {"messages": [{"role": "user", "content": "word " * 400}, {"role": "assistant", "content": "ok"}]}
    data = write_jsonl(tmp_path / "c.jsonl", rows)
    started: list[str] = []
    original = worker_pool.Helper.__init__

    def spy(self, task, *args):
        started.append(task)
        original(self, task, *args)

    load, measure = validation.LOAD_TASK, token_measuring.MEASURE_TASK
    monkeypatch.setattr(worker_pool.Helper, "__init__", spy)
    monkeypatch.setattr(validation, "PARALLEL_BYTES", 0)
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    shared = validate(str(data), model=str(smollm2_dir), max_length=256, cache=False)
    assert started == [load, measure]  # the tokenizer loaded elsewhere, half the rows measured elsewhere
    monkeypatch.setattr(validation, "PARALLEL_BYTES", 1 << 40)
    alone = validate(str(data), model=str(smollm2_dir), max_length=256, cache=False)
    assert started == [load, measure]
    keep = {"notes"}
    assert shared.token_stats.model_dump(exclude=keep) == alone.token_stats.model_dump(exclude=keep)
    assert [p.model_dump() for p in shared.problems] == [p.model_dump() for p in alone.problems]
    assert problem(shared, "zero_trainable").lines == [701]


def test_the_next_validation_reads_the_tokenizer_from_the_disk_cache(tmp_path: Path, smollm2_dir: Path) -> None:
    import subprocess
    import sys

    data = write_jsonl(tmp_path / "c.jsonl", chats(30))
    first = validate(str(data), model=str(smollm2_dir))
    code = ("import sys, json; from tuneforge.doctor import validate; "
            f"r = validate({str(data)!r}, model={str(smollm2_dir)!r}, cache=False); "
            "print(json.dumps([r.token_stats.total_tokens, r.token_stats.trainable_tokens, 'torch' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    total, trained, torch_loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert (total, trained) == (first.token_stats.total_tokens, first.token_stats.trainable_tokens)
    assert torch_loaded is False  # the spec came from $TUNEFORGE_HOME/cache: no transformers, no torch
