"""Forgetting, checked (issue 12 item 4): lm-evaluation-harness on base and tuned, the change per benchmark.

The real harness runs offline on a local task (tests/data/lm_eval_tasks: 10 multiple-choice rows in a
jsonl) with the tiny Llama as base and a random LoRA adapter on it as tuned (run as peft=ADAPTER).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tuneforge import benchmarks as bm
from tuneforge.actions.benchmark import compare_benchmarks, resolve_models
from tuneforge.errors import TuneforgeError
from tuneforge.reports.benchmarks import BenchmarkModel, BenchmarkScore, ModelBenchmarks

TASKS = Path(__file__).parent / "data" / "lm_eval_tasks"
TASK = "tuneforge_tiny_mc"
needs_lm_eval = pytest.mark.skipif(bm.lm_eval_version() is None, reason="lm-eval not installed (the eval extra)")


@pytest.fixture(scope="module")
def tiny_adapter(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter with random (non-zero) weights on the tiny Llama: a 'tuned' model that answers differently."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj", "down_proj"],
                                                  init_lora_weights=False))
    out = tmp_path_factory.mktemp("adapter") / "adapter"
    peft_model.save_pretrained(str(out))
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_llama_dir)
    return out


def score(benchmark: str, value: float, stderr: float | None = 0.1, metric: str = "acc") -> BenchmarkScore:
    return BenchmarkScore(benchmark=benchmark, metric=metric, value=value, stderr=stderr, higher_is_better=True)


def test_change_is_tuned_minus_base_and_worse_marks_a_loss():
    base = ModelBenchmarks(model=BenchmarkModel(label="base", pretrained="b"), seconds=1,
                           scores=[score("arc_easy", 0.6), score("gsm8k", 0.2, metric="exact_match")])
    tuned = ModelBenchmarks(model=BenchmarkModel(label="tuned", pretrained="b", peft="a"), seconds=1,
                            scores=[score("arc_easy", 0.5), score("gsm8k", 0.3, metric="exact_match")])
    changes = {c.benchmark: c for c in bm.compare([base, tuned])}
    assert changes["arc_easy"].change == pytest.approx(-0.1) and changes["arc_easy"].worse is True
    assert changes["gsm8k"].change == pytest.approx(0.1) and changes["gsm8k"].worse is False
    assert changes["arc_easy"].stderr == pytest.approx((0.1 ** 2 * 2) ** 0.5)
    assert {c.label for c in changes.values()} == {"tuned"}


def test_parse_results_reads_metrics_filters_and_stderr():
    data = {"results": {"gsm8k": {"alias": "gsm8k", "exact_match,strict-match": 0.25, "exact_match_stderr,strict-match": 0.05,
                                  "exact_match,flexible-extract": 0.3, "exact_match_stderr,flexible-extract": "N/A"}},
            "higher_is_better": {"gsm8k": {"exact_match": True}}, "n-samples": {"gsm8k": {"original": 1319, "effective": 20}}}
    scores = {s.filter: s for s in bm.parse_results(data, ["gsm8k"])}
    assert scores["strict-match"].value == 0.25 and scores["strict-match"].stderr == 0.05
    assert scores["flexible-extract"].stderr is None and scores["flexible-extract"].samples == 20
    assert scores["strict-match"].metric == "exact_match" and scores["strict-match"].higher_is_better is True


@needs_lm_eval
def test_known_benchmarks_include_the_usual_ones_and_the_local_task():
    known = bm.known_benchmarks(TASKS)
    assert {"hellaswag", "arc_easy", "gsm8k", "mmlu", TASK} <= known
    assert "lm_eval" not in sys.modules  # names are read from the YAML files, the harness is never imported here


@needs_lm_eval
def test_unknown_benchmark_is_refused_with_its_code_before_any_model_loads(tiny_adapter: Path):
    with pytest.raises(TuneforgeError) as err:
        compare_benchmarks([tiny_adapter], "hellaswag,helaswag", task_dir=TASKS)
    assert err.value.code == "eval.unknown_benchmark"
    assert err.value.details["unknown"] == ["helaswag"] and "hellaswag" in err.value.fix


def test_no_benchmarks_and_nothing_to_compare_are_refused(tiny_llama_dir: Path):
    with pytest.raises(TuneforgeError) as err:
        bm.parse_benchmarks(" , ")
    assert err.value.code == "eval.no_benchmarks"
    with pytest.raises(TuneforgeError) as err:
        resolve_models([tiny_llama_dir])
    assert err.value.code == "eval.nothing_to_compare"
    with pytest.raises(TuneforgeError) as err:
        resolve_models(["not a model"])
    assert err.value.code == "eval.model_not_found"


def test_a_lone_adapter_gets_its_base_in_front(tiny_adapter: Path, tiny_llama_dir: Path):
    base, tuned = resolve_models([tiny_adapter])
    assert (base.label, base.pretrained, base.peft) == ("base", str(tiny_llama_dir.resolve()), None)
    assert tuned.pretrained == str(tiny_llama_dir.resolve()) and tuned.peft == str(tiny_adapter.resolve())
    cmd = bm.harness_command(tuned, [TASK], Path("/tmp/x"), limit=10, task_dir=TASKS)
    assert cmd[cmd.index("--model_args") + 1] == f"pretrained={tiny_llama_dir.resolve()},peft={tiny_adapter.resolve()}"
    assert cmd[cmd.index("--include_path") + 1] == str(TASKS) and cmd[cmd.index("--limit") + 1] == "10"


def test_missing_harness_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    real = bm.importlib.util.find_spec
    monkeypatch.setattr(bm.importlib.util, "find_spec", lambda name, *a: None if name == "lm_eval" else real(name, *a))
    with pytest.raises(TuneforgeError) as err:
        bm.require_lm_eval()
    assert err.value.code == "eval.lm_eval_missing" and "tuneforge[eval]" in err.value.fix


@needs_lm_eval
@pytest.mark.slow
def test_harness_failure_carries_its_last_error_line(tmp_path: Path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no_such_architecture"}')
    with pytest.raises(TuneforgeError) as err:
        bm.run_one(bm.model_of(broken), [TASK], tmp_path / "work", limit=2, task_dir=TASKS, timeout_s=300)
    assert err.value.code == "eval.benchmark_failed"
    assert "broken" in err.value.message and err.value.details["cause"]
    print(err.value.message)


@needs_lm_eval
@pytest.mark.slow
def test_real_harness_base_and_tuned_side_by_side(tiny_adapter: Path, tiny_llama_dir: Path):
    report = compare_benchmarks([tiny_adapter], [TASK], limit=10, task_dir=TASKS, batch_size=4, device="cpu", timeout_s=500)
    assert [m.model.label for m in report.models] == ["base", "adapter"]
    assert report.models[1].model.peft == str(tiny_adapter.resolve())
    base, tuned = (m.score(TASK, "acc") for m in report.models)
    assert base is not None and tuned is not None and base.samples == tuned.samples == 10
    assert 0 <= base.value <= 1 and base.stderr is not None
    (change,) = [c for c in report.changes if c.benchmark == TASK and c.metric == "acc"]
    assert change.change == pytest.approx(tuned.value - base.value)
    assert (change.base, change.tuned, change.base_label, change.label) == (base.value, tuned.value, "base", "adapter")
    assert report.lm_eval_version and report.benchmarks == [TASK] and report.limit == 10
