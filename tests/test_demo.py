"""The offline demo, end to end, exactly as the README runs it: one slow test (minutes)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from tuneforge.actions.demo import parse_answer, score_answer, score_answers


def test_answers_score_only_in_the_taught_format_with_the_right_team():
    expected = {"category": "billing", "urgency": "high", "team": "finance"}
    assert score_answer('{"category": "billing", "urgency": "high", "team": "finance"}', expected) == (True, True)
    assert score_answer('Sure! {"category": "shipping", "urgency": "low", "team": "logistics"}', expected) == (True, False)
    assert score_answer('{"category": "billing", "urgency": "high", "team": "logistics"}', expected) == (False, False)
    assert score_answer("I'm sorry to hear about your billing issue.", expected) == (False, False)
    assert parse_answer("{not json}") is None
    assert score_answers([], []) == (0.0, 0.0)


@pytest.mark.slow
def test_the_demo_trains_offline_and_the_model_visibly_learns(tuneforge_cli, smollm2_dir, tuneforge_home):
    # reuse the converted base model from the test cache instead of converting it again
    shutil.copytree(smollm2_dir, tuneforge_home / "models" / smollm2_dir.name)
    out = subprocess.run([*tuneforge_cli, "demo", "--json"], capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert set(result) >= {"job_id", "before", "after", "seconds"}
    assert result["after"]["eval_loss"] < result["before"]["eval_loss"]
    assert result["after"]["score"] - result["before"]["score"] >= 0.5
    status = json.loads(subprocess.run([*tuneforge_cli, "jobs", "status", result["job_id"], "--json"],
                                       capture_output=True, text=True).stdout)
    assert status["stage"] == "COMPLETED" and status["backend"] == "local"
