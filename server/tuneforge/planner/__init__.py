"""The planner: hardware, memory, time, cost and timeout for a fine-tuning run, with its working shown.

    from tuneforge.planner import plan
    p = plan("Qwen/Qwen3-0.6B", method="dpo", dataset="prefs.jsonl", backend="hf")
    p.flavor, p.memory_gb.total, p.hours, p.cost_usd, p.timeout

Light on purpose: nothing here imports torch or transformers (the MCP server imports it at start-up).
"""

from __future__ import annotations

from typing import Any

from ..reports.plan import MemoryBreakdown
from ..reports.plan import Alternative, Calibration, Plan

_CORE = ("PlanRequest", "build_plan", "plan", "plan_for_config")


def __getattr__(name: str) -> Any:
    # The planning pipeline loads on first use, so importing the Plan types stays fast (MCP start-up).
    if name in _CORE:
        from . import core

        for n in _CORE:
            globals()[n] = getattr(core, n)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["plan", "plan_for_config", "build_plan", "Plan", "PlanRequest", "MemoryBreakdown", "Alternative", "Calibration"]
