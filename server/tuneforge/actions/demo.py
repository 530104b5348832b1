"""The offline demo: LoRA-fine-tune SmolLM2-135M-Instruct to triage support tickets as JSON.

It goes through exactly the path a user's job takes (config -> local backend -> job record ->
template -> result.json) and then scores the held-out prompts, which were never trained on, before
and after: a base chat model answers in prose and cannot know the in-house routing table, so the
score (share of answers that are the taught JSON with a consistent team) moves from ~0 to ~1.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Callable

from pydantic import BaseModel, Field

from .. import paths
from ..config import RunConfig
from ..errors import TuneforgeError

TEAMS = {"billing": "finance", "shipping": "logistics", "technical": "engineering", "account": "identity"}
URGENCIES = {"high", "low"}

DEMO_STEPS = 60


class DemoScores(BaseModel):
    eval_loss: float | None
    score: float = Field(description="Share of held-out answers in the taught JSON format with the right routing team.")
    category_accuracy: float = Field(description="Share of held-out answers with the expected category.")


class DemoSample(BaseModel):
    prompt: str
    expected: str
    before: str
    after: str


class DemoResult(BaseModel):
    job_id: str
    model: str
    steps: int | None = None
    before: DemoScores
    after: DemoScores
    seconds: float
    train_seconds: float | None = None
    samples: list[DemoSample] = Field(default_factory=list)
    output_dir: str | None = None


def parse_answer(text: str) -> dict[str, Any] | None:
    """The first JSON object in an answer, or None."""
    match = re.search(r"\{.*?\}", text, flags=re.S)
    if not match:
        return None
    try:
        obj = json.loads(match.group(0))
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def score_answer(answer: str, expected: dict[str, str]) -> tuple[bool, bool]:
    """(in the taught format with a consistent team, category right)."""
    obj = parse_answer(answer)
    if obj is None or set(obj) != {"category", "urgency", "team"}:
        return False, False
    category = obj.get("category")
    ok = category in TEAMS and obj.get("urgency") in URGENCIES and obj.get("team") == TEAMS[category]
    return ok, ok and category == expected["category"]


def score_answers(answers: list[str], heldout: list[dict[str, str]]) -> tuple[float, float]:
    pairs = [score_answer(a, h) for a, h in zip(answers, heldout)]
    n = max(1, len(pairs))
    return sum(f for f, _ in pairs) / n, sum(c for _, c in pairs) / n


def demo_config(model_dir: str, steps: int = DEMO_STEPS) -> RunConfig:
    heldout = json.loads(paths.data_path("demo", "heldout.json").read_text(encoding="utf-8"))
    return RunConfig.model_validate(
        {
            "model": model_dir,
            "dataset": {
                "path": str(paths.data_path("demo", "train.jsonl")),
                "eval_path": str(paths.data_path("demo", "eval.jsonl")),
            },
            "method": "sft",
            "peft": {"kind": "lora", "r": 16, "alpha": 32, "dropout": 0.0},
            "train": {
                "learning_rate": 1e-3,
                "max_steps": steps,
                "per_device_batch_size": 8,
                "warmup_ratio": 0.05,
                "logging_steps": 1,
                "lr_scheduler": "cosine",
            },
            "max_length": 192,
            "eval_prompts": [h["prompt"] for h in heldout],
            "max_new_tokens": 32,
            "timeout_seconds": 3600,
            "trackio": {"project": "tuneforge-demo"},
        }
    )


def run_demo(*, steps: int = DEMO_STEPS, on_submitted: Callable[[str], None] | None = None,
             follow: Callable[[str], Any] | None = None) -> DemoResult:
    """Prepare the model, train through the local backend, score before/after. Blocks until done."""
    from ..jobs.service import JobService
    from ..models_offline import ensure_smollm2
    from .train import start_training

    t0 = time.time()
    model_dir = ensure_smollm2()
    config = demo_config(str(model_dir), steps)
    submitted = start_training(config, backend="local")
    if on_submitted:
        on_submitted(submitted.job_id)
    service = JobService()
    job = follow(submitted.job_id) if follow else service.wait(submitted.job_id)
    job = service.store.get(submitted.job_id)
    if job.stage != "COMPLETED":
        tail = "\n".join(service.logs(job.job_id, tail=15))
        raise TuneforgeError(
            f"The demo job {job.job_id} ended {job.stage}: {job.message}.\n{tail}",
            f"See the whole log with `tuneforge jobs logs {job.job_id} --all`.",
            code="demo.job_failed",
        )
    result = (job.outputs or {}).get("result") or {}
    heldout = json.loads(paths.data_path("demo", "heldout.json").read_text(encoding="utf-8"))
    samples = result.get("samples") or []
    before_answers = [s["before"] for s in samples]
    after_answers = [s["after"] for s in samples]
    b_score, b_acc = score_answers(before_answers, heldout)
    a_score, a_acc = score_answers(after_answers, heldout)
    expected = [json.dumps({"category": h["category"], "urgency": h["urgency"], "team": h["team"]}) for h in heldout]
    return DemoResult(
        job_id=job.job_id,
        model=str(model_dir),
        steps=result.get("steps"),
        before=DemoScores(eval_loss=result.get("eval_loss_before"), score=b_score, category_accuracy=b_acc),
        after=DemoScores(eval_loss=result.get("eval_loss_after"), score=a_score, category_accuracy=a_acc),
        seconds=round(time.time() - t0, 1),
        train_seconds=result.get("train_runtime_seconds"),
        samples=[DemoSample(prompt=s["prompt"], expected=e, before=s["before"], after=s["after"])
                 for s, e in zip(samples, expected)],
        output_dir=(job.outputs or {}).get("output_dir"),
    )
