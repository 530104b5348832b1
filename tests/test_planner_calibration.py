"""`plan --calibrate`: a real canary through the SFT template on this machine, prediction beside measurement.

The issue's acceptance bar: on this CPU, for LoRA SFT of a tiny model and of SmolLM2-135M, the predicted
peak memory is within ±25% of the training process's measured peak RSS.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tuneforge.actions.calibrate import plan
from tuneforge.planner.hardware import load_calibration

WORDS = ("the model learns to answer questions about cooking travel science music history and code with short "
         "clear sentences that people can read").split()


def write_chats(path: Path, rows: int, words: int) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(rows):
            answer = " ".join(WORDS[(i * 3 + j) % len(WORDS)] for j in range(words + i % 11))
            fh.write(json.dumps({"messages": [{"role": "user", "content": f"Tell me about item {i}."},
                                              {"role": "assistant", "content": answer}]}) + "\n")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("which", ["tiny", "smollm2"])
def test_calibration_measures_peak_memory_within_25_percent_of_the_prediction(
        which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    model = request.getfixturevalue("tiny_llama_dir" if which == "tiny" else "smollm2_dir")
    data = write_chats(tmp_path / "chats.jsonl", 40, words=60)
    p = plan(str(model), dataset=str(data), backend="local", peft="lora", batch_size=2, max_length=512,
             calibrate=True, calibrate_steps=3)
    c = p.calibration
    assert c is not None, p.warnings
    assert c.device == "cpu" and c.steps == 3
    assert c.measured_peak_gb and c.measured_tokens_per_second and c.measured_tokens_per_second > 0
    assert abs(c.peak_error_pct) <= 25, c
    assert load_calibration()["cpu"]["effective_gflops"] > 0  # later local plans use the measured rate
    again = plan(str(model), dataset=str(data), backend="local", peft="lora", batch_size=2, max_length=512)
    assert "calibrated" in (again.hardware_source or "")
