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


# ---- the pipeline demo: SFT, then DPO on the SFT model, then a Q4_K_M GGUF (tuneforge demo --pipeline) -----------
DPO_STEPS = 30
#: SmolLM2-135M's rows (576 wide) are no multiple of 256, so llama.cpp's q4_k_m falls back to 5-bit legacy blocks
#: for most tensors, and the fine-tuned model's greedy answers then differ on about a fifth of the held-out tickets
#: (47/60 agree on 2026-12-02, under the gate's 80%); q8_0 agreed on 60/60. The gate stays as it is: the demo asks
#: for q4_k_m and keeps q8_0 when q4_k_m fails, and says so.
DEMO_FALLBACK = ["q8_0"]


class PipelineDemoStage(BaseModel):
    kind: str = Field(description="sft, dpo or gguf.")
    job_id: str | None
    stage: int
    state: str = ""
    metrics: dict[str, Any] = Field(default_factory=dict, description="Before -> after: held-out exact score and "
                                    "eval loss (DPO: reward accuracy too); GGUF: each file's checks.")


class PipelineDemoResult(BaseModel):
    pipeline_id: str
    state: str
    message: str = ""
    stages: list[PipelineDemoStage]
    gguf: list[dict[str, Any]] = Field(default_factory=list, description="quant, path, bytes, checks per file.")
    seconds: float


def pipeline_demo_spec(model_dir: str, *, steps: int = DEMO_STEPS, dpo_steps: int = DPO_STEPS,
                       quants: list[str] | None = None, prompts: int | None = None,
                       fallback: list[str] | None = None) -> dict[str, Any]:
    """The demo as a pipeline file's contents: the same run config as the SFT demo for every stage; the GGUF stage asks
    for q4_k_m with q8_0 as its fallback (DEMO_FALLBACK)."""
    base = demo_config(model_dir, steps).model_dump(mode="json", exclude_unset=True)
    for key in ("model", "dataset", "method"):
        base.pop(key, None)
    if prompts:
        base["eval_prompts"] = base["eval_prompts"][:prompts]
    data = {name: str(paths.data_path("demo", f"{name}.jsonl")) for name in ("train", "eval", "preferences", "preferences_eval")}
    return {"name": "demo", "model": model_dir, "config": base, "stages": [
        {"kind": "train", "method": "sft", "dataset": {"path": data["train"], "eval_path": data["eval"]}},
        {"kind": "train", "method": "dpo", "dataset": {"path": data["preferences"], "eval_path": data["preferences_eval"]},
         "overrides": {"train": {"max_steps": dpo_steps, "learning_rate": 2e-4, "per_device_batch_size": 4},
                       "method_args": {"beta": 0.1}}},
        {"kind": "gguf", "quants": quants or ["q4_k_m"], "fallback": fallback if fallback is not None else DEMO_FALLBACK}]}


def demo_metrics(kind: str, output: dict[str, Any], heldout: list[dict[str, str]]) -> dict[str, Any]:
    """A train stage's held-out exact score before and after (from its greedy samples) and its eval metrics."""
    metrics = dict(output.get("metrics") or {})
    if kind == "gguf":
        report = output.get("report") or {}
        return {"files": [{"quant": f.get("quant"), "checks": f.get("checks")} for f in report.get("files", [])],
                "rejected": [{"quant": f.get("quant"), "checks": f.get("checks")} for f in report.get("rejected", [])]}
    metrics.pop("eval", None)
    samples = metrics.pop("samples", None) or output.get("samples") or []
    if samples:
        n = len(samples)
        metrics["heldout_exact"] = {"before": score_answers([s["before"] for s in samples], heldout[:n]).score,
                                    "after": score_answers([s["after"] for s in samples], heldout[:n]).score}
    return metrics


def run_pipeline_demo(*, model_dir: str | None = None, steps: int = DEMO_STEPS, dpo_steps: int = DPO_STEPS,
                      quants: list[str] | None = None, prompts: int | None = None, poll_seconds: float = 2.0,
                      fallback: list[str] | None = None,
                      on_started: Callable[[str], None] | None = None,
                      on_update: Callable[[Any], None] | None = None) -> PipelineDemoResult:
    """SFT -> DPO -> GGUF of SmolLM2 on the shipped data through the same pipeline path a user's file takes."""
    from ..jobs.service import JobService
    from ..models_offline import ensure_smollm2
    from ..pipelines.spec import parse_spec
    from .pipeline import pipeline_status, run_pipeline

    t0 = time.time()
    model_dir = model_dir or str(ensure_smollm2())
    spec = parse_spec(pipeline_demo_spec(model_dir, steps=steps, dpo_steps=dpo_steps, quants=quants, prompts=prompts,
                                         fallback=fallback), "demo")
    pipeline, _ = run_pipeline(spec, backend="local", source="tuneforge demo --pipeline")
    if on_started:
        on_started(pipeline.pipeline_id)
    while not (status := pipeline_status(pipeline.pipeline_id)).ended:
        if on_update:
            on_update(status)
        time.sleep(poll_seconds)
    heldout = load_heldout()
    store = JobService().store
    stages, files = [], []
    for s in status.stages:
        output = dict(s.output)
        if s.kind == "train" and s.job_id:  # the greedy answers before/after live in the job's result
            output["samples"] = ((store.get(s.job_id).outputs or {}).get("result") or {}).get("samples") or []
        kind = "gguf" if s.kind == "gguf" else (store.get(s.job_id).method if s.job_id else s.label)
        stages.append(PipelineDemoStage(kind=str(kind), job_id=s.job_id, stage=s.index, state=s.state,
                                        metrics=demo_metrics(s.kind, output, heldout)))
        for f in (s.output.get("report") or {}).get("files", []):
            files.append({"quant": f.get("quant"), "path": f.get("path"), "bytes": f.get("bytes"), "checks": f.get("checks")})
    return PipelineDemoResult(pipeline_id=pipeline.pipeline_id, state=status.state, message=status.message,
                              stages=stages, gguf=files, seconds=round(time.time() - t0, 1))
