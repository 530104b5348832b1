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
