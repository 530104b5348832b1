"""What a benchmark run (lm-evaluation-harness on base and tuned models) returns.

`BenchmarkReport.models`: one row per model, each with its scores (benchmark, metric, value, stderr);
`BenchmarkReport.changes`: for every model after the first (the base), the change per benchmark and
metric against the base, so a user sees what a fine-tune cost in general ability.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class BenchmarkModel(BaseModel):
    """A model as the harness loads it: `--model hf --model_args pretrained=PRETRAINED[,peft=PEFT]`."""

    label: str  # how the row is named: "base", "tuned", a folder name, a job id
    pretrained: str  # a local model folder or a Hub id
    peft: str | None = None  # a LoRA adapter folder applied on top of `pretrained`
    job_id: str | None = None


class BenchmarkScore(BaseModel):
    benchmark: str  # the task (or group) name as the harness reports it
    metric: str  # "acc", "acc_norm", "exact_match", ...
    filter: str = "none"  # the harness's filter ("none", "strict-match", "flexible-extract", ...)
    value: float | None
    stderr: float | None = None
    higher_is_better: bool | None = None
    samples: int | None = None  # documents scored (after --limit)


class ModelBenchmarks(BaseModel):
    model: BenchmarkModel
    scores: list[BenchmarkScore]
    seconds: float

    def score(self, benchmark: str, metric: str, filter: str = "none") -> BenchmarkScore | None:
        return next((s for s in self.scores if (s.benchmark, s.metric, s.filter) == (benchmark, metric, filter)), None)


class BenchmarkChange(BaseModel):
    """`tuned - base` for one benchmark and metric; `worse` when it moved the wrong way."""

    benchmark: str
    metric: str
    filter: str = "none"
    base_label: str
    label: str  # the compared (tuned) model's label
    base: float | None
    tuned: float | None
    change: float | None  # tuned - base
    stderr: float | None = None  # sqrt(stderr_base^2 + stderr_tuned^2), when both are known
    higher_is_better: bool | None = None
    worse: bool | None = None


class BenchmarkReport(BaseModel):
    benchmarks: list[str]
    limit: int | None = None
    num_fewshot: int | None = None
    models: list[ModelBenchmarks]
    changes: list[BenchmarkChange] = Field(default_factory=list)
    lm_eval_version: str | None = None
    seconds: float
    notes: list[str] = Field(default_factory=list)
