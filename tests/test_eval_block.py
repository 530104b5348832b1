"""The eval block: metrics (templates/_shared/metrics.py), the config's `eval` block, and every method's
template scoring held-out prompts greedily before and after training (result.json, model card, status)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from tuneforge.config import RunConfig
from tuneforge.errors import ConfigError
from tuneforge.jobs.service import JobService
from tuneforge.mcp.results import compact_outputs
from tuneforge.templates._shared import metrics as M


def test_each_metric_scores_an_answer_against_its_reference():
    assert M.exact_match("  Paris ", "paris") == 1.0 and M.exact_match("Paris.", "paris") == 0.0
    assert M.contains("The answer is 42.", "42") == 1.0 and M.contains("no", "42") == 0.0
    assert M.contains("ok then", None, text="OK") == 1.0
    assert M.regex("ticket #123", None, pattern=r"#\d+") == 1.0 and M.regex("x", None, pattern="(") == 0.0
    ref = '{"category": "billing", "urgency": "high"}'
    assert M.json_fields('Sure: {"category": "billing", "urgency": "low"}', ref) == 0.5
    assert M.json_fields('```json\n{"category": "Billing"}\n```', ref, fields=["category"]) == 1.0
    assert M.json_fields("not json", ref) == 0.0 and M.json_fields("{}", "plain text") is None
    assert M.rouge_l("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    assert 0.0 < M.rouge_l("the cat sat", "the cat sat on the mat") < 1.0
    assert M.rouge_l("dog", "cat") == 0.0


def test_the_fallback_rouge_l_is_the_lcs_f1():
    a, r = "a b c d".split(), "a c d e f".split()
    lcs = M.lcs_length(a, r)
    p, rec = lcs / len(a), lcs / len(r)
    assert lcs == 3 and M.rouge_l("a b c d", "a c d e f") == pytest.approx(2 * p * rec / (p + rec))


def test_scores_aggregate_to_one_mean_per_metric_leaving_out_unscored_rows():
    specs = ["exact_match", {"name": "json_fields", "label": "json"}, "contains"]
    per_row = M.score_answers(specs, ["a", "{\"x\": 1}", "c"], ["a", "{\"x\": 1}", None])
    assert per_row["exact_match"] == [1.0, 1.0, None]
    assert M.aggregate(per_row) == {"exact_match": 1.0, "json": 1.0, "contains": 1.0}  # no reference, no score
    assert M.perplexity([math.log(4) * 2, None], [2, 0]) == pytest.approx(4.0)
    assert M.perplexity([None], [0]) is None


def test_prompts_and_references_come_from_named_or_known_columns_or_messages():
    rows = [{"question": "q1", "gold": "g1"}, {"prompt": "p2", "answer": "a2"},
            {"messages": [{"role": "user", "content": "u3"}, {"role": "assistant", "content": "r3"}]}]
    assert M.prompts_and_references(rows[:1], "question", "gold")[:2] == (["q1"], ["g1"])
    assert M.prompts_and_references(rows[1:], None, None)[:2] == (["p2", "u3"], ["a2", "r3"])


def test_unknown_metrics_are_named_with_the_choices_and_reward_names_come_from_rewards_py():
    assert M.unknown_metrics(["exact_match", "reward:accuracy", "reward:nope", "bleu"]) == ["reward:nope", "bleu"]
    assert "reward:format" in M.metric_choices()


def test_the_config_eval_block_validates_metrics_and_keeps_eval_prompts(tmp_path: Path):
    held = tmp_path / "held.jsonl"
    held.write_text('{"prompt": "p", "reference": "r"}\n')
    cfg = RunConfig.from_dict({"model": "a/b", "dataset": {"path": "c/d"}, "eval_prompts": ["hi"],
                               "eval": {"path": str(held), "metrics": ["exact_match", {"name": "regex", "pattern": "r"}]}})
    assert cfg.eval.path == str(held.resolve()) and cfg.eval_prompts == ["hi"]
    assert RunConfig.from_dict({"model": "a/b", "dataset": {"path": "c/d"}}).eval is None
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict({"model": "a/b", "dataset": {"path": "c/d"}, "eval": {"metrics": ["bleu"]}})
    assert "bleu" in err.value.message and "rouge_l" in err.value.message


def test_the_model_card_table_and_the_compact_status_show_before_and_after():
    block = {"rows": 2, "source": "h.jsonl", "before": {"exact_match": 0.0, "eval_loss": 2.5},
             "after": {"exact_match": 1.0, "eval_loss": 0.5},
             "samples": [{"prompt": "p", "reference": "r", "before": "x", "after": "r"}]}
    lines = M.markdown_table(block)
    assert "| exact_match | 0 | 1 |" in lines and "| eval_loss | 2.5 | 0.5 |" in lines and "- after: r" in lines
    compact = compact_outputs({"result": {"eval": block, "train_loss": 1.0}}, "j")
    assert compact["result"]["eval"] == {k: block[k] for k in ("rows", "source", "before", "after")}


# ---- the five methods, one or two steps each, on the tiny model ----------------------------------------
LORA = {"kind": "lora", "r": 8, "alpha": 16, "dropout": 0.0}
TRAIN = {"learning_rate": 5e-3, "max_steps": 2, "per_device_batch_size": 4, "logging_steps": 1,
         "warmup_ratio": 0.0, "lr_scheduler": "constant"}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.slow
def test_every_method_runs_its_eval_block_before_and_after_training(tiny_llama_dir: Path, tmp_path: Path):
    held = write_jsonl(tmp_path / "held.jsonl", [{"prompt": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(3)])
    pairs = [{"prompt": f"Is {i} a nice number?", "chosen": f"Yes, {i} is lovely.", "rejected": "No. Bad."} for i in range(12)]
    kto = [{"prompt": p["prompt"], "completion": c, "label": lab} for p in pairs[:6]
           for c, lab in ((p["chosen"], True), (p["rejected"], False))]
    sft = [{"messages": [{"role": "user", "content": f"What is {i} + {i}?"}, {"role": "assistant", "content": str(2 * i)}]}
           for i in range(12)]
    grpo = [{"prompt": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(8)]
    metrics = ["exact_match", "contains", "rouge_l", "perplexity", {"name": "regex", "pattern": r"\d"},
               {"name": "json_fields", "fields": ["a"]}, "reward:accuracy"]
    runs = {
        "sft": ({"path": str(write_jsonl(tmp_path / "sft.jsonl", sft[:8])), "eval_path": str(write_jsonl(tmp_path / "sfte.jsonl", sft[8:]))}, {}, "eval_loss"),
        "dpo": ({"path": str(write_jsonl(tmp_path / "dpo.jsonl", pairs[:8])), "eval_path": str(write_jsonl(tmp_path / "dpoe.jsonl", pairs[8:]))}, {}, "preference_accuracy"),
        "kto": ({"path": str(write_jsonl(tmp_path / "kto.jsonl", kto[:8])), "eval_path": str(write_jsonl(tmp_path / "ktoe.jsonl", kto[8:]))}, {}, "eval_loss"),
        "reward": ({"path": str(write_jsonl(tmp_path / "rw.jsonl", pairs[:8])), "eval_path": str(write_jsonl(tmp_path / "rwe.jsonl", pairs[8:]))}, {}, "preference_accuracy"),
        "grpo": ({"path": str(write_jsonl(tmp_path / "g.jsonl", grpo[:6])), "eval_path": str(write_jsonl(tmp_path / "ge.jsonl", grpo[6:]))},
                 {"num_generations": 2, "max_completion_length": 8, "reward_functions": ["accuracy"]}, "mean_reward"),
    }
    service = JobService()
    jobs = {}
    for method, (dataset, margs, own) in runs.items():
        train = dict(TRAIN, per_device_batch_size=2) if method == "grpo" else TRAIN
        cfg = RunConfig.model_validate({
            "model": str(tiny_llama_dir), "method": method, "dataset": dataset, "peft": LORA, "train": train,
            "max_length": 64, "max_new_tokens": 4, "method_args": margs, "output_dir": str(tmp_path / method),
            "eval": {"path": str(held), "metrics": metrics, "max_new_tokens": 4}})
        jobs[method] = service.submit_training(cfg).job_id
    for method, job_id in jobs.items():
        done = service.wait(job_id, timeout=900, poll_seconds=0.5)
        assert done.stage == "COMPLETED", (method, "\n".join(service.logs(job_id, tail=30)))
        result = done.outputs["result"]
        ev = result["eval"]
        own = runs[method][2]
        assert ev["before"][own] is not None and ev["after"][own] is not None, (method, ev)
        if method == "reward":  # a reward model scores conversations: only its own metrics
            assert set(ev["before"]) == {"eval_loss", "preference_accuracy"}
        else:
            assert {"exact_match", "contains", "rouge_l", "perplexity", "regex", "json_fields", "reward:accuracy"} <= set(ev["after"])
            assert ev["rows"] == 3 and ev["after"]["perplexity"] > 0
            assert [set(s) for s in ev["samples"]] == [{"prompt", "reference", "before", "after"}] * 3
            assert "_rows" not in ev
        card = (Path(done.outputs["output_dir"]) / "README.md").read_text()
        assert "## Evaluation" in card and f"| {own} |" in card and "## Provenance" in card
        assert f"local folder {tiny_llama_dir.resolve()}" in card and "sha256" in card and "transformers " in card
        prov = result["provenance"]
        assert prov["rows_after_filtering"]["train"] == result["train_rows"]
        assert all(len(f["sha256"]) == 64 for f in prov["dataset_files"])
