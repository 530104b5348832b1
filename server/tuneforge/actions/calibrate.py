"""Planning a run, and with `calibrate` measuring it: a short canary through the real training template here.

A sample of the dataset trains for a few steps as a normal local job (same template, same config shape as
`train`, submitted through `start_training`); its result.json reports peak memory (RSS on CPU,
torch.cuda.max_memory_allocated on a GPU) and tokens/s. The plan gets both beside the planner's
prediction for the same canary, and this machine's measured rate is kept (planner.hardware's
calibration file) so that later local plans use it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .. import paths
from ..config import RunConfig
from ..config.overrides import planning_config, run_overrides
from ..errors import TuneforgeError
from ..jobs.service import JobService
from ..planner import PlanRequest, build_plan
from ..planner.dataset_stats import dataset_rows, dataset_stats, estimate_local
from ..planner.hardware import (
    calibration_path,
    load_calibration,
    local_machine,
    save_cpu_rate,
)
from ..planner.memory import GiB, Workload, memory_breakdown
from ..planner.model_source import resolve_architecture
from ..planner.request import request_for_config
from ..planner.throughput import training_throughput
from ..planner.workload import (
    gradient_checkpointing,
    sequence_length,
    training_precision,
)
from ..reports.plan import Calibration, Plan
from ..types import Method, Stage
from .resolve import DEFAULT_BACKEND, resolve_run
from .train import start_training

CANARY_STEPS = 5
CANARY_TIMEOUT_SECONDS = 30 * 60


def plan_run(config: RunConfig, *, backend: str = DEFAULT_BACKEND, flavor: str | None = None,
             dataset_given: bool = True, rows: int | None = None, budget_usd: float | None = None,
             calibrate: bool = False, calibrate_steps: int | None = None) -> Plan:
    """The plan `train` would run this config under (resolve_run, without submitting); with `calibrate`, the
    canary's measurements beside it. `rows` and `budget_usd` are what-ifs only a plan takes."""
    resolved = resolve_run(config, backend=backend, flavor=flavor, submit=False, dataset_given=dataset_given,
                           rows=rows, budget_usd=budget_usd)
    result = resolved.plan
    assert result is not None
    if calibrate:
        request = request_for_config(resolved.config, backend=backend, flavor=flavor, rows=rows, budget_usd=budget_usd,
                                     dataset=config.dataset.path if dataset_given else None)
        result = run_canary(request, result, steps=int(calibrate_steps or CANARY_STEPS))
    return result


#: plan()'s keywords that are not run options
PLAN_ONLY = ("backend", "flavor", "rows", "budget_usd", "calibrate", "calibrate_steps")


def plan(model: str, method: Method | str = Method.SFT, dataset: str | None = None, *, calibrate: bool = False,
         calibrate_steps: int | None = None, backend: str = DEFAULT_BACKEND, flavor: str | None = None,
         rows: int | None = None, budget_usd: float | None = None, **options: Any) -> Plan:
    """plan_run from flat options (config.overrides.RUN_FIELDS' names: batch_size, peft, max_steps, ...)."""
    overrides = run_overrides({"model": model, "method": method, "dataset": dataset, **options})
    config, dataset_given = planning_config(None, overrides=overrides, source="plan options")
    return plan_run(config, backend=backend, flavor=flavor, dataset_given=dataset_given, rows=rows,
                    budget_usd=budget_usd, calibrate=calibrate, calibrate_steps=calibrate_steps)


def sample_rows(dataset: str, n: int, target: Path) -> Path:
    """The first n rows of a dataset (read by the dataset doctor) as JSON Lines, which the template reads."""
    rows: list[dict[str, Any]] = []
    for row in dataset_rows(dataset):
        rows.append(row)
        if len(rows) >= n:
            break
    if not rows:
        raise TuneforgeError(f"No rows to sample from {dataset} for the calibration canary.", "Pass a dataset with rows.",
                             code="plan.calibration_no_rows")
    with target.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return target


