"""The offline demo: LoRA-fine-tune SmolLM2-135M-Instruct to triage support tickets as JSON.

It goes through exactly the path a user's job takes (config -> local backend -> job record ->
template -> result.json) and then scores the held-out tickets before and after. Held out means held
out: scripts/make_demo_dataset.py draws them (heldout.json, and the same tickets as eval.jsonl for the
eval loss) from phrasing templates and urgency cues that training never uses, and checks that no
held-out text appears in training. Correct means correct: `score` is the share of tickets whose
answer (its first JSON object) has the expected category, urgency and team, all three; the per-field
accuracies sit beside it. A base chat model answers in prose and cannot know the in-house routing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from .. import paths
from ..config import RunConfig
from ..errors import TuneforgeError

FIELDS = ("category", "urgency", "team")

DEMO_STEPS = 60


class DemoScores(BaseModel):
    eval_loss: float | None = Field(description="Mean loss on the expected answers of the held-out tickets (eval.jsonl).")
    score: float = Field(description="Exact correctness: share of held-out tickets answered with the expected "
                                     "category, urgency and team, all three.")
    category_accuracy: float = Field(description="Share of held-out tickets answered with the expected category.")
    urgency_accuracy: float = Field(description="Share of held-out tickets answered with the expected urgency.")
    team_accuracy: float = Field(description="Share of held-out tickets answered with the expected routing team.")


class DemoSample(BaseModel):
    prompt: str
    expected: str
    before: str
    after: str


class DemoResult(BaseModel):
    job_id: str
    model: str
    steps: int | None = None
    heldout_tickets: int = Field(0, description="Held-out tickets scored (eval loss is on the same tickets).")
    heldout_phrasings: int = Field(0, description="Distinct phrasing templates among them, none used in training.")
    before: DemoScores
    after: DemoScores
    seconds: float
    train_seconds: float | None = None
    samples: list[DemoSample] = Field(default_factory=list)
    output_dir: str | None = None


def parse_answer(text: str) -> dict[str, Any] | None:
    """The first JSON object in an answer, or None."""
    match = re.search(r"\{.*?\}", text, flags=re.DOTALL)
    if not match:
        return None
    try:
        obj = json.loads(match.group(0))
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def score_answer(answer: str, expected: dict[str, str]) -> dict[str, bool]:
    """Per field: does the answer's first JSON object hold the expected value; "exact": all three do."""
    obj = parse_answer(answer) or {}
    fields = {f: obj.get(f) == expected[f] for f in FIELDS}
    return {"exact": all(fields.values()), **fields}


def score_answers(answers: list[str], expected: list[dict[str, str]], eval_loss: float | None = None) -> DemoScores:
    """Shares over the expected tickets; a missing answer counts as wrong."""
    marks = [score_answer(a, e) for a, e in zip(answers, expected)]
    n = max(1, len(expected))

    def share(key: str) -> float:
        return sum(m[key] for m in marks) / n

    return DemoScores(eval_loss=eval_loss, score=share("exact"), category_accuracy=share("category"),
                      urgency_accuracy=share("urgency"), team_accuracy=share("team"))


def load_heldout() -> list[dict[str, str]]:
    return json.loads(paths.data_path("demo", "heldout.json").read_text(encoding="utf-8"))


def demo_config(model_dir: str, steps: int = DEMO_STEPS) -> RunConfig:
    heldout = load_heldout()
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
    heldout = load_heldout()
    samples = result.get("samples") or []
    expected = [json.dumps({f: h[f] for f in FIELDS}) for h in heldout]
    return DemoResult(
        job_id=job.job_id,
        model=str(model_dir),
        steps=result.get("steps"),
        heldout_tickets=len(heldout),
        heldout_phrasings=len({h.get("phrasing") for h in heldout}),
        before=score_answers([s["before"] for s in samples], heldout, result.get("eval_loss_before")),
        after=score_answers([s["after"] for s in samples], heldout, result.get("eval_loss_after")),
        seconds=round(time.time() - t0, 1),
        train_seconds=result.get("train_runtime_seconds"),
        samples=[DemoSample(prompt=s["prompt"], expected=e, before=s["before"], after=s["after"])
                 for s, e in zip(samples, expected)],
        output_dir=(job.outputs or {}).get("output_dir"),
    )
