"""Planning a run: model size + dataset + method -> memory, hardware, time, cost and timeout, with reasons.

`plan()` is the user-facing entry (CLI, MCP, Python API); `plan_for_config()` plans an exact RunConfig
before `train` submits it and raises when nothing fits. Both go through `build_plan` over a `PlanRequest`.
"""

from __future__ import annotations

from typing import Any

from ..config import RunConfig, format_duration
from ..flavors import HardwareTable
from ..reports.dataset import DatasetReport
from ..reports.plan import Plan
from ..types import Method
from .architecture import count_active_parameters, count_parameters
from .vision import vision_note, with_image_tokens
from .candidates import hf_candidates, local_candidates
from .choice import alternatives, apply_budget, choose, rounded
from .dataset_stats import dataset_stats
from .explain import (
    architecture_summary,
    explain,
    moe_note,
    timeout_notes,
    unknown_rows_warning,
)
from .hardware import LocalMachine, hardware_table, local_machine
from .model_source import resolve_architecture
from .request import CONFIG_DATASET, PlanRequest, plan_request, request_for_config
from .timeout import job_timeout
from .workload import device_for, gradient_checkpointing, run_shape, weights_precision


def plan(model: str, method: Method | str = Method.SFT, dataset: str | None = None, **options: Any) -> Plan:
    """Hardware, memory, time, cost and timeout for fine-tuning `model` with `method` on `dataset`.

    Options (PlanRequest's fields): max_length, epochs, batch_size, peft, backend, flavor, budget_usd, rows,
    grad_accum, max_steps, lora_r, lora_dropout, target_modules, gradient_checkpointing, precision, optimizer,
    num_generations, max_completion_length, packing, eval_fraction, use_doctor. The canary that measures a
    plan (`--calibrate`) is an action: `tuneforge.actions.calibrate.plan`."""
    return build_plan(plan_request(model, method, dataset, **options))


def plan_for_config(config: RunConfig, *, backend: str, flavor: str | None, rows: int | None = None,
                    budget_usd: float | None = None, dataset: str | None = CONFIG_DATASET) -> Plan:
    """The plan for exactly this config, as `train` submits it (`rows`, `budget_usd`: the plan's what-ifs;
    `dataset=None`: no data to read). Raises TuneforgeError when nothing fits."""
    return build_plan(request_for_config(config, backend=backend, flavor=flavor, rows=rows, budget_usd=budget_usd,
                                         dataset=dataset))


