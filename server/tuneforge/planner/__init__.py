"""The planner: hardware, memory, time, cost and timeout for a fine-tuning run, with its working shown.

    from tuneforge.planner import plan
    p = plan("Qwen/Qwen3-0.6B", method="dpo", dataset="prefs.jsonl", backend="hf")
    p.flavor, p.memory_gb.total, p.hours, p.cost_usd, p.timeout

Light on purpose: nothing here imports torch or transformers (the MCP server imports it at start-up).

    request.py     PlanRequest, from plan()'s options or from a RunConfig
    dataset_stats  rows and tokens per row (the dataset doctor's report; an estimate from its rows)
    model_source   the model's config.json (local, cache, Hub) -> architecture.py: parameters, shapes
    workload.py    the run the template will run: precision, checkpointing, sequence length, steps, tokens
    memory.py      peak memory per component; throughput.py: FLOPs per token, tokens/s
    hardware.py    the flavor table to plan against (live or snapshot, tuneforge.flavors) and this machine
    candidates.py  every flavor (or this machine) x PEFT: fit, time, cost
    choice.py      the cheapest that fits, why, alternatives, the budget; timeout.py: the job timeout
    explain.py     the notes and warnings; build.py: plan(), plan_for_config(), build_plan()
"""

from __future__ import annotations

from ..reports.plan import Alternative, Calibration, MemoryBreakdown, Plan
from .build import build_plan, plan, plan_for_config
from .request import PlanRequest, plan_request, request_for_config

__all__ = ["plan", "plan_for_config", "build_plan", "plan_request", "request_for_config", "Plan", "PlanRequest",
           "MemoryBreakdown", "Alternative", "Calibration"]
