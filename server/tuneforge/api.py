"""The Python API: the same actions and core the CLI and the MCP server use, returning their typed models.

    from tuneforge import api
    report = api.validate("chats.jsonl", method="sft", model="HuggingFaceTB/SmolLM2-135M-Instruct")
    plan = api.plan("Qwen/Qwen3-0.6B", method="dpo", dataset="prefs.jsonl", backend="hf")
    job = api.train({"model": ..., "dataset": {"path": ...}, "method": "sft"})
    api.wait(job.job_id)

Each function imports its capability lazily, so `import tuneforge.api` stays light.
"""

from __future__ import annotations

from typing import Any, Callable

from .config import RunConfig
from .jobs.service import JobService, JobStatus, JobSummary, SubmitResult, to_status
from .reports.dataset import DatasetReport
from .reports.diagnosis import Diagnosis
from .reports.gguf import GGUFReport
from .reports.plan import Plan
from .reports.recovery import RecoveryResult
from .types import BackendName, Method, Stage


def validate(source: str, method: Method | str = "auto", model: str | None = None, max_length: int | None = None,
             eval_source: str | None = None) -> DatasetReport:
    """Read the whole dataset and say whether (and how) each method can train on it."""
    from .doctor import validate as validate_dataset

    return validate_dataset(source, method=method, model=model, max_length=max_length, eval_source=eval_source)


def plan(model: str | None = None, method: Method | str | None = None, dataset: str | None = None, *,
         config: RunConfig | dict[str, Any] | None = None, backend: BackendName | str = BackendName.LOCAL,
         flavor: str | None = None, rows: int | None = None, budget_usd: float | None = None, calibrate: bool = False,
         ray_address: str | None = None, **options: Any) -> Plan:
    """Hardware, memory, time, cost and timeout for a run: the plan `train` with the same inputs runs under.

    `options` are flat run options (batch_size, peft, max_steps, rewards, ...: config.overrides.RUN_FIELDS) on top
    of `config`; `rows` and `budget_usd` are what-ifs; with `calibrate`, measured by a short local canary."""
    from .actions.calibrate import plan_run
    from .config.overrides import planning_config, run_overrides

    _use_ray_address(ray_address)
    layer = config.model_dump(exclude_unset=True) if isinstance(config, RunConfig) else config
    cfg, dataset_given = planning_config(layer, overrides=run_overrides({"model": model, "method": method,
                                                                         "dataset": dataset, **options}),
                                         source="api.plan", required={"model": "model"})
    return plan_run(cfg, backend=backend, flavor=flavor, dataset_given=dataset_given, rows=rows, budget_usd=budget_usd,
                    calibrate=calibrate)


def train(config: RunConfig | dict[str, Any] | None = None, *, backend: BackendName | str = BackendName.LOCAL,
          flavor: str | None = None, notify: str | None = None, ray_address: str | None = None,
          **options: Any) -> SubmitResult:
    """Submit a training job (checked and planned as `plan` shows it); returns at once with its id.
    `options`: flat run options on top of `config`, as for plan (e.g. rewards=["accuracy"], peft="auto").
    `notify`: a webhook URL (default $TUNEFORGE_NOTIFY_URL) that gets a JSON summary when the job ends (a secret)."""
    from .actions.train import start_training
    from .config.overrides import merge_config, run_overrides

    _use_ray_address(ray_address)
    if isinstance(config, RunConfig) and not options:
        cfg = config
    else:
        layer = config.model_dump(exclude_unset=True) if isinstance(config, RunConfig) else config
        cfg = merge_config(layer, overrides=run_overrides(options), source="api.train",
                           required={"model": "model", "dataset": "dataset"})
    return start_training(cfg, backend=backend, flavor=flavor, notify=notify)


def _use_ray_address(address: str | None) -> None:
    """backend="ray": the cluster's dashboard address (default $RAY_ADDRESS), RAY_ADDRESS for this process from now on."""
    if address:
        from .backends.ray.connection import set_address

        set_address(address)


def status(job_id: str, log_tail: int = 20) -> JobStatus:
    return JobService().status(job_id, log_tail=log_tail)


def diagnose(path: str, config: RunConfig | str | None = None) -> Diagnosis:
    """Why a training run failed, from its log file (a tuneforge job.log or any TRL/transformers script's):
    kind, evidence, fix and retry_with (computed from `config`: a RunConfig or the path of its YAML/JSON file)."""
    from .diagnosis import diagnose_file, read_run_config

    return diagnose_file(path, read_run_config(config) if isinstance(config, str) else config)


def resume(job_id: str, *, timeout_seconds: int | None = None, confirmed: bool = False) -> RecoveryResult:
    """Continue a stopped (ERROR, CANCELED, timed-out) training job from its last checkpoint, as a new job on the same
    backend (`resumed_from`); `confirmed=True` is needed when it runs on Hugging Face Jobs (billed)."""
    from .actions.recovery import resume as run

    return run(job_id, timeout_seconds=timeout_seconds, confirmed=confirmed)


def retry(job_id: str, *, apply_fix: bool = False, confirmed: bool = False) -> RecoveryResult:
    """Run a stopped training job again (`retry_of`); with `apply_fix`, with its diagnosis's config change."""
    from .actions.recovery import retry as run

    return run(job_id, apply_fix=apply_fix, confirmed=confirmed)


def logs(job_id: str, tail: int | None = 100) -> list[str]:
    return JobService().logs(job_id, tail=tail)


def list_jobs(limit: int = 20, stage: Stage | str | None = None) -> list[JobSummary]:
    return JobService().list(limit=limit, stage=stage)


