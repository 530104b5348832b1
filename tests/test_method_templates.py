"""The DPO, KTO, reward-model and GRPO templates: real training steps on a real (tiny) model through the
local backend, and GRPO's built-in reward functions on real completions."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from tuneforge import paths
from tuneforge.config import RunConfig
from tuneforge.config.export import ExportConfig
from tuneforge.jobs.service import JobService
from tuneforge.jobs.workspace import support_files
from tuneforge.progress import parse_event

LORA = {"kind": "lora", "r": 8, "alpha": 16, "dropout": 0.0}
TRAIN = {"learning_rate": 5e-3, "max_steps": 4, "per_device_batch_size": 4, "logging_steps": 1,
         "warmup_ratio": 0.0, "lr_scheduler": "constant"}
COMMON_RESULT_KEYS = {"train_loss", "steps", "tokens_trained", "runtime_seconds", "train_runtime_seconds",
                      "peak_rss_bytes", "peak_cuda_bytes", "log_history"}


def load_template(method: str):
    path = paths.templates_dir() / "gguf_export.py" if method == "gguf_export" else paths.template_path(method)
    spec = importlib.util.spec_from_file_location(f"{method}_template", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_job(config: dict):
    """Submit through the job service, wait, return (finished job, full log, events by type)."""
    service = JobService()
    job = service.submit_training(RunConfig.model_validate(config))
    done = service.wait(job.job_id, timeout=600, poll_seconds=0.5)
    log = service.logs(job.job_id, tail=None)
    events: dict[str, list[dict]] = {}
    for event in filter(None, map(parse_event, log)):
        events.setdefault(event["type"], []).append(event)
    return done, log, events


def pairs(n: int) -> list[dict]:
    return [{"prompt": f"Is {i} a nice number?", "chosen": f"Yes, {i} is lovely.", "rejected": "No. Bad bad bad."}
            for i in range(n)]


@pytest.mark.parametrize("method", ["dpo", "kto", "reward", "grpo"])
def test_each_template_reads_exactly_the_run_config_keys_and_prints_the_shared_event_prefix(method):
    from tuneforge.progress import EVENT_PREFIX

    template = load_template(method)
    assert template.KNOWN_TOP_KEYS == set(RunConfig.model_fields)
    assert template.EVENT_PREFIX == EVENT_PREFIX
    assert template.METHOD == method


def test_the_gguf_export_template_reads_exactly_the_export_config_keys_and_the_shared_checks():
    from tuneforge.progress import EVENT_PREFIX
    from tuneforge.templates._shared import gguf_checks

    template = load_template("gguf_export")
    assert template.KNOWN_KEYS == set(ExportConfig.model_fields)
    assert template.EVENT_PREFIX == EVENT_PREFIX
    assert Path(template.summarise.__code__.co_filename).resolve() == Path(gguf_checks.__file__).resolve()


def test_the_shared_gguf_verdict_fails_a_file_on_each_rule():
    from tuneforge.templates._shared.gguf_checks import LOGIT_TOLERANCE, summarise

    def verify(**item):
        base = {"tokenizer_match": True, "finite": True, "continuation": [1, 2], "answer": "Paris", "positions": 10,
                "max_abs_logit_diff": 0.01, "mean_abs_logit_diff": 0.001, "top1_agree": 10, "greedy_match_transformers": True}
        return {"items": [{**base, **item}], "load_seconds": 0.1, "chat_template_in_gguf": True}

    meta = {"dtype": "float32", "items": [{"prompt": "Capital of France?", "answer": "Paris"}]}
    good = summarise(verify(), meta, quant="f16", converted=True, seconds=1.0)
    assert good["passed"] and good["tolerance"] == LOGIT_TOLERANCE["f16"] and "failed_because" not in good
    too_far = summarise(verify(max_abs_logit_diff=0.3), meta, quant="f16", converted=True, seconds=1.0)
    assert not too_far["passed"] and "max |logit diff| 0.3000 > 0.25" in too_far["failed_because"]
    bf16_ref = summarise(verify(max_abs_logit_diff=0.3), {**meta, "dtype": "bfloat16"}, quant="f16", converted=True, seconds=1.0)
    assert bf16_ref["passed"] and bf16_ref["tolerance"] == 4 * LOGIT_TOLERANCE["f16"]
    assert not summarise(verify(top1_agree=8), meta, quant="f16", converted=True, seconds=1.0)["passed"]
    assert not summarise(verify(tokenizer_match=False), meta, quant="f16", converted=True, seconds=1.0)["passed"]
    assert summarise(verify(tokenizer_match=False, max_abs_logit_diff=5.0), meta, quant="q4_k_m", converted=False, seconds=1.0)["passed"]
    assert not summarise(verify(finite=False), meta, quant="q4_k_m", converted=False, seconds=1.0)["passed"]
    silent = summarise(verify(continuation=[]), meta, quant="q4_k_m", converted=False, seconds=1.0)
    assert silent["failed_because"] == "generated no token for any prompt"


@pytest.mark.parametrize("method", ["dpo", "kto", "reward", "grpo"])
def test_each_template_refuses_a_config_with_an_env_block(method, tmp_path: Path):
    data = write_jsonl(tmp_path / "d.jsonl", pairs(2))
    config = RunConfig.model_validate({"model": str(tmp_path), "method": method, "dataset": {"path": str(data)}})
    cfg = json.loads(config.model_dump_json())
    cfg["env"] = {"HF_TOKEN": "stolen"}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg))
    out = subprocess.run([sys.executable, str(paths.template_path(method)), "--config", str(path)], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown config keys ['env']" in out.stderr
    assert "stolen" not in out.stdout + out.stderr


# ---- GRPO reward functions ------------------------------------------------------------------------
def test_format_reward_wants_a_think_block_then_an_answer_by_default():
    grpo = load_template("grpo")
    scores = grpo.format_reward(["<think>2+2 is 4</think> The answer is 4.", "The answer is 4.",
                                 "Sure. <think>hm</think> 4", "<think>no answer after it</think>"])
    assert scores == [1.0, 0.0, 0.5, 0.0]


def test_format_reward_follows_the_rows_own_regex_or_json_format():
    grpo = load_template("grpo")
    completions = ["ID-42", "my id is ID-42", '```json\n{"a": 1}\n```', "{'a': 1}", '{"a": 1}']
    regex = grpo.format_reward(completions[:2], format_regex=[r"ID-\d+", r"ID-\d+"])
    assert regex == [1.0, 0.5]  # whole answer vs. only somewhere inside it
    as_json = grpo.format_reward(completions[2:], format=["json", "JSON", "json"])
    assert as_json == [1.0, 0.0, 1.0]


def test_length_reward_peaks_at_the_target_length_in_tokens():
    grpo = load_template("grpo")
    ids = [[1] * 10, [1] * 5, [1] * 20, [1] * 30]
    scores = grpo.length_reward(["x"] * 4, completion_ids=ids, default_target=10)
    assert scores == [1.0, 0.5, 0.0, 0.0]
    per_row = grpo.length_reward(["x", "x"], completion_ids=[[1] * 5] * 2, target_length=[5, None], default_target=10)
    assert per_row == [1.0, 0.5]


def test_exact_match_and_accuracy_compare_final_answers_with_the_reference():
    grpo = load_template("grpo")
    completions = ["<think>6*7</think><answer>42</answer>", "So the total is \\boxed{1,000}.",
                   "We get 40 then 42.\n#### 42.0", "I think it is 41.", "The capital is Paris."]
    refs = ["42", "1000", "Natalia sold 48/2 = 24 clips...\n#### 42", "42", "paris"]
    assert grpo.exact_match_reward(completions, answer=refs) == [1.0, 1.0, 1.0, 0.0, 0.0]
    # accuracy is lenient: the last number of the final answer, or the reference as whole words inside it
    assert grpo.accuracy_reward(completions, solution=refs) == [1.0, 1.0, 1.0, 0.0, 1.0]
    assert grpo.accuracy_reward(["It is 42"], answer=["42"]) == [1.0]
    assert grpo.accuracy_reward(["It is 420"], answer=["42"]) == [0.0]
    assert grpo.accuracy_reward(["Parisian food"], answer=["Paris"]) == [0.0]
    # a row without a reference gets no verdict (TRL ignores None), not a zero
    assert grpo.exact_match_reward(["42"], answer=[None]) == [None]


def test_conversational_completions_are_scored_by_their_text():
    grpo = load_template("grpo")
    turn = [[{"role": "assistant", "content": "<think>ok</think>Answer: 7"}]]
    assert grpo.format_reward(turn) == [1.0]
    assert grpo.exact_match_reward(turn, answer=[7]) == [1.0]


def test_an_unknown_reward_name_stops_the_run_listing_the_known_ones(capsys):
    grpo = load_template("grpo")
    with pytest.raises(SystemExit):
        grpo.check_reward_names(["format", "bleu"])
    err = capsys.readouterr().err
    assert "'bleu'" in err and "accuracy, exact_match, format, length" in err


def test_a_batch_that_cannot_hold_whole_groups_of_completions_stops_the_run_saying_what_to_set(capsys):
    grpo = load_template("grpo")
    method_args = {"num_generations": 4, "reward_functions": ["length"]}
    grpo.check_grpo_config({"method_args": method_args, "train": {"per_device_batch_size": 2, "gradient_accumulation_steps": 2}})
    with pytest.raises(SystemExit):
        grpo.check_grpo_config({"method_args": method_args, "train": {"per_device_batch_size": 2}})
    assert "multiple of 4" in capsys.readouterr().err


def test_accuracy_without_a_reference_column_stops_the_run_naming_what_it_looks_for(capsys):
    from datasets import Dataset

    grpo = load_template("grpo")
    data = Dataset.from_dict({"prompt": ["What is 2+2?"], "level": [1]})
    with pytest.raises(SystemExit):
        grpo.build_rewards(["accuracy"], data, 64)
    err = capsys.readouterr().err
    assert "'answer'" in err and "'solution'" in err and "column_map" in err
    bad_regex = Dataset.from_dict({"prompt": ["p"], "format_regex": ["(unclosed"]})
    with pytest.raises(SystemExit):
        grpo.build_rewards(["format"], bad_regex, 64)
    assert "row 1" in capsys.readouterr().err
    funcs = grpo.build_rewards(["length", "format", "length"], bad_regex.remove_columns("format_regex"), 64)
    assert len(funcs) == 2 and funcs[0](["x"], completion_ids=[[1] * 32]) == [1.0]  # target: half of 64


def test_the_template_and_the_server_share_one_list_of_reward_names():
    from tuneforge.templates._shared.rewards import REWARD_NAMES

    assert tuple(sorted(load_template("grpo").REWARDS)) == REWARD_NAMES
    with pytest.raises(ValueError, match="bleu"):  # refused when the config is validated, before any job
        RunConfig.model_validate({"model": "a/b", "method": "grpo", "dataset": {"path": "c/d"},
                                  "method_args": {"reward_functions": ["bleu"]}})


def test_a_config_with_an_unknown_reward_stops_the_template_before_any_training(tiny_llama_dir: Path, tmp_path: Path):
    """The template's own check, for a config that reached it unvalidated (the server refuses it first)."""
    data = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "hi"}])
    config = RunConfig.model_validate({"model": str(tiny_llama_dir), "method": "grpo", "dataset": {"path": str(data)},
                                       "output_dir": str(tmp_path / "out")})
    cfg = json.loads(config.model_dump_json())
    cfg["method_args"]["reward_functions"] = ["bleu"]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(cfg))
    out = subprocess.run([sys.executable, str(paths.template_path("grpo")), "--config", str(path)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode != 0 and "bleu" in out.stderr and "format, length" in out.stderr
    events = [e for e in map(parse_event, out.stdout.splitlines()) if e]
    assert not [e for e in events if e["type"] == "progress"]


# ---- data handling (no training) ------------------------------------------------------------------
def test_preference_rows_with_string_prompts_become_chat_turns_and_implicit_rows_keep_their_conversations():
    dpo = load_template("dpo")
    explicit = dpo.to_preference({"prompt": "Q", "chosen": "good", "rejected": "bad"}, True, "Be kind.")
    assert explicit["prompt"] == [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Q"}]
    assert explicit["chosen"] == [{"role": "assistant", "content": "good"}]
    assert dpo.to_preference({"prompt": "Q", "chosen": "good", "rejected": "bad"}, False, None)["prompt"] == "Q"
    sharegpt = [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]
    implicit = dpo.to_preference({"chosen": sharegpt, "rejected": sharegpt[:1] + [{"from": "gpt", "value": "B"}]}, True, None)
    assert "prompt" not in implicit and implicit["chosen"][0] == {"role": "user", "content": "Q"}
    with pytest.raises(KeyError):
        dpo.to_preference({"prompt": "Q", "chosen": "good", "rejected": ""}, True, None)


def test_kto_reads_yes_no_labels_and_balances_the_two_kinds_of_rows():
    kto = load_template("kto")
    assert [kto.to_label(v) for v in (True, 1, "yes", "Good", 0, "no", "false")] == [True] * 4 + [False] * 3
    with pytest.raises(KeyError):
        kto.to_label("maybe")
    assert kto.balance_weights(10, 10) == (1.0, 1.0)
    assert kto.balance_weights(10, 40) == (4.0, 1.0)  # fewer desirable rows: they weigh more
    assert kto.balance_weights(40, 10) == (1.0, 3.0)  # 40 / (3 * 10) = 4/3, the top of the paper's band
    row = kto.to_unpaired({"prompt": "Q", "completion": "A", "label": "yes"}, True, None)
    assert row == {"prompt": [{"role": "user", "content": "Q"}], "completion": [{"role": "assistant", "content": "A"}], "label": True}


# ---- real training runs ---------------------------------------------------------------------------
@pytest.mark.slow
def test_a_real_dpo_run_prefers_the_chosen_answers_against_the_adapter_disabled_base(tiny_llama_dir: Path, tmp_path: Path):
    train = write_jsonl(tmp_path / "train.jsonl", pairs(16))
    # the eval pairs are implicit-prompt conversations: TRL splits off the shared prefix
    implicit = [{"chosen": [{"role": "user", "content": f"Is {i} a nice number?"}, {"role": "assistant", "content": f"Yes, {i} is lovely."}],
                 "rejected": [{"role": "user", "content": f"Is {i} a nice number?"}, {"role": "assistant", "content": "No. Bad bad bad."}]}
                for i in range(20, 24)]
    evals = write_jsonl(tmp_path / "eval.jsonl", implicit)
    done, log, events = run_job({
        "model": str(tiny_llama_dir), "method": "dpo", "dataset": {"path": str(train), "eval_path": str(evals)},
        "peft": LORA, "train": {**TRAIN, "save_steps": 4}, "method_args": {"beta": 0.1}, "max_length": 64,
        "merge": True, "eval_prompts": ["Is 3 a nice number?"], "max_new_tokens": 4,
    })
    assert done.stage == "COMPLETED", "\n".join(log[-30:])
    progress = events["progress"]
    assert [e["step"] for e in progress] == [1, 2, 3, 4] and all(e["total_steps"] == 4 for e in progress)
    assert progress[-1]["reward_accuracy"] == 1.0 and progress[-1]["loss"] < progress[0]["loss"]
    result = done.outputs["result"]
    assert COMMON_RESULT_KEYS <= set(result) and result["steps"] == 4 and result["tokens_trained"] > 0
    # before training the policy IS the reference (adapter disabled), so the DPO loss is exactly ln 2
    assert result["eval_loss_before"] == pytest.approx(math.log(2), abs=1e-4)
    assert result["eval_loss_after"] < result["eval_loss_before"]
    assert result["eval_reward_accuracy_after"] > result["eval_reward_accuracy_before"]
    assert result["rows_dropped_too_long"] == 0
    assert result["beta"] == 0.1 and result["eval_rows"] == 4 and result["reference_model"] == "base with adapter disabled"
    assert [set(s) for s in result["samples"]] == [{"prompt", "before", "after"}]
    out = Path(done.outputs["output_dir"])
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "merged" / "config.json").is_file()
    assert (out / "checkpoints" / "checkpoint-4").is_dir()
    assert str(tiny_llama_dir) in (out / "README.md").read_text()
    assert (Path(done.job_dir) / "dpo.py").read_bytes() == paths.template_path("dpo").read_bytes()
    for rel in support_files(paths.templates_dir()):  # the helpers it imports travel next to it
        assert (Path(done.job_dir) / rel).read_bytes() == (paths.templates_dir() / rel).read_bytes()


@pytest.mark.slow
def test_a_real_kto_run_learns_from_thumbs_up_and_down_rows_under_other_column_names(tiny_llama_dir: Path, tmp_path: Path):
    rows = []
    for i in range(12):
        rows.append({"question": f"Is {i} a nice number?", "answer": f"Yes, {i} is lovely.", "thumbs_up": "yes"})
        rows.append({"question": f"Is {i} a nice number?", "answer": "No. Bad bad bad.", "thumbs_up": "no"})
    train = write_jsonl(tmp_path / "train.jsonl", rows[:20])
    evals = write_jsonl(tmp_path / "eval.jsonl", rows[20:])
    done, log, events = run_job({
        "model": str(tiny_llama_dir), "method": "kto", "max_length": 64, "peft": LORA, "train": TRAIN,
        "dataset": {"path": str(train), "eval_path": str(evals),
                    "column_map": {"prompt": "question", "completion": "answer", "label": "thumbs_up"}},
    })
    assert done.stage == "COMPLETED", "\n".join(log[-30:])
    assert [e["step"] for e in events["progress"]] == [1, 2, 3, 4]
    result = done.outputs["result"]
    assert COMMON_RESULT_KEYS <= set(result)
    assert (result["desirable_rows"], result["undesirable_rows"]) == (10, 10)
    assert result["eval_loss_after"] < result["eval_loss_before"]
    assert result["eval_reward_margin_after"] > result["eval_reward_margin_before"]
    assert (Path(result["adapter_dir"]) / "adapter_config.json").is_file()
    assert "KTOTrainer" in (Path(done.outputs["output_dir"]) / "README.md").read_text()


@pytest.mark.slow
def test_a_real_reward_model_run_trains_a_score_head_that_ranks_chosen_above_rejected(tiny_llama_dir: Path, tmp_path: Path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    train = write_jsonl(tmp_path / "train.jsonl", pairs(16))
    evals = write_jsonl(tmp_path / "eval.jsonl", pairs(24)[16:])
    done, log, events = run_job({
        "model": str(tiny_llama_dir), "method": "reward", "max_length": 64, "peft": LORA, "train": TRAIN, "merge": True,
        "dataset": {"path": str(train), "eval_path": str(evals)},
    })
    assert done.stage == "COMPLETED", "\n".join(log[-30:])
    assert [e["step"] for e in events["progress"]] == [1, 2, 3, 4] and "accuracy" in events["progress"][0]
    result = done.outputs["result"]
    assert COMMON_RESULT_KEYS <= set(result) and {"eval_accuracy_before", "eval_accuracy_after"} <= set(result)
    assert result["eval_accuracy_after"] == 1.0 and result["eval_loss_after"] < result["eval_loss_before"]
    # the merged folder is a working one-score classifier that prefers the chosen answer
    merged = Path(result["merged_dir"])
    tok = AutoTokenizer.from_pretrained(merged)
    model = AutoModelForSequenceClassification.from_pretrained(merged)
    assert model.config.num_labels == 1 and model.config.pad_token_id == tok.pad_token_id

    def score(answer: str) -> float:
        text = tok.apply_chat_template([{"role": "user", "content": "Is 99 a nice number?"},
                                        {"role": "assistant", "content": answer}], tokenize=False)
        with torch.no_grad():
            return model(**tok(text, return_tensors="pt", add_special_tokens=False)).logits[0, 0].item()

    assert score("Yes, 99 is lovely.") > score("No. Bad bad bad.")


@pytest.mark.slow
def test_a_real_grpo_run_scores_sampled_completions_with_the_rows_own_columns(tiny_llama_dir: Path, tmp_path: Path):
    rows = [{"question": f"What is {i} + {i}?", "solution": f"{i} + {i} = {2 * i}\n#### {2 * i}", "format_regex": r"(?s).*"}
            for i in range(8)]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    evals = write_jsonl(tmp_path / "eval.jsonl", rows[:2])
    done, log, events = run_job({
        "model": str(tiny_llama_dir), "method": "grpo", "max_length": 64, "peft": LORA,
        "train": {**TRAIN, "max_steps": 3, "per_device_batch_size": 2},
        "dataset": {"path": str(train), "eval_path": str(evals), "column_map": {"prompt": "question"}},
        "method_args": {"num_generations": 2, "max_completion_length": 8,
                        "reward_functions": ["format", "length", "accuracy"]},
    })
    assert done.stage == "COMPLETED", "\n".join(log[-30:])
    progress = events["progress"]
    assert [e["step"] for e in progress] == [1, 2, 3]
    assert all(e["reward_format"] == 1.0 for e in progress)  # each row's format_regex reached the reward function
    result = done.outputs["result"]
    history = result["log_history"]
    assert len(history) == 3 and all("reward" in h and "rewards/accuracy_reward/mean" in h for h in history)
    assert all(h["rewards/accuracy_reward/mean"] is not None for h in history)  # the solution column was read
    assert all(h["completions/max_length"] <= 8 for h in history)
    assert COMMON_RESULT_KEYS <= set(result) and result["tokens_trained"] > 0
    assert result["reward_before"] is not None and result["reward_after"] is not None  # held-out mean reward
    assert set(result["rewards_after"]) == {"format", "length", "accuracy"}
    assert result["num_generations"] == 2 and result["reward_functions"] == ["format", "length", "accuracy"]
    assert (Path(result["adapter_dir"]) / "adapter_config.json").is_file()
