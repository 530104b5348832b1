"""benchmarks/bench_sft.py --quick on the tiny Llama: both sides train in their own processes and the
comparison (tokens/s, peak memory, final loss, the ratio against TRL) is printed and written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_sft_benchmark_runs_both_sides_quick_and_prints_the_ratio(tiny_llama_dir, tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_sft.py"), "--quick", "--model",
                           str(tiny_llama_dir), "--json", str(out)], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"), check=False)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    table = done.stdout.split("side |", 1)[1]
    assert "trl" in table and "tuneforge" in table and "x trl" in done.stdout
    summary = json.loads(out.read_text())["summary"]
    assert set(summary) == {"trl", "tuneforge"}
    for side in summary.values():
        assert side["tokens_per_second"] > 0 and side["peak_memory_bytes"] > 0 and side["final_loss"] > 0
        assert side["tokens"] > 3 * 4 * 10  # 3 steps of 4 chat rows, non-padding tokens counted
    tf_runs = json.loads(out.read_text())["runs"]["tuneforge"]
    assert any(s.startswith("speed: padding_free=True") for s in tf_runs[0]["speed"])
