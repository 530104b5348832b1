"""The ways a run could go: each flavor (or this machine) x PEFT choice, with its memory, fit, time and cost.

A candidate fits when the predicted peak stays under a share of the device's nominal memory; every
candidate is timed (tokens/s from FLOPs at a stated utilisation, plus start-up, download and save).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from ..errors import TuneforgeError
from ..flavors import Flavor, HardwareTable
from ..reports.plan import MemoryBreakdown
from ..types import Method
from .architecture import Architecture, count_parameters
from .dataset_stats import DatasetStats
from .hardware import LocalMachine
from .memory import memory_breakdown
from .request import PlanRequest
from .throughput import generation_seconds, training_throughput
from .workload import (
    gradient_checkpointing,
    run_shape,
    training_precision,
    workload_for,
)

LORA_ABOVE_PARAMS = 3e9
# A flavor fits when the predicted peak stays under this share of its nominal memory per GPU: nominal "GB"
# includes memory the driver reserves (an "80 GB" A100 shows 79.2 GiB) and peaks vary between batches.
GPU_HEADROOM = 0.90
CPU_HEADROOM = 0.85


class Candidate(BaseModel):
    flavor: Flavor | None
    peft: str
    gpus: int
    distributed: Literal["ddp", "fsdp"] | None
    memory: MemoryBreakdown
    capacity_gb: float
    fits: bool
    reason: str = ""
    precision: str
    train_hours: float | None = None
    overhead_minutes: float = 0.0
    hours: float | None = None
    cost_usd: float | None = None
    tokens_per_second: float | None = None
    utilisation: float | None = None
    flops_per_token: float | None = None

    @property
    def price(self) -> float | None:
        return self.flavor.price_per_hour if self.flavor else None


def peft_options(req: PlanRequest, params: float, device: str) -> list[str]:
    if req.peft != "auto":
        return [req.peft]
    if device == "cpu":
        return ["lora", "none"]
    return ["none", "lora", "qlora"] if params <= LORA_ABOVE_PARAMS else ["lora", "qlora"]


def fill_timing(arch: Architecture, req: PlanRequest, stats: DatasetStats, cand: Candidate, *, peak_tflops: float,
                bandwidth_gbs: float, device: str, local: bool) -> None:
    """Fill tokens/s, hours and cost of a candidate in place."""
    work = run_shape(req, stats, cand.gpus)
    n_params = count_parameters(arch)
    context = (work.padded_len or work.seq_len) / 2  # average causal context
    tp = training_throughput(arch, peft=cand.peft, context=context,
                             gradient_checkpointing=gradient_checkpointing(req, device), method=req.method,
                             peak_tflops=peak_tflops, gpus=cand.gpus, device=device, params=n_params)
    cand.tokens_per_second = tp.tokens_per_second
    cand.utilisation = tp.utilisation
    cand.flops_per_token = tp.flops_per_token
    cand.overhead_minutes = overhead_minutes(arch, cand.peft, local)
    if work.compute_tokens is None:
        return
    seconds = work.compute_tokens / tp.tokens_per_second if tp.tokens_per_second else 0.0
    seconds += work.eval_tokens * (2 * n_params) / (tp.flops_per_token * tp.tokens_per_second) if tp.tokens_per_second else 0.0
    if req.method == Method.GRPO and work.train_rows:
        weight_bytes = n_params * (0.52 if cand.peft == "qlora" else 2.0)
        epochs = min(req.epochs, (work.steps or 1) * req.batch_size * req.grad_accum * cand.gpus / work.train_rows)
        sequences = int(work.train_rows * epochs * req.num_generations / max(1, cand.gpus))
        seconds += generation_seconds(arch, weight_bytes=weight_bytes, bandwidth_gbs=bandwidth_gbs,
                                      completion_len=req.max_completion_length, sequences=sequences,
                                      batch=max(req.batch_size, req.num_generations), device=device)
    cand.train_hours = seconds / 3600
    cand.hours = cand.train_hours + cand.overhead_minutes / 60
    if cand.price is not None:
        cand.cost_usd = cand.hours * cand.price


def overhead_minutes(arch: Architecture, peft: str, local: bool) -> float:
    """Start-up (image, dependencies), model download and load, save and push."""
    model_gb = count_parameters(arch) * 2 / 1e9  # bf16 safetensors
    if local:
        return 0.5 + model_gb / 0.5 / 60 + (model_gb / 1.0 / 60 if peft == "none" else 0.1)
    startup = 4.0  # container start + uv installing torch/transformers/trl
    download = model_gb / 0.25 / 60  # ~250 MB/s from the Hub
    load = model_gb / 1.5 / 60
    push = model_gb / 0.1 / 60 if peft == "none" else 0.5  # full weights vs a small adapter
    return startup + download + load + push


def evaluate_flavor(arch: Architecture, req: PlanRequest, stats: DatasetStats, flavor: Flavor, peft: str) -> Candidate:
    precision = training_precision(req, flavor.bf16, "cuda")
    per_gpu = flavor.vram_gb_per_gpu
    capacity = per_gpu * GPU_HEADROOM
    gpus = flavor.gpus
    if peft == "none" and precision == "fp16" and req.precision == "auto":
        mem = memory_breakdown(arch, workload_for(req, stats, peft=peft, device="cuda", precision=precision, gpus=1, sharding="none"))
        return Candidate(flavor=flavor, peft=peft, gpus=gpus, distributed=None, memory=mem, capacity_gb=per_gpu,
                         fits=False, precision=precision,
                         reason=f"{flavor.gpu} has no bf16: full fine-tuning in fp16 is unstable (use LoRA there)")
    if peft == "qlora" and gpus > 1:
        mem = memory_breakdown(arch, workload_for(req, stats, peft=peft, device="cuda", precision=precision, gpus=1, sharding="none"))
        return Candidate(flavor=flavor, peft=peft, gpus=gpus, distributed=None, memory=mem, capacity_gb=per_gpu,
                         fits=False, precision=precision, reason="QLoRA runs on one GPU (no 4-bit sharding in the template)")
    if gpus == 1:
        options = [("none", None)]
    elif req.flavor:  # asked for this multi-GPU flavor: data parallel when a replica fits, else sharded
        options = [("ddp", "ddp"), ("fsdp", "fsdp")]
    else:  # the planner only picks several GPUs to shard a model that one GPU cannot hold
        single = memory_breakdown(arch, workload_for(req, stats, peft=peft, device="cuda", precision=precision, gpus=1,
                                                     sharding="none"))
        if single.total <= capacity:
            return Candidate(flavor=flavor, peft=peft, gpus=gpus, distributed=None, memory=single, capacity_gb=per_gpu,
                             fits=False, precision=precision,
                             reason=f"one {flavor.gpu} holds it: more GPUs only as an explicit --flavor (data parallel)")
        options = [("fsdp", "fsdp")]
    mem = None
    host_short = ""
    for sharding, distributed in options:
        mem = memory_breakdown(arch, workload_for(req, stats, peft=peft, device="cuda", precision=precision, gpus=gpus,
                                                  sharding=sharding))
        host_need = host_ram_gib(arch, peft, gpus if sharding == "ddp" else 1)
        if flavor.ram_gb is not None and host_need > flavor.ram_gb * 0.9:
            host_short = (f"loading the model needs about {host_need:.0f} GiB of host RAM, {flavor.name} has "
                          f"{flavor.ram_gb:g} GB")
            continue
        if mem.total <= capacity:
            cand = Candidate(flavor=flavor, peft=peft, gpus=gpus, distributed=distributed, memory=mem, capacity_gb=per_gpu,
                             fits=True, precision=precision)
            fill_timing(arch, req, stats, cand, peak_tflops=flavor.peak_tflops, bandwidth_gbs=flavor.memory_bandwidth_gbs,
                        device="cuda", local=False)
            return cand
    assert mem is not None
    shard_note = " even sharded with FSDP" if gpus > 1 else ""
    reason = host_short if (host_short and mem.total <= capacity) else (
        f"needs {mem.total:.1f} GiB per GPU{shard_note}, {flavor.gpu} has {per_gpu:g} GB ({int(GPU_HEADROOM * 100)}% usable)")
    return Candidate(flavor=flavor, peft=peft, gpus=gpus, distributed=None, memory=mem, capacity_gb=per_gpu, fits=False,
                     precision=precision, reason=reason)


def host_ram_gib(arch: Architecture, peft: str, processes: int) -> float:
    """Host RAM to load the checkpoint before it moves to the GPU (16-bit weights; NF4 quantizes while loading),
    once per process, plus ~3 GiB for Python, CUDA and the data."""
    per_param = 0.6 if peft == "qlora" else 2.0
    return count_parameters(arch) * per_param * processes / 1024**3 + 3.0


def hf_candidates(arch: Architecture, req: PlanRequest, stats: DatasetStats, table: HardwareTable) -> list[Candidate]:
    params = count_parameters(arch)
    if req.flavor:
        flavor = table.get(req.flavor)
        if flavor is None:
            names = ", ".join(f.name for f in table.gpu_flavors())
            raise TuneforgeError(f"Unknown Hugging Face Jobs flavor {req.flavor!r}.", f"Use one of: {names}.",
                                 code="plan.unknown_flavor")
        if flavor.gpus == 0:
            raise TuneforgeError(f"{req.flavor} is a CPU flavor: the training templates need a GPU on Hugging Face Jobs.",
                                 "Pick a GPU flavor (t4-small, l4x1, a10g-large, a100-large, ...) or omit --flavor.",
                                 code="plan.cpu_flavor")
        flavors = [flavor]
    else:
        flavors = table.gpu_flavors()
    return [evaluate_flavor(arch, req, stats, f, peft) for peft in peft_options(req, params, "cuda") for f in flavors]


def local_candidates(arch: Architecture, req: PlanRequest, stats: DatasetStats, machine: LocalMachine) -> list[Candidate]:
    params = count_parameters(arch)
    out = []
    for peft in peft_options(req, params, machine.device):
        precision = training_precision(req, machine.bf16, machine.device)
        mem = memory_breakdown(arch, workload_for(req, stats, peft=peft, device=machine.device, precision=precision,
                                                  gpus=1, sharding="none"))
        headroom = CPU_HEADROOM if machine.device == "cpu" else GPU_HEADROOM
        capacity = machine.memory_gb * headroom
        fits, reason = mem.total <= capacity, ""
        if peft == "qlora" and machine.device == "cpu":
            fits, reason = False, "QLoRA needs a CUDA GPU (bitsandbytes 4-bit)"
        elif not fits:
            reason = (f"needs {mem.total:.1f} GiB, this machine has {machine.memory_gb:g} GB "
                      f"{'GPU memory' if machine.device == 'cuda' else 'RAM'} ({int(headroom * 100)}% usable)")
        cand = Candidate(flavor=None, peft=peft, gpus=1, distributed=None, memory=mem, capacity_gb=machine.memory_gb,
                         fits=fits, reason=reason, precision=precision)
        fill_timing(arch, req, stats, cand, peak_tflops=machine.peak_tflops, bandwidth_gbs=machine.memory_bandwidth_gbs,
                    device=machine.device, local=True)
        out.append(cand)
    return out