def build_plan(req: PlanRequest, *, report: DatasetReport | None = None) -> Plan:
    """The plan for a request; `report`: the doctor's report on req.dataset when the caller already has it."""
    arch, notes = resolve_architecture(req.model)
    warnings: list[str] = []
    guessed = arch.source.startswith("guessed")
    if guessed:
        warnings.append(notes[0])
    n_params = count_parameters(arch)
    n_active = count_active_parameters(arch)
    if arch.is_moe:
        notes.append(moe_note(arch, n_params, n_active))

    stats = dataset_stats(req.dataset, method=req.method, model=req.model, max_length=req.max_length, rows=req.rows,
                          use_doctor=req.use_doctor, report=report)
    notes.extend(stats.notes)
    if arch.vision is not None:
        stats, image_notes = with_image_tokens(stats, arch.vision)
        notes.append(vision_note(arch.vision, n_params - arch.vision.parameters))
        notes.extend(image_notes)
    if stats.rows is None:
        warnings.append(unknown_rows_warning())

    if req.backend == "local":
        if req.flavor:
            warnings.append(f"The flavor {req.flavor} is ignored for the local backend (it names Hugging Face Jobs hardware).")
        machine = local_machine()
        candidates = local_candidates(arch, req, stats, machine)
        table: HardwareTable | None = None
        hardware_source = (f"this machine: {machine.name}, {machine.memory_gb:g} GB "
                           f"{'GPU memory' if machine.device == 'cuda' else 'RAM'}")
    elif req.backend == "ray":  # the cluster's own nodes (backends/ray/resources.py), read through Ray's state API
        from ..backends.ray.resources import cluster_hardware

        cluster = cluster_hardware()
        table, hardware_source = cluster.table, cluster.source
        machine = ray_cpu_machine(cluster.cpu_node) if cluster.cpu_node else None
        candidates = (local_candidates(arch, req, stats, machine) if machine
                      else hf_candidates(arch, req, stats, table))  # type: ignore[arg-type]
    else:
        machine = None
        table = hardware_table()
        candidates = hf_candidates(arch, req, stats, table)
        hardware_source = table.source

    chosen, why = choose(arch, req, candidates, machine)
    notes.append(why)
    work = run_shape(req, stats, chosen.gpus)
    device = device_for(req, machine)

    plan_notes, plan_warnings = explain(arch, req, stats, work, chosen, machine, table)
    notes.extend(plan_notes)
    warnings.extend(plan_warnings)

    timeout_seconds = job_timeout(chosen, device)
    timeout_why, timeout_warnings = timeout_notes(chosen, timeout_seconds, device)
    notes.extend(timeout_why)
    warnings.extend(timeout_warnings)

    result = Plan(
        model=req.model, params_b=round(n_params / 1e9, 3), params_guessed=guessed,
        active_params_b=round(n_active / 1e9, 3) if arch.is_moe else None,
        architecture=architecture_summary(arch), method=req.method, peft=chosen.peft,
        lora_r=req.lora_r if chosen.peft != "none" else None, backend=req.backend,
        flavor=chosen.flavor.name if chosen.flavor else None, gpus=chosen.gpus, distributed=chosen.distributed,
        vram_gb=round(chosen.capacity_gb * chosen.gpus if chosen.flavor else chosen.capacity_gb, 1),
        memory_gb=chosen.memory,
        headroom_pct=round(100 * (1 - chosen.memory.total / chosen.capacity_gb), 1) if chosen.capacity_gb else None,
        precision=weights_precision(chosen.precision, device), gradient_checkpointing=gradient_checkpointing(req, device),
        batch_size=req.batch_size, gradient_accumulation_steps=req.grad_accum, max_length=req.max_length,
        seq_len=work.seq_len, rows=stats.rows, train_rows=work.train_rows, eval_rows=work.eval_rows, epochs=req.epochs, steps=work.steps, max_steps=req.max_steps,
        tokens=work.tokens, tokens_per_second=rounded(chosen.tokens_per_second, 1), utilisation=chosen.utilisation,
        flops_per_token=rounded(chosen.flops_per_token, -6), train_hours=rounded(chosen.train_hours, 3),
        overhead_minutes=round(chosen.overhead_minutes, 1), hours=rounded(chosen.hours, 3),
        price_per_hour=chosen.price, cost_usd=rounded(chosen.cost_usd, 2),
        timeout=format_duration(timeout_seconds) if timeout_seconds else None, timeout_seconds=timeout_seconds,
        alternatives=alternatives(chosen, candidates), notes=notes, warnings=warnings, hardware_source=hardware_source,
        dataset_source=stats.source,
    )
    if req.budget_usd is not None:
        result = apply_budget(result, req, chosen, candidates)
    if req.backend == "ray":
        from ..backends.ray.multinode import explain_ray_plan

        explain_ray_plan(result, cluster, req.flavor)
    return result


def ray_cpu_machine(node: "object") -> LocalMachine:
    """A CPU-only Ray cluster's biggest node, planned like one machine (planner/hardware.py's CPU rate)."""
    from ..backends.ray.resources import CPU_GFLOPS_PER_CORE

    return LocalMachine(device="cpu", name=f"Ray CPU node ({node.cpus} CPUs)", gpus=0, memory_gb=node.memory_gb,  # type: ignore[attr-defined]
                        cores=node.cpus, peak_tflops=node.cpus * CPU_GFLOPS_PER_CORE / 1000,  # type: ignore[attr-defined]
                        memory_bandwidth_gbs=20.0, bf16=True)
