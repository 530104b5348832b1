"""A finished job -> its ledger row: hashes, base revision, metrics, cost, duration and artifacts.

Read from the job record and its result.json (the template's provenance: data sha256, base revision);
a job that failed before writing a result gets its data file hashed here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..records import Job
from .model import LedgerRun

#: config fields that say where a run writes or how it is watched, not what it trains: left out of the hash
UNHASHED = ("output_dir", "trackio", "timeout_seconds", "push_to_hub", "hub_private")
#: data files larger than this are not hashed here (the template hashes what it reads)
HASH_LIMIT_BYTES = 512 * 1024 * 1024
ARTIFACT_KEYS = ("adapter_dir", "merged_dir", "model_dir", "hub_repo", "output_dir")


def config_hash(config: dict[str, Any] | None) -> str | None:
    if not config:
        return None
    kept = {k: v for k, v in config.items() if k not in UNHASHED}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_sha256(path: str | None) -> str | None:
    p = Path(path).expanduser() if path else None
    if p is None or not p.is_file() or p.stat().st_size > HASH_LIMIT_BYTES:
        return None
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dataset_hash(provenance: dict[str, Any], dataset: str | None) -> str | None:
    files = provenance.get("dataset_files")
    if isinstance(files, dict):
        return f"hub:{files.get('revision')}" if files.get("revision") else None
    shas = [f.get("sha256") for f in files or [] if isinstance(f, dict) and f.get("sha256")]
    if len(shas) == 1:
        return shas[0]
    if shas:
        return hashlib.sha256("\n".join(shas).encode()).hexdigest()
    return file_sha256(dataset)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def metrics_of(result: dict[str, Any]) -> dict[str, float]:
    """eval_loss (after), each `<name>_before`, the eval block's metrics after, train loss, steps, speed."""
    out: dict[str, float] = {}
    for key, value in result.items():
        number = _number(value)
        if number is None:
            continue
        if key.endswith("_after"):
            out[key[: -len("_after")]] = number
        elif key.endswith("_before") or key in ("train_loss", "steps", "tokens_per_second", "runtime_seconds",
                                                  "reward_before", "reward_after"):
            out[key] = number
    block = result.get("eval") if isinstance(result.get("eval"), dict) else {}
    for name, value in (block.get("after") or {}).items() if isinstance(block.get("after"), dict) else ():
        number = _number(value)
        if number is not None:
            out.setdefault(name, number)
    for name, value in (block.get("before") or {}).items() if isinstance(block.get("before"), dict) else ():
        number = _number(value)
        if number is not None:
            out.setdefault(f"{name}_before", number)
    return out


def role_of(job: Job) -> str:
    if job.sweep_id:
        return "sweep_trial"
    if job.pipeline_id:
        return "pipeline_stage"
    return "eval" if job.kind == "eval" else "job"


def run_from_job(job: Job) -> LedgerRun:
    result = job.outputs.get("result") if isinstance(job.outputs.get("result"), dict) else {}
    provenance = result.get("provenance") if isinstance(result.get("provenance"), dict) else {}
    config = job.config.model_dump(mode="json") if job.config is not None else None
    model = job.config.model if job.config else (job.export.model if job.export else None)
    dataset = job.config.dataset.path if job.config else None
    duration = (job.finished_at - job.started_at) if job.started_at and job.finished_at else None
    cost = job.cost_usd() if duration is not None else None  # an ended job's: start to end x price
    if cost is None and job.backend == "local":
        cost = 0.0
    artifacts = {k: str(v) for k in ARTIFACT_KEYS for v in [result.get(k) or job.outputs.get(k)] if v}
    diagnosis = None
    if job.diagnosis is not None:
        diagnosis = f"{job.diagnosis.kind}: {'; '.join(job.diagnosis.evidence[:2])}".rstrip(": ")
    return LedgerRun(
        run_id=job.job_id, kind=job.kind, role=role_of(job), backend=job.backend, flavor=job.flavor,
        method=str(job.method) if job.method else None, stage=str(job.stage), message=job.message or "",
        model=model, base_revision=provenance.get("base_revision"), dataset=dataset,
        dataset_sha256=dataset_hash(provenance, dataset), config_hash=config_hash(config), config=config,
        metrics=metrics_of(result), cost_usd=cost, duration_seconds=None if duration is None else round(duration, 1),
        artifacts=artifacts, created_at=job.created_at, finished_at=job.finished_at, sweep_id=job.sweep_id,
        pipeline_id=job.pipeline_id, pipeline_stage=job.pipeline_stage, retry_of=job.retry_of, diagnosis=diagnosis,
    )


__all__ = ["run_from_job", "config_hash", "dataset_hash", "metrics_of", "file_sha256", "UNHASHED"]
