"""The preferences stage's template on the tiny Llama: sampled answers scored by a GRPO reward become
chosen/rejected pairs with their margin, which the doctor accepts for DPO (pipelines/preferences.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tuneforge import paths
from tuneforge.jobs.workspace import stage_template
from tuneforge.pipelines.preferences import preference_output
from tuneforge.records import Job


def test_sampled_answers_scored_by_a_reward_become_pairs_the_doctor_takes_for_dpo(tiny_llama_dir: Path, tmp_path: Path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Say something about {i}."}) + "\n" for i in range(4)))
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    script, _ = stage_template(paths.templates_dir() / "preferences.py", job_dir)
    config = {"model": str(tiny_llama_dir), "prompts": str(prompts), "prompt_column": "prompt", "reference_column": None,
              "samples": 4, "reward": "length", "temperature": 1.5, "max_new_tokens": 12, "min_margin": 0.0,
              "limit": None, "out": str(job_dir / "outputs")}
    (job_dir / "preferences.json").write_text(json.dumps(config))
    proc = subprocess.run([sys.executable, str(script), "--config", str(job_dir / "preferences.json")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    pairs = [json.loads(x) for x in (job_dir / "outputs" / "preferences.jsonl").read_text().splitlines()]
    assert pairs and all(p["margin"] > 0 and p["chosen"] != p["rejected"] for p in pairs)
    assert all(p["chosen_reward"] - p["rejected_reward"] == p["margin"] for p in pairs)
    assert '"type": "progress"' in proc.stdout

    job = Job(job_id="tf-prefs", backend="local", kind="preferences", job_dir=str(job_dir), created_at=time.time(),
              stage="COMPLETED")
    output = preference_output(job)  # the doctor validates the pairs for DPO, like any preference file
    assert output["source"]["dataset"].endswith("preferences.jsonl") and output["metrics"]["pairs"] == len(pairs)


def reward_adapter(base: Path, target: Path) -> Path:
    """A reward model as the reward template leaves it under LoRA: a SEQ_CLS adapter with its one-score head."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(3)
    model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=1)
    model.config.pad_token_id = AutoTokenizer.from_pretrained(str(base)).pad_token_id
    peft_model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():  # a head that tells answers apart (a fresh one scores near zero)
        for name, p in peft_model.named_parameters():
            if "score" in name:
                p.normal_(0, 1.0)
    peft_model.save_pretrained(str(target))
    return target


def test_a_reward_model_scores_the_sampled_answers(tiny_llama_dir: Path, tmp_path: Path):
    import torch
    from peft import AutoPeftModelForSequenceClassification
    from transformers import AutoTokenizer

    rm = reward_adapter(tiny_llama_dir, tmp_path / "rm")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Name a colour, {i}."}) + "\n" for i in range(3)))
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    script, _ = stage_template(paths.templates_dir() / "preferences.py", job_dir)
    config = {"model": str(tiny_llama_dir), "prompts": str(prompts), "samples": 3, "reward": "reward_model",
              "reward_model": str(rm), "temperature": 1.5, "max_new_tokens": 8, "out": str(job_dir / "outputs")}
    (job_dir / "preferences.json").write_text(json.dumps(config))
    proc = subprocess.run([sys.executable, str(script), "--config", str(job_dir / "preferences.json")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    pairs = [json.loads(x) for x in (job_dir / "outputs" / "preferences.jsonl").read_text().splitlines()]
    assert pairs

    # the reward model's own score, computed here without the template: chosen scores higher, by the margin
    model = AutoPeftModelForSequenceClassification.from_pretrained(str(rm), num_labels=1).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))

    def score(prompt: str, answer: str) -> float:
        text = tok.apply_chat_template([{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                                       tokenize=False)
        with torch.no_grad():
            return float(model(**tok(text, return_tensors="pt", add_special_tokens=False)).logits[0, 0])

    for p in pairs:
        chosen, rejected = score(p["prompt"], p["chosen"]), score(p["prompt"], p["rejected"])
        assert abs(chosen - p["chosen_reward"]) < 1e-3 and abs(rejected - p["rejected_reward"]) < 1e-3
        assert chosen > rejected and abs(p["margin"] - (chosen - rejected)) < 1e-3


def test_the_pipeline_file_checks_the_reward_before_anything_runs():
    from tuneforge.errors import ConfigError
    from tuneforge.pipelines.spec import parse_spec

    def stage(**fields):
        return {"model": "m", "stages": [{"kind": "preferences", "prompts": "p.jsonl", **fields}]}

    assert parse_spec(stage(reward_model="rm-folder")).stages[0].reward == "reward_model"
    for bad, words in ((dict(reward="lenght"), "unknown reward 'lenght'"), (dict(reward="reward_model"), "needs"),
                       (dict(reward="length", reward_model="rm"), "drop one")):
        try:
            parse_spec(stage(**bad), "p.yaml")
        except ConfigError as exc:
            assert words in exc.message and "stages.0" in exc.message and exc.code == "pipeline.invalid"
        else:
            raise AssertionError(bad)


def test_a_reward_model_that_is_neither_a_folder_nor_a_reward_job_is_refused_when_planned(tiny_llama_dir: Path, tmp_path: Path):
    from tuneforge.actions.pipeline import plan_pipeline
    from tuneforge.errors import TuneforgeError
    from tuneforge.pipelines.spec import parse_spec

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "Hi"}) + "\n")
    spec = parse_spec({"model": str(tiny_llama_dir), "stages": [
        {"kind": "preferences", "prompts": str(prompts), "reward_model": "tf-nope"}, {"kind": "train", "method": "dpo"}]})
    try:
        plan_pipeline(spec)
    except TuneforgeError as exc:
        assert exc.code == "pipeline.reward_model_not_found" and "tf-nope" in exc.message and "--method reward" in exc.fix
    else:
        raise AssertionError("planned with a reward model that does not exist")
