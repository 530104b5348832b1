"""The Python API: the same core the CLI and the MCP server use.

    from tuneforge import api
    report = api.validate("chats.jsonl", method="sft", model="HuggingFaceTB/SmolLM2-135M-Instruct")
    plan = api.plan("Qwen/Qwen3-0.6B", method="dpo", dataset="prefs.jsonl", backend="hf")
    job = api.train({"model": ..., "dataset": {"path": ...}, "method": "sft"})
    api.wait(job.job_id)

Each function imports its capability lazily, so `import tuneforge.api` stays light.
"""

from __future__ import annotations

from typing import Any

from .config import RunConfig


def validate(source: str, method: str = "auto", model: str | None = None, max_length: int | None = None,
             eval_source: str | None = None) -> Any:
    """Read the whole dataset and say whether (and how) each method can train on it: a DatasetReport."""
    from .doctor import validate as _validate

    return _validate(source, method=method, model=model, max_length=max_length, eval_source=eval_source)


def plan(model: str, method: str = "sft", dataset: str | None = None, **options: Any) -> Any:
    """Hardware, memory, time, cost and timeout for a run: a Plan."""
    from .planner import plan as _plan

    return _plan(model, method=method, dataset=dataset, **options)


def train(config: RunConfig | dict[str, Any], *, backend: str = "local", flavor: str | None = None) -> Any:
    """Submit a training job; returns at once with its id (a SubmitResult)."""
    from .actions.train import start_training

    cfg = config if isinstance(config, RunConfig) else RunConfig.from_dict(config)
    return start_training(cfg, backend=backend, flavor=flavor)


def status(job_id: str, log_tail: int = 20) -> Any:
    from .jobs.service import JobService

    return JobService().status(job_id, log_tail=log_tail)


def logs(job_id: str, tail: int | None = 100) -> list[str]:
    from .jobs.service import JobService

    return JobService().logs(job_id, tail=tail)


def list_jobs(limit: int = 20, stage: str | None = None) -> list[Any]:
    from .jobs.service import JobService

    return JobService().list(limit=limit, stage=stage)


def cancel(job_id: str) -> Any:
    from .jobs.service import JobService, to_status

    return to_status(JobService().cancel(job_id), [])


def wait(job_id: str, timeout: float | None = None) -> Any:
    from .jobs.service import JobService

    service = JobService()
    service.wait(job_id, timeout=timeout)
    return service.status(job_id)


def export_gguf(model: str | None = None, *, quants: list[str] | None = None, out: str | None = None, **options: Any) -> Any:
    """Merge (for adapters), convert, quantize and verify GGUF files: a GGUFReport."""
    from .gguf import export_gguf as _export

    return _export(model, quants=quants, out=out, **options)


__all__ = ["validate", "plan", "train", "status", "logs", "list_jobs", "cancel", "wait", "export_gguf"]
