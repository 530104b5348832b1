"""`tuneforge eval`: base models, adapters, finished jobs and GGUF files on one held-out file, side by side.

Each model runs templates/eval.py in its own process (this interpreter, under the no-remote-code
launcher; a GGUF file with the pinned llama.cpp toolchain on PYTHONPATH), so the metrics are the
eval block's own (templates/_shared/metrics.py). One row per model, each metric.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .. import paths
from ..errors import TuneforgeError
from ..templates._shared import no_remote_code
from ..templates._shared.metrics import metric_choices, unknown_metrics

DEFAULT_METRICS = ["exact_match", "rouge_l"]


class EvalRow(BaseModel):
    model: str
    kind: str = Field(description="model | adapter | job | gguf")
    rows: int = 0
    scores: dict[str, float | None] = Field(default_factory=dict)
    samples: list[dict[str, Any]] = Field(default_factory=list)


class EvalReport(BaseModel):
    data: str
    metrics: list[Any]
    rows: list[EvalRow]


def resolve_model(ref: str) -> dict[str, str]:
    """A model reference -> eval.py arguments: a .gguf file, an adapter folder, a job id (its saved model), or a model."""
    p = Path(ref).expanduser()
    if p.suffix == ".gguf":
        if not p.is_file():
            raise TuneforgeError(f"The GGUF file {ref} does not exist.", "Give the path of an exported .gguf file.",
                                 code="eval.model_not_found")
        return {"kind": "gguf", "gguf": str(p.resolve())}
    if p.is_dir():
        if (p / "adapter_config.json").is_file():
            return {"kind": "adapter", "adapter": str(p.resolve())}
        return {"kind": "model", "model": str(p.resolve())}
    if "/" not in ref:  # not a Hub id: a job id (or a unique prefix)
        return job_model(ref)
    return {"kind": "model", "model": ref}


def job_model(job_id: str) -> dict[str, str]:
    """A finished job's saved model: merged, else the full model, else the adapter on its base."""
    from ..records.store import JobStore

    job = JobStore().get(job_id)
    result: dict[str, Any] = dict(job.outputs or {})
    if job.config is not None:
        out = Path(job.config.output_dir)
        out = out if out.is_absolute() else Path(job.job_dir) / out
        if (out / "result.json").is_file():
            result = json.loads((out / "result.json").read_text(encoding="utf-8")) | result
    for key, kind in (("merged_dir", "model"), ("model_dir", "model"), ("adapter_dir", "adapter")):
        if result.get(key) and Path(result[key]).is_dir():
            arg = "model" if kind == "model" else "adapter"
            base = {"model": job.config.model} if kind == "adapter" and job.config is not None else {}
            return {"kind": "job", arg: str(result[key]), **base, "label": f"job {job.job_id}"}
    raise TuneforgeError(f"Job {job.job_id} has no saved model to evaluate (stage {job.stage.value}).",
                         "Evaluate a job once it has succeeded (`tuneforge jobs status ID`), or give a model folder.",
                         code="eval.no_model")


def script_args(target: dict[str, str], data: str, metrics: list[Any], options: dict[str, Any], out: Path) -> list[str]:
    args = [str(paths.templates_dir() / "eval.py"), "--data", data, "--metrics", json.dumps(metrics), "--out", str(out),
            "--label", target.get("label") or target.get("gguf") or target.get("adapter") or target.get("model", "")]
    for key in ("model", "adapter", "gguf", "tokenizer"):
        if target.get(key):
            args += [f"--{key}", target[key]]
    for key in ("prompt_column", "reference_column", "limit", "max_new_tokens", "system_prompt", "threads"):
        if options.get(key) is not None:
            args += ["--" + key.replace("_", "-"), str(options[key])]
    return args


def run_one(target: dict[str, str], data: str, metrics: list[Any], options: dict[str, Any], *,
            trust_remote_code: bool = False) -> EvalRow:
    env = None
    if target["kind"] == "gguf":
        from ..gguf import toolchain as tcm
        from ..gguf.workers import worker_threads

        tc = tcm.installed()
        if tc is None:
            raise TuneforgeError("Evaluating a GGUF file needs the llama.cpp toolchain, which is not installed.",
                                 "Run `tuneforge gguf` once (it installs the pinned toolchain), then evaluate again.",
                                 code="eval.toolchain_missing")
        env = tc.env(dict(os.environ))
        options = {"threads": worker_threads()} | options
    with tempfile.TemporaryDirectory(prefix="tuneforge-eval-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, *([] if trust_remote_code else [str(Path(no_remote_code.__file__).resolve())]),
               *script_args(target, data, metrics, options, out)]
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)
        if proc.returncode != 0 or not out.is_file():
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()] or ["no error output"]
            why = next((ln.removeprefix("ERROR:").strip() for ln in reversed(lines) if ln.startswith("ERROR")), lines[-1])
            name = target.get("label") or target.get("gguf") or target.get("adapter") or target.get("model")
            raise TuneforgeError(f"Evaluating {name} failed: {why}",
                                 "Check that the model loads (`tuneforge setup`) and that the data file has prompts.",
                                 code="eval.run_failed")
        got = json.loads(out.read_text(encoding="utf-8"))
    return EvalRow(model=got.get("model") or "", kind=target["kind"], rows=got.get("rows") or 0,
                   scores=got.get("scores") or {}, samples=got.get("samples") or [])


def evaluate(models: list[str], data: str, *, metrics: list[Any] | None = None, prompt_column: str | None = None,
             reference_column: str | None = None, limit: int | None = None, max_new_tokens: int | None = None,
             system_prompt: str | None = None, trust_remote_code: bool = False) -> EvalReport:
    """Every model on the same held-out file with the same metrics: one row each."""
    if not models:
        raise TuneforgeError("No model to evaluate.", "Name one or more: a Hub id, a model or adapter folder, a job id, "
                             "a .gguf file.", code="eval.no_models")
    specs = list(metrics or DEFAULT_METRICS)
    if bad := unknown_metrics(specs):
        raise TuneforgeError(f"Unknown metric(s) {', '.join(bad)}.", f"Use: {metric_choices()}.", code="eval.unknown_metric")
    src = Path(data).expanduser()
    if not src.is_file():
        raise TuneforgeError(f"The held-out file {data} does not exist.", "Give a .jsonl, .json or .csv file of prompts "
                             "and references.", code="eval.data_not_found")
    options = {"prompt_column": prompt_column, "reference_column": reference_column, "limit": limit,
               "max_new_tokens": max_new_tokens, "system_prompt": system_prompt}
    targets = [resolve_model(m) for m in models]
    tok = next((t.get("model") or t.get("adapter") for t in targets if t["kind"] != "gguf"), None)
    rows = []
    for t in targets:
        if t["kind"] == "gguf" and tok and "tokenizer" not in t:
            t["tokenizer"] = tok  # the chat template of the model it was exported from, when it is named too
        rows.append(run_one(t, str(src.resolve()), specs, options, trust_remote_code=trust_remote_code))
    return EvalReport(data=str(src.resolve()), metrics=specs, rows=rows)
