"""One resolution for plan and train (issue 18, items 1, 2, 4 and 9), through the real faces in process:
`tuneforge.cli.main([...])` and the MCP server in memory.

plan and train take the same flags and choose the same peft, backend and hyperparameters; a submitted job
records the plan it runs under; submit refuses, before any job exists, what would fail at run time (missing
paths, bad or missing column maps, GRPO without rewards); a plan shows rows before and after the hold-out,
the same bytes per parameter for the same precision on every device, and a guessed size as a guess.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_main import run_main
from mcp_client import in_memory
from tuneforge.config.overrides import parse_column_map
from tuneforge.errors import ConfigError
from tuneforge.records import JobStore

QWEN3_06B = {
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 1024, "intermediate_size": 3072,
    "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
    "vocab_size": 151936, "tie_word_embeddings": True,
}


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def code_of(done) -> str:
    return json.loads(done.stdout)["code"]


@pytest.fixture
def qwen3_dir(tmp_path: Path) -> str:
    d = tmp_path / "Qwen3-0.6B"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(QWEN3_06B), encoding="utf-8")
    return str(d)


@pytest.fixture
def math_prompts(tmp_path: Path) -> str:
    return write_jsonl(tmp_path / "math.jsonl", [{"prompt": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(16)])


@pytest.fixture
def renamed_prefs(tmp_path: Path) -> str:
    return write_jsonl(tmp_path / "prefs.jsonl", [{"question": f"Is {i} nice?", "good_response": f"Yes, {i} is nice.",
                                                   "bad_response": "No."} for i in range(12)])


# ---- 1: one set of defaults; the job runs under the plan -----------------------------------------------
def test_a_job_submitted_with_the_plans_flags_records_that_plan_field_by_field(
        capsys: pytest.CaptureFixture[str], tiny_llama_dir: Path, math_prompts: str) -> None:
    flags = ["--model", str(tiny_llama_dir), "--method", "grpo", "--dataset", math_prompts, "--max-steps", "1",
             "--peft", "auto", "--batch-size", "2", "--num-generations", "2", "--max-completion-length", "8",
             "--max-length", "64"]
    planned = run_main(capsys, "plan", *flags, "--json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["backend"] == "local"  # the one default backend, as train's
    assert plan["reward_functions"] == ["accuracy"] and any("accuracy" in n for n in plan["notes"])

    submitted = run_main(capsys, "train", *flags, "--json")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    result = json.loads(submitted.stdout)
    try:
        assert any("accuracy" in w and "answer" in w for w in result["warnings"])  # the answer says which reward
        job = JobStore().get(result["job_id"])
        recorded = job.plan.model_dump(mode="json")
        assert set(recorded) == set(plan)
        differ = {k: (plan[k], recorded[k]) for k in plan if k != "warnings" and plan[k] != recorded[k]}
        assert not differ, differ
        assert [w for w in recorded["warnings"] if "free now" not in w] == [w for w in plan["warnings"] if "free now" not in w]
        # peft auto was resolved into the config the job runs with, as the plan chose
        assert job.config.peft.kind == plan["peft"] != "auto"
        assert job.config.method_args.reward_functions == ["accuracy"]
        assert job.config.timeout_seconds == plan["timeout_seconds"]
    finally:
        run_main(capsys, "jobs", "cancel", result["job_id"], "--json")


def test_plan_takes_train_s_config_file_and_flags(capsys: pytest.CaptureFixture[str], qwen3_dir: str,
                                                  smollm2_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {qwen3_dir}\ntrain: {{per_device_batch_size: 2, max_steps: 7}}\npeft: {{kind: qlora}}\n")
    out = run_main(capsys, "plan", "--config", str(config), "--rows", "100", "--backend", "hf", "--lora-r", "8", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    p = json.loads(out.stdout)
    assert (p["batch_size"], p["max_steps"], p["peft"], p["lora_r"]) == (2, 7, "qlora", 8)
    # the defaults are RunConfig's for both commands: LoRA, the local backend
    default = json.loads(run_main(capsys, "plan", "--model", str(smollm2_dir), "--rows", "100", "--max-length", "256",
                                  "--json").stdout)
    assert (default["peft"], default["backend"]) == ("lora", "local")
    from tuneforge.actions.resolve import DEFAULT_BACKEND
    from tuneforge.cli.train import DEFAULT_BACKEND as CLI_DEFAULT

    assert CLI_DEFAULT == DEFAULT_BACKEND


def test_peft_auto_that_chooses_a_full_fine_tune_also_chooses_its_learning_rate(qwen3_dir: str) -> None:
    from tuneforge.actions.resolve import FULL_FINETUNE_LR, resolve_run
    from tuneforge.config.overrides import planning_config

    config, given = planning_config({"model": qwen3_dir, "peft": {"kind": "auto"}}, source="test")
    resolved = resolve_run(config, backend="hf", submit=False, dataset_given=given, rows=1000)
    assert resolved.plan.peft == "none" == resolved.config.peft.kind
    assert resolved.config.train.learning_rate == FULL_FINETUNE_LR
    config, given = planning_config({"model": qwen3_dir, "peft": {"kind": "auto"}, "train": {"learning_rate": 1e-4}},
                                    source="test")
    assert resolve_run(config, backend="hf", submit=False, dataset_given=given, rows=1000).config.train.learning_rate == 1e-4


# ---- 2: submit refuses what would fail at run time, before any job exists -------------------------------
def test_the_comma_form_of_column_map_parses_as_several_entries_or_is_refused() -> None:
    assert parse_column_map(["prompt=question,chosen=good_response", "rejected=bad_response"]) == {
        "prompt": "question", "chosen": "good_response", "rejected": "bad_response"}
    for bad in (["prompt=question,chosen"], ["prompt"], ["prompt=a=b"], ["prompt=a,prompt=b"]):
        with pytest.raises(ConfigError) as exc:
            parse_column_map(bad)
        assert exc.value.code == "config.bad_column_map"


def test_column_map_mistakes_are_refused_with_the_doctors_map_before_any_job(
        capsys: pytest.CaptureFixture[str], tiny_llama_dir: Path, renamed_prefs: str) -> None:
    base = ["train", "--model", str(tiny_llama_dir), "--method", "dpo", "--dataset", renamed_prefs, "--json"]
    none = run_main(capsys, *base)
    assert none.returncode == 2 and code_of(none) == "config.column_map_required"
    fix = json.loads(none.stdout)["fix"]
    assert "--column-map prompt=question" in fix and '{"prompt": "question"' in fix
    reversed_map = run_main(capsys, *base, "--column-map", "question=prompt")
    assert reversed_map.returncode == 2 and code_of(reversed_map) == "config.column_map_reversed"
    assert "prompt=question" in json.loads(reversed_map.stdout)["fix"]
    unknown = run_main(capsys, *base, "--column-map", "prompt=questoin")
    assert code_of(unknown) == "config.column_map_unknown_column" and "question" in json.loads(unknown.stdout)["error"]
    partial = run_main(capsys, *base, "--column-map", "prompt=question")
    assert code_of(partial) == "config.column_map_required"
    assert JobStore().list() == []
    # the comma form is the whole map: accepted by the checks (planned here, not submitted)
    ok = run_main(capsys, "plan", *base[1:], "--column-map", "prompt=question,chosen=good_response,rejected=bad_response")
    assert ok.returncode == 0 and not any("column" in w for w in json.loads(ok.stdout)["warnings"])


def test_a_value_that_looks_like_a_path_and_does_not_exist_is_an_error_naming_it(
        capsys: pytest.CaptureFixture[str], tiny_llama_dir: Path, math_prompts: str) -> None:
    typo = run_main(capsys, "train", "--model", str(tiny_llama_dir), "--dataset", "mesages.jsonl", "--json")
    assert typo.returncode == 2 and code_of(typo) == "config.path_not_found"
    assert "mesages.jsonl" in json.loads(typo.stdout)["error"]
    nested = run_main(capsys, "train", "--model", "models/tiny/llama", "--dataset", math_prompts, "--json")
    assert code_of(nested) == "config.path_not_found" and "models/tiny/llama" in json.loads(nested.stdout)["error"]
    # a bare name is a Hub id: offline and not cached, it cannot be found, and the job is never created
    bare = run_main(capsys, "train", "--model", "SmolLM2-135M", "--dataset", math_prompts, "--method", "grpo",
                    "--reward", "length", "--json")
    assert bare.returncode == 2 and code_of(bare) == "config.model_not_found"
    assert JobStore().list() == []

    async def body(client):
        return await client.call_tool("submit_training", {"model": str(tiny_llama_dir), "dataset": "mesages.jsonl"})

    refused = in_memory(body)
    text = "\n".join(getattr(b, "text", "") for b in refused.content)
    assert refused.is_error and "config.path_not_found" in text and "mesages.jsonl" in text
    assert JobStore().list() == []


def test_plan_warnings_name_no_flag_that_train_lacks(capsys: pytest.CaptureFixture[str], qwen3_dir: str) -> None:
    out = run_main(capsys, "plan", "--model", qwen3_dir, "--dataset", "someone/not-cached-dataset", "--flavor",
                   "a10g-small", "--max-length", "128", "--batch-size", "1", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    warnings = json.loads(out.stdout)["warnings"]
    assert any("rows is unknown" in w for w in warnings) and any("a10g-small is ignored" in w for w in warnings)
    assert not [w for w in warnings if "--rows" in w or "--backend" in w or "--flavor" in w]


# ---- 4: GRPO rewards -------------------------------------------------------------------------------------
def test_grpo_without_a_reward_or_a_reference_is_refused_listing_the_choices(
        capsys: pytest.CaptureFixture[str], tiny_llama_dir: Path, tmp_path: Path) -> None:
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"Say {i}."} for i in range(12)])
    done = run_main(capsys, "train", "--model", str(tiny_llama_dir), "--method", "grpo", "--dataset", prompts, "--json")
    assert done.returncode == 2 and code_of(done) == "config.reward_required"
    fix = json.loads(done.stdout)["fix"]
    assert all(name in fix for name in ("accuracy", "exact_match", "format", "length")) and "--reward" in fix
    unknown = run_main(capsys, "train", "--model", str(tiny_llama_dir), "--method", "grpo", "--dataset", prompts,
                       "--reward", "bleu", "--json")
    assert code_of(unknown) == "config.unknown_reward" and "bleu" in json.loads(unknown.stdout)["error"]
    needs_ref = run_main(capsys, "train", "--model", str(tiny_llama_dir), "--method", "grpo", "--dataset", prompts,
                         "--reward", "accuracy", "--json")
    assert code_of(needs_ref) == "config.reward_needs_reference"
    assert JobStore().list() == []
    named = run_main(capsys, "plan", "--model", str(tiny_llama_dir), "--method", "grpo", "--dataset", prompts,
                     "--reward", "format", "--reward", "length", "--json")
    assert json.loads(named.stdout)["reward_functions"] == ["format", "length"]

    async def body(client):
        return await client.call_tool("plan_training", {"model": str(tiny_llama_dir), "method": "grpo",
                                                        "dataset": prompts, "rewards": ["bleu"]})

    refused = in_memory(body)
    assert refused.is_error and "config.unknown_reward" in refused.content[0].text
    from tuneforge import api

    with pytest.raises(ConfigError) as exc:
        api.plan(str(tiny_llama_dir), method="grpo", dataset=prompts, rewards=["bleu"])
    assert exc.value.code == "config.unknown_reward"


def test_status_shows_the_grpo_reward_before_and_after(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from tuneforge import paths
    from tuneforge.config import DatasetSpec, RunConfig
    from tuneforge.records import Job

    job_id = "tf-20260101-000000-grpo00"
    job_dir = paths.jobs_dir() / job_id
    job_dir.mkdir(parents=True)
    (job_dir / "job.log").write_text("done\n")
    now = time.time()
    JobStore().create(Job(
        job_id=job_id, backend="local", kind="train", method="grpo", stage="COMPLETED", message="done",
        job_dir=str(job_dir), config=RunConfig(model="someone/model", method="grpo", dataset=DatasetSpec(path="a/b")),
        created_at=now - 60, finished_at=now,
        outputs={"output_dir": str(job_dir), "result": {"reward_before": 0.125, "reward_after": 0.75, "train_loss": 0.1}}))
    shown = run_main(capsys, "jobs", "status", job_id)
    assert shown.returncode == 0 and "reward before -> after: 0.125 -> 0.75" in shown.stdout


# ---- 9: rows, bytes per parameter, guessed sizes ----------------------------------------------------------
def test_plan_shows_rows_before_and_after_the_eval_hold_out(capsys: pytest.CaptureFixture[str], qwen3_dir: str) -> None:
    p = json.loads(run_main(capsys, "plan", "--model", qwen3_dir, "--rows", "20000", "--backend", "hf", "--json").stdout)
    assert (p["rows"], p["train_rows"], p["eval_rows"]) == (20000, 18000, 2000)
    assert any("18000 training rows (of 20000: 2000 held out for eval" in n for n in p["notes"])
    text = run_main(capsys, "plan", "--model", qwen3_dir, "--rows", "20000", "--backend", "hf")
    assert "Rows 20,000: 18,000 train + 2,000 held out for eval" in text.stdout
    none_held = json.loads(run_main(capsys, "plan", "--model", qwen3_dir, "--rows", "20000", "--eval-fraction", "0",
                                    "--backend", "hf", "--json").stdout)
    assert (none_held["train_rows"], none_held["eval_rows"]) == (20000, 0)


def test_the_same_precision_gives_the_same_weight_bytes_on_cpu_and_gpu(capsys: pytest.CaptureFixture[str],
                                                                        smollm2_dir: Path) -> None:
    from tuneforge.planner.architecture import count_parameters
    from tuneforge.planner.hardware import local_machine
    from tuneforge.planner.memory import GiB, Workload, memory_breakdown
    from tuneforge.planner.model_source import resolve_architecture

    arch, _ = resolve_architecture(str(smollm2_dir))
    n = count_parameters(arch)
    for precision, per_param in (("bf16", 2.0), ("fp32", 4.0)):
        gpu = memory_breakdown(arch, Workload(device="cuda", precision=precision))
        assert gpu.weights == pytest.approx(n * per_param / GiB, abs=0.002)
    fp32_cpu = memory_breakdown(arch, Workload(device="cpu", precision="fp32", gradient_checkpointing=False))
    autocast = memory_breakdown(arch, Workload(device="cpu", precision="bf16", gradient_checkpointing=False))
    # CPU "bf16" is autocast over fp32 weights: fp32's bytes per weight; the bf16 casts count as activations
    assert autocast.weights == fp32_cpu.weights == pytest.approx(n * 4.0 / GiB, abs=0.002)
    if local_machine().device == "cpu":
        local = json.loads(run_main(capsys, "plan", "--model", str(smollm2_dir), "--rows", "100", "--json").stdout)
        hf = json.loads(run_main(capsys, "plan", "--model", str(smollm2_dir), "--rows", "100", "--backend", "hf",
                                 "--precision", "fp32", "--json").stdout)
        assert local["precision"] == hf["precision"] == "fp32"
        assert local["memory_gb"]["weights"] == hf["memory_gb"]["weights"]


def test_a_size_guessed_from_the_name_is_marked_in_the_headline(capsys: pytest.CaptureFixture[str]) -> None:
    p = json.loads(run_main(capsys, "plan", "--model", "nobody-here/Imaginary-7B-Chat", "--rows", "100", "--backend", "hf",
                            "--json").stdout)
    assert p["params_guessed"] is True
    text = run_main(capsys, "plan", "--model", "nobody-here/Imaginary-7B-Chat", "--rows", "100", "--backend", "hf")
    headline = " ".join(text.stdout.split("\n")[0:2])
    assert "GUESSED" in headline and "~" in headline


def test_plan_training_and_submit_training_take_the_same_arguments_with_the_same_defaults(
        tiny_llama_dir: Path, math_prompts: str) -> None:
    async def body(client):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        planned = await client.call_tool("plan_training", {"model": str(tiny_llama_dir), "method": "grpo",
                                                           "dataset": math_prompts, "peft": "auto",
                                                           "batch_size": 2, "num_generations": 2})
        return tools, planned

    tools, planned = in_memory(body)
    plan_args = tools["plan_training"].input_schema["properties"]
    submit_args = tools["submit_training"].input_schema["properties"]
    assert set(plan_args) - {"rows", "budget_usd"} == set(submit_args) - {"confirmed", "notify", "max_restarts"}  # submit-only: a secret, restarts of a running job
    for name in set(plan_args) & set(submit_args):
        assert plan_args[name].get("default") == submit_args[name].get("default"), name
    assert plan_args["backend"]["default"] == "local"
    assert not planned.is_error, planned.content[0].text
    plan = planned.structured_content
    assert plan["backend"] == "local" and plan["peft"] != "auto" and plan["reward_functions"] == ["accuracy"]