def run_canary(req: PlanRequest, plan: Plan, *, steps: int = CANARY_STEPS,
               timeout: float = CANARY_TIMEOUT_SECONDS) -> Plan:
    """Run the canary and attach measured vs predicted numbers to `plan` (a warning when it cannot run)."""
    if not req.dataset or not Path(req.dataset).expanduser().exists():
        plan.warnings.append("Calibration needs a local --dataset file to sample from; skipped.")
        return plan
    machine = local_machine()
    peft = plan.peft if not (plan.peft == "qlora" and machine.device == "cpu") else "lora"
    local_req = req.model_copy(update={"backend": "local", "flavor": None, "peft": peft, "budget_usd": None,
                                       "rows": None, "max_steps": steps, "eval_fraction": 0.0})
    try:
        local_plan = build_plan(local_req)
    except TuneforgeError as exc:
        plan.warnings.append(f"Calibration skipped: the canary does not fit this machine ({exc.message}).")
        return plan

    work_dir = paths.home() / "calibration" / time.strftime("%Y%m%d-%H%M%S")
    work_dir.mkdir(parents=True, exist_ok=True)
    n_rows = max(steps * req.batch_size * req.grad_accum, 16)
    sample = sample_rows(req.dataset, n_rows, work_dir / "sample.jsonl")
    config = RunConfig.from_dict({
        "model": req.model, "method": req.method, "dataset": {"path": str(sample), "eval_fraction": 0.0},
        "peft": {"kind": peft, "r": req.lora_r, "dropout": req.lora_dropout, "target_modules": req.target_modules},
        "train": {"max_steps": steps, "per_device_batch_size": req.batch_size,
                  "gradient_accumulation_steps": req.grad_accum, "logging_steps": 1, "save_steps": 100000,
                  "gradient_checkpointing": req.gradient_checkpointing, "precision": req.precision,
                  "optimizer": req.optimizer},
        "method_args": {"num_generations": req.num_generations, "max_completion_length": req.max_completion_length,
                        "reward_functions": plan.reward_functions or ["length"]},  # any reward measures the run
        "max_length": req.max_length, "packing": req.packing, "output_dir": str(work_dir / "outputs"),
        "timeout_seconds": int(timeout),
    }, source="calibration canary")
    submitted = start_training(config, backend="local", skip_plan=True)
    job = JobService().wait(submitted.job_id, timeout=timeout)
    result = (job.outputs or {}).get("result") or {}
    if job.stage != Stage.COMPLETED or not result:
        plan.warnings.append(f"The calibration canary ended {job.stage}: {job.message or job.error}. "
                             f"See `tuneforge jobs logs {job.job_id}`.")
        return plan
    # The prediction for exactly this canary: the sample's own longest row and the measured device.
    arch, _ = resolve_architecture(req.model)
    stats = dataset_stats(str(sample), method=req.method, model=req.model, max_length=req.max_length,
                          use_doctor=req.use_doctor)
    if stats.max_tokens is None:
        stats = estimate_local(str(sample), req.method)
    device = "cuda" if result.get("device") == "cuda" else "cpu"
    precision = result.get("precision") or training_precision(req, machine.bf16, device)
    seq_req = local_req.model_copy(update={"packing": req.packing})
    workload = Workload(
        method=req.method, peft=peft, lora_r=req.lora_r, target_modules=req.target_modules, batch_size=req.batch_size,
        seq_len=sequence_length(seq_req, stats), completion_len=req.max_completion_length,
        num_generations=req.num_generations, gradient_checkpointing=gradient_checkpointing(req, device),
        precision=precision, device=device, optimizer=req.optimizer, lora_dropout=req.lora_dropout,
    )
    predicted = memory_breakdown(arch, workload)
    if device == "cuda":
        predicted_peak = predicted.total - predicted.runtime
        measured_bytes = result.get("peak_cuda_bytes")
        measured_by = "torch.cuda.max_memory_allocated (prediction without CUDA context and slack)"
    else:
        predicted_peak = predicted.total
        measured_bytes = result.get("peak_rss_bytes")
        measured_by = "peak RSS of the training process (ru_maxrss)"
    measured_gb = round(measured_bytes / GiB, 3) if measured_bytes else None
    error = round(100 * (predicted_peak - measured_gb) / measured_gb, 1) if measured_gb else None

    measured_tps = result.get("tokens_per_second")
    tp = training_throughput(arch, peft=peft, context=workload.seq_len / 2, gradient_checkpointing=workload.gradient_checkpointing,
                             method=req.method, peak_tflops=machine.peak_tflops, gpus=1, device=device, params=plan.params_b * 1e9)
    plan.calibration = Calibration(
        steps=int(result.get("steps") or steps), rows=n_rows, batch_size=req.batch_size, seq_len=workload.seq_len,
        device=device, predicted_peak_gb=round(predicted_peak, 3), measured_peak_gb=measured_gb, peak_error_pct=error,
        predicted_tokens_per_second=round(local_plan.tokens_per_second or tp.tokens_per_second, 1),
        measured_tokens_per_second=round(float(measured_tps), 1) if measured_tps else None,
        runtime_seconds=result.get("train_runtime_seconds") or result.get("runtime_seconds"),
        train_loss=result.get("train_loss"), job_id=job.job_id, measured_by=measured_by,
    )
    if measured_tps and device == "cpu":
        save_cpu_rate(float(measured_tps) * tp.flops_per_token)
        plan.notes.append(f"This machine's measured training rate ({float(measured_tps) * tp.flops_per_token / 1e9:.1f} GFLOP/s) "
                          f"is saved in {calibration_path()} and used by later local plans.")
    return plan


__all__ = ["plan", "plan_run", "PLAN_ONLY", "run_canary", "sample_rows", "load_calibration", "calibration_path", "CANARY_STEPS"]