def cancel(job_id: str) -> JobStatus:
    return to_status(JobService().cancel(job_id), [])


def wait(job_id: str, timeout: float | None = None) -> JobStatus:
    """Block until the job ends; its final status (a failed job is returned, not raised)."""
    service = JobService()
    service.wait(job_id, timeout=timeout)
    return service.status(job_id)


def export_gguf(model: str | None = None, *, quants: list[str] | None = None, out: str | None = None,
                progress: Callable[[int, int, str], None] | None = None, trust_remote_code: bool = False,
                **options: Any) -> GGUFReport:
    """Merge (for adapters), convert, quantize and verify GGUF files.

    A model that ships its own code (an auto_map, Python files beside the weights) raises TuneforgeError
    `gguf.remote_code` unless `trust_remote_code=True`: pass it only once you have read and trust that code."""
    from .actions.export import export_gguf as export

    return export(model, quants=quants, out=out, progress=progress, trust_remote_code=trust_remote_code, **options)


def evaluate(models: list[str], data: str, *, metrics: list[Any] | None = None, **options: Any) -> Any:
    """Each model (Hub id, model or adapter folder, job id, .gguf file) on one held-out file with the eval block's
    metrics: an EvalReport with one row per model. `options`: prompt_column, reference_column, limit,
    max_new_tokens, system_prompt, trust_remote_code."""
    from .actions.evaluate import evaluate as run

    return run(list(models), data, metrics=metrics, **options)


# ---- the ledger and sweeps (issue 15) -------------------------------------------------------------
def runs(limit: int = 20, *, model: str | None = None, dataset: str | None = None, sweep_id: str | None = None) -> Any:
    """The ledger's runs, newest first (a RunList); ended jobs not yet recorded are added."""
    from .actions.runs import list_runs

    return list_runs(limit=limit, model=model, dataset=dataset, sweep_id=sweep_id)


def show_run(run_id: str) -> Any:
    from .actions.runs import show_run as show

    return show(run_id)


def compare_runs(a: str, b: str) -> Any:
    """Config diff and metric diff of two recorded runs (a RunDiff)."""
    from .actions.runs import compare_runs as diff

    return diff(a, b)


def note_run(run_id: str, text: str) -> Any:
    from .actions.runs import note_run as note

    return note(run_id, text)


def search_runs(text: str, limit: int = 20) -> Any:
    from .actions.runs import search_runs as search

    return search(text, limit=limit)


def run_sweep(path: str, *, confirmed: bool = False, submit: bool = True) -> Any:
    """Plan (submit=False) or start a sweep from a sweep file; a paid sweep needs confirmed=True."""
    from .actions.sweep import run_sweep as run

    return run(path, confirmed=confirmed, submit=submit)


def sweep_status(sweep_id: str) -> Any:
    from .actions.sweep import sweep_status as status_of

    return status_of(sweep_id)


def wait_sweep(sweep_id: str, timeout: float | None = None) -> Any:
    from .actions.sweep import wait_sweep as wait_for

    return wait_for(sweep_id, timeout=timeout)


def cancel_sweep(sweep_id: str) -> Any:
    from .actions.sweep import cancel_sweep as cancel_it

    return cancel_it(sweep_id)


__all__ = ["validate", "plan", "train", "status", "diagnose", "resume", "retry", "logs", "list_jobs", "cancel", "wait", "export_gguf", "evaluate",
           "runs", "show_run", "compare_runs", "note_run", "search_runs", "run_sweep", "sweep_status", "wait_sweep",
           "cancel_sweep"]


# ---- pipelines (issue 14) -------------------------------------------------------------------------------
def run_pipeline(path: str | None = None, *, spec: dict[str, Any] | None = None, backend: BackendName | str = BackendName.LOCAL,
                 confirmed: bool = False, notify: str | None = None) -> Any:
    """Start a pipeline from a file (or its contents as `spec`): (Pipeline, PipelinePlan). A paid (hf) pipeline
    needs confirmed=True, once, for the plan's total. `notify`: a webhook URL (a secret: never stored)."""
    from pathlib import Path

    from .actions.pipeline import run_pipeline as run
    from .pipelines.spec import absolute_paths, load_spec, parse_spec

    loaded = load_spec(path) if path else absolute_paths(parse_spec(spec or {}, "spec"), Path.cwd())
    return run(loaded, backend=str(backend), confirmed=confirmed or backend == BackendName.LOCAL, notify_url=notify,
               source=path)


def plan_pipeline(path: str, *, backend: BackendName | str = BackendName.LOCAL) -> Any:
    """Hardware, time, cost and time limit of every stage and in total (PipelinePlan); runs nothing."""
    from .actions.pipeline import plan_pipeline as plan_all
    from .pipelines.spec import load_spec

    return plan_all(load_spec(path), backend=str(backend))


def pipeline_status(pipeline_id: str) -> Any:
    """PipelineStatus: each stage's state, job and output; a dead driver is restarted from the record."""
    from .actions.pipeline import pipeline_status as status_of

    return status_of(pipeline_id)


def list_pipelines(limit: int = 20) -> Any:
    from .actions.pipeline import list_pipelines as listing

    return listing(limit)


def cancel_pipeline(pipeline_id: str) -> Any:
    from .actions.pipeline import cancel_pipeline as stop

    return stop(pipeline_id)


def resume_pipeline(pipeline_id: str, *, notify: str | None = None) -> Any:
    from .actions.pipeline import resume_pipeline as carry_on

    return carry_on(pipeline_id, notify_url=notify)


__all__ += ["run_pipeline", "plan_pipeline", "pipeline_status", "list_pipelines", "cancel_pipeline", "resume_pipeline"]
