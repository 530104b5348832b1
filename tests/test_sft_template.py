"""The SFT template: real training steps on a real (tiny) model through the local backend."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from tuneforge import paths
from tuneforge.config import RunConfig
from tuneforge.jobs.service import JobService
from tuneforge.jobs.workspace import support_files
from tuneforge.progress import parse_event


def load_template():
    spec = importlib.util.spec_from_file_location("sft_template", paths.template_path("sft"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_alpaca_sharegpt_and_prompt_completion_rows_become_chat_messages():
    sft = load_template()
    alpaca = sft.to_messages({"instruction": "Add", "input": "2+2", "output": "4"}, None)
    assert alpaca == {"messages": [{"role": "user", "content": "Add\n\n2+2"}, {"role": "assistant", "content": "4"}]}
    share = sft.to_messages({"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "hi"},
                                               {"from": "gpt", "value": "yo"}]}, "ignored: row has a system turn")
    assert [m["role"] for m in share["messages"]] == ["system", "user", "assistant"]
    pc = sft.to_messages({"prompt": "p", "completion": "c"}, "be brief")
    assert pc["messages"][0] == {"role": "system", "content": "be brief"}
    assert sft.to_messages({"text": "plain"}, None) == {"text": "plain"}
    with pytest.raises(KeyError):
        sft.to_messages({"question": "q"}, None)


def test_only_assistant_turns_are_trained_and_the_end_of_turn_token_is_inside(smollm2_dir: Path):
    from transformers import AutoTokenizer

    sft = load_template()
    tok = AutoTokenizer.from_pretrained(str(smollm2_dir))
    messages = [{"role": "user", "content": "Hello there"}, {"role": "assistant", "content": "General Kenobi"},
                {"role": "user", "content": "Again"}, {"role": "assistant", "content": "Hi"}]
    text, spans = sft.assistant_spans(tok, messages)
    assert len(spans) == 2
    trained = [text[a:b] for a, b in spans]
    assert trained[0].startswith("General Kenobi<|im_end|>")
    assert trained[1].startswith("Hi<|im_end|>")
    assert all("Hello there" not in t and "Again" not in t for t in trained)


@pytest.fixture
def pattern_data(tmp_path: Path) -> tuple[Path, Path]:
    rows = [{"messages": [{"role": "user", "content": f"Say the code for item {i % 4}."},
                          {"role": "assistant", "content": f"CODE-{i % 4}-XYZ"}]} for i in range(32)]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    evals = tmp_path / "eval.jsonl"
    evals.write_text("".join(json.dumps(r) + "\n" for r in rows[:8]))
    return train, evals


@pytest.mark.slow
def test_a_real_lora_sft_run_lowers_the_loss_and_writes_every_output(tiny_llama_dir: Path, pattern_data):
    train, evals = pattern_data
    config = RunConfig.model_validate({
        "model": str(tiny_llama_dir),
        "dataset": {"path": str(train), "eval_path": str(evals)},
        "peft": {"kind": "lora", "r": 8, "alpha": 16, "dropout": 0.0},
        "train": {"learning_rate": 5e-3, "max_steps": 12, "per_device_batch_size": 4, "logging_steps": 2,
                  "warmup_ratio": 0.0, "lr_scheduler": "constant", "save_steps": 6},
        "max_length": 64,
        "merge": True,
        "eval_prompts": ["Say the code for item 1."],
        "max_new_tokens": 8,
    })
    service = JobService()
    job = service.submit_training(config)
    done = service.wait(job.job_id, timeout=600, poll_seconds=0.5)
    log = service.logs(job.job_id, tail=None)
    assert done.stage == "COMPLETED", "\n".join(log[-30:])

    events = [e for e in map(parse_event, log) if e and e["type"] == "progress"]
    assert [e["step"] for e in events] == [2, 4, 6, 8, 10, 12]
    assert all(e["total_steps"] == 12 and e["tokens_per_second"] and e["learning_rate"] for e in events)
    assert events[-1]["loss"] < events[0]["loss"]
    assert done.progress["step"] == 12  # status reads the last event exactly

    result = done.outputs["result"]
    assert result["eval_loss_after"] < result["eval_loss_before"]
    assert result["data"]["stop_trained"] == result["data"]["rows"] == 32  # every row trains the end-of-turn token
    assert result["tokens_trained"] > 0 and result["peak_rss_bytes"] > 0
    assert len(result["samples"]) == 1 and set(result["samples"][0]) == {"prompt", "before", "after"}
    out = Path(done.outputs["output_dir"])
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "merged" / "config.json").is_file()
    assert (out / "README.md").read_text().count(str(tiny_llama_dir)) >= 1
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.startswith("checkpoint-")) == ["checkpoint-12", "checkpoint-6"]
    assert (Path(done.job_dir) / "sft.py").read_bytes() == paths.template_path("sft").read_bytes()
    for rel in support_files(paths.templates_dir()):
        assert (Path(done.job_dir) / rel).read_bytes() == (paths.templates_dir() / rel).read_bytes()
