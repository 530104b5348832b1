"""The offline demo, end to end, exactly as the README runs it: one slow test (minutes).

The data and the scoring are tested without a model in tests/test_demo_data.py."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from tuneforge.actions.demo import demo_config, load_heldout

FIELDS = {"eval_loss", "score", "category_accuracy", "urgency_accuracy", "team_accuracy"}


def test_the_demo_answers_every_held_out_ticket_before_and_after(tmp_path):
    heldout = load_heldout()
    config = demo_config(str(tmp_path))
    assert config.eval_prompts == [h["prompt"] for h in heldout] and len(heldout) >= 48
    assert config.dataset.eval_path.endswith("eval.jsonl") and config.train.max_steps == 60


@pytest.mark.slow
def test_the_demo_trains_offline_and_the_model_visibly_learns(tuneforge_cli, smollm2_dir, tuneforge_home):
    # reuse the converted base model from the test cache instead of converting it again
    shutil.copytree(smollm2_dir, tuneforge_home / "models" / smollm2_dir.name)
    out = subprocess.run([*tuneforge_cli, "demo", "--json"], capture_output=True, text=True, timeout=1500, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert set(result) >= {"job_id", "before", "after", "seconds", "heldout_tickets", "heldout_phrasings"}
    assert set(result["before"]) >= FIELDS and set(result["after"]) >= FIELDS
    assert result["heldout_tickets"] >= 48 and result["heldout_phrasings"] >= 16
    assert result["after"]["eval_loss"] < result["before"]["eval_loss"]
    assert result["after"]["score"] > result["before"]["score"]
    assert result["after"]["team_accuracy"] - result["before"]["team_accuracy"] >= 0.5
    status = json.loads(subprocess.run([*tuneforge_cli, "jobs", "status", result["job_id"], "--json"],
                                       capture_output=True, text=True, check=False).stdout)
    assert status["stage"] == "COMPLETED" and status["backend"] == "local"
