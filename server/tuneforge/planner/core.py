"""The planner: model size + dataset + method -> memory, hardware, time, cost and timeout, with reasons.

plan() is the user-facing entry (CLI, MCP, Python API); plan_for_config() plans an exact RunConfig before
`train` submits it and raises when nothing fits. Both go through `build_plan` over a `PlanRequest`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import METHODS, RunConfig, format_duration
from ..errors import TuneforgeError
from .architecture import Architecture, count_active_parameters, count_parameters
from .dataset_stats import DatasetStats, dataset_stats
from .hardware import Flavor, HardwareTable, LocalMachine, hardware_table, local_machine
from ..reports.plan import MemoryBreakdown
from .memory import Workload, memory_breakdown
from .model_source import resolve_architecture
from ..reports.plan import Alternative, Plan
from .throughput import generation_seconds, training_throughput

LORA_ABOVE_PARAMS = 3e9
# A flavor fits when the predicted peak stays under this share of its nominal memory per GPU: nominal "GB"
# includes memory the driver reserves (an "80 GB" A100 shows 79.2 GiB) and peaks vary between batches.
GPU_HEADROOM = 0.90
CPU_HEADROOM = 0.85
MIN_TIMEOUT_SECONDS = 15 * 60
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
TIMEOUT_FACTOR = 1.3
CPU_TIMEOUT_FACTOR = 3.0
DEFAULT_BATCH = 4
DEFAULT_MAX_LENGTH = 1024
DEFAULT_GRPO_PROMPT = 256


class PlanRequest(BaseModel):
    """Everything one plan depends on (validated; unknown options are errors)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    method: Literal["sft", "dpo", "grpo", "kto", "reward"] = "sft"
    dataset: str | None = None
    max_length: int = Field(default=DEFAULT_MAX_LENGTH, ge=16, le=262144)
    epochs: float = Field(default=1.0, gt=0, le=100)
    max_steps: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=DEFAULT_BATCH, ge=1, le=4096)
    grad_accum: int = Field(default=1, ge=1, le=4096)
    peft: Literal["auto", "lora", "qlora", "none"] = "auto"
    lora_r: int = Field(default=16, ge=1, le=1024)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    backend: Literal["hf", "local"] = "hf"
    flavor: str | None = None
    budget_usd: float | None = Field(default=None, gt=0)
    rows: int | None = None
    gradient_checkpointing: bool | None = None
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    optimizer: Literal["adamw_torch", "adamw_8bit", "paged_adamw_8bit"] = "adamw_torch"
    num_generations: int = Field(default=4, ge=1, le=64)
    max_completion_length: int = Field(default=128, ge=1, le=32768)
    packing: bool = False
    eval_fraction: float = Field(default=0.1, ge=0, lt=0.5)
    use_doctor: bool = True


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


class RunShape(BaseModel):
    """Dataset-derived quantities shared by every candidate."""

    rows: int | None
    train_rows: int | None
    mean_tokens: float | None
    seq_len: int
    padded_len: float | None
    steps: int | None
    tokens: int | None
    compute_tokens: float | None
    eval_tokens: float


# ---- public entry points ---------------------------------------------------------------------------
def plan(model: str, method: str = "sft", dataset: str | None = None, *, max_length: int | None = None,
         epochs: float = 1.0, batch_size: int | None = None, peft: str = "auto", backend: str = "hf",
         flavor: str | None = None, budget_usd: float | None = None, rows: int | None = None,
         calibrate: bool = False, **kw: Any) -> Plan:
    """Hardware, memory, time, cost and timeout for fine-tuning `model` with `method` on `dataset`.

    Options beyond the named ones (PlanRequest's fields): grad_accum, max_steps, lora_r, lora_dropout,
    target_modules, gradient_checkpointing, precision, optimizer, num_generations, max_completion_length,
    packing, eval_fraction, use_doctor; and calibrate_steps for the canary."""
    if method not in METHODS:
        raise TuneforgeError(f"Unknown training method {method!r}.", f"Use one of: {', '.join(METHODS)}.")
    if epochs is None or epochs <= 0:
        raise TuneforgeError(f"epochs must be positive (got {epochs}).", "Pass --epochs 1 (or a fraction like 0.5).")
    if rows is not None and rows <= 0:
        raise TuneforgeError(f"rows must be positive (got {rows}).", "Pass --rows with the number of training examples.")
    if budget_usd is not None and budget_usd <= 0:
        raise TuneforgeError(f"budget_usd must be positive (got {budget_usd}).", "Pass --budget-usd 5 for a $5 limit.")
    if backend not in ("hf", "local"):
        raise TuneforgeError(f"Unknown backend {backend!r}.", "Use --backend hf (Hugging Face Jobs) or --backend local.")
    if peft not in ("auto", "lora", "qlora", "none"):
        raise TuneforgeError(f"Unknown --peft {peft!r}.", "Use auto, lora, qlora or none (full fine-tuning).")
    data = dict(model=model, method=method, dataset=dataset, epochs=epochs, peft=peft, backend=backend, flavor=flavor,
                budget_usd=budget_usd, rows=rows, **kw)
    if max_length is not None:
        data["max_length"] = max_length
    if batch_size is not None:
        data["batch_size"] = batch_size
    steps = data.pop("calibrate_steps", None)
    request = _request(data)
    result = build_plan(request)
    if calibrate:
        from .calibrate import CANARY_STEPS, calibrate as run_canary

        result = run_canary(request, result, steps=int(steps or CANARY_STEPS))
    return result


def plan_for_config(config: RunConfig, *, backend: str, flavor: str | None) -> Plan:
    """The plan for exactly this config, as `train` submits it. Raises TuneforgeError when nothing fits."""
    peft = config.peft.kind
    request = _request(dict(
        model=config.model, method=config.method, dataset=config.dataset.path, max_length=config.max_length,
        epochs=config.train.epochs, max_steps=config.train.max_steps, batch_size=config.train.per_device_batch_size,
        grad_accum=config.train.gradient_accumulation_steps, peft=peft, lora_r=config.peft.r,
        lora_dropout=config.peft.dropout, target_modules=config.peft.target_modules, backend=backend, flavor=flavor,
        gradient_checkpointing=config.train.gradient_checkpointing, precision=config.train.precision,
        optimizer=config.train.optimizer, num_generations=config.method_args.num_generations,
        max_completion_length=config.method_args.max_completion_length, packing=config.packing,
        eval_fraction=0.0 if (config.dataset.eval_path or config.dataset.eval_split) else config.dataset.eval_fraction,
    ))
    return build_plan(request)


def _request(data: dict[str, Any]) -> PlanRequest:
    try:
        return PlanRequest(**{k: v for k, v in data.items() if v is not None or k in ("flavor", "dataset")})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "(options)"
            problems.append(f"{loc}: unknown option" if err["type"] == "extra_forbidden" else f"{loc}: {err['msg']}")
        raise TuneforgeError("Invalid plan options: " + "; ".join(problems) + ".",
                             "Fix the options named; `tuneforge plan --help` lists them.") from None


# ---- the plan -------------------------------------------------------------------------------------
def build_plan(req: PlanRequest) -> Plan:
    arch, notes = resolve_architecture(req.model)
    warnings: list[str] = []
    if arch.source.startswith("guessed"):
        warnings.append(notes[0])
    n_params = count_parameters(arch)
    n_active = count_active_parameters(arch)
    if arch.is_moe:
        notes.append(f"Mixture of experts: {arch.num_experts} experts, {arch.experts_per_token} per token: "
                     f"{n_active / 1e9:.2f}B of {n_params / 1e9:.2f}B parameters work on each token (time uses the active count; "
                     "memory holds all experts).")

    stats = dataset_stats(req.dataset, method=req.method, model=req.model, max_length=req.max_length, rows=req.rows,
                          use_doctor=req.use_doctor)
    notes.extend(stats.notes)
    if stats.rows is None:
        warnings.append("The number of rows is unknown, so time, cost and timeout are not estimated "
                        "(the job keeps the default timeout). Pass --rows N, or a local dataset file.")

    if req.backend == "local":
        if req.flavor:
            warnings.append(f"--flavor {req.flavor} is ignored for --backend local (it names Hugging Face Jobs hardware).")
        machine = local_machine()
        candidates = _local_candidates(arch, req, stats, machine)
        table: HardwareTable | None = None
        hardware_source = f"this machine: {machine.name}, {machine.memory_gb:g} GB {'GPU memory' if machine.device == 'cuda' else 'RAM'}"
    else:
        machine = None
        table = hardware_table()
        candidates = _hf_candidates(arch, req, stats, table)
        hardware_source = table.source

    chosen, why = _choose(arch, req, candidates, machine)
    notes.append(why)
    work = _work(req, stats, chosen.gpus)

    plan_notes, plan_warnings = _explain(arch, req, stats, work, chosen, machine, table)
    notes.extend(plan_notes)
    warnings.extend(plan_warnings)

    timeout_seconds = _timeout(chosen, _device(req, machine))
    if timeout_seconds:
        on_cpu = _device(req, machine) == "cpu"
        notes.append(f"Timeout {format_duration(timeout_seconds)}: training ETA x "
                     + (f"{CPU_TIMEOUT_FACTOR:g} (a shared CPU can run far slower than estimated)" if on_cpu else f"{TIMEOUT_FACTOR:g}")
                     + " + a start-up, download and save buffer, rounded up to 5 minutes, never under 15 minutes.")
    if chosen.train_hours is not None and chosen.train_hours * 3600 * TIMEOUT_FACTOR > MAX_TIMEOUT_SECONDS:
        warnings.append(f"The estimated {chosen.train_hours:.0f} h exceed the 7-day job limit: cap the run with max_steps, "
                        "fewer epochs or a faster flavor.")

    alternatives = _alternatives(chosen, candidates)
    result = Plan(
        model=req.model, params_b=round(n_params / 1e9, 3),
        active_params_b=round(n_active / 1e9, 3) if arch.is_moe else None,
        architecture=_arch_summary(arch), method=req.method, peft=chosen.peft,
        lora_r=req.lora_r if chosen.peft != "none" else None, backend=req.backend,
        flavor=chosen.flavor.name if chosen.flavor else None, gpus=chosen.gpus, distributed=chosen.distributed,
        vram_gb=round(chosen.capacity_gb * chosen.gpus if chosen.flavor else chosen.capacity_gb, 1),
        memory_gb=chosen.memory,
        headroom_pct=round(100 * (1 - chosen.memory.total / chosen.capacity_gb), 1) if chosen.capacity_gb else None,
        precision=chosen.precision, gradient_checkpointing=_grad_ckpt(req, _device(req, machine)),
        batch_size=req.batch_size, gradient_accumulation_steps=req.grad_accum, max_length=req.max_length,
        seq_len=work.seq_len, rows=stats.rows, epochs=req.epochs, steps=work.steps, max_steps=req.max_steps,
        tokens=work.tokens, tokens_per_second=_round(chosen.tokens_per_second, 1), utilisation=chosen.utilisation,
        flops_per_token=_round(chosen.flops_per_token, -6), train_hours=_round(chosen.train_hours, 3),
        overhead_minutes=round(chosen.overhead_minutes, 1), hours=_round(chosen.hours, 3),
        price_per_hour=chosen.price, cost_usd=_round(chosen.cost_usd, 2),
        timeout=format_duration(timeout_seconds) if timeout_seconds else None, timeout_seconds=timeout_seconds,
        alternatives=alternatives, notes=notes, warnings=warnings, hardware_source=hardware_source,
        dataset_source=stats.source,
    )
    if req.budget_usd is not None:
        result = _apply_budget(result, req, chosen, candidates, work)
    return result


def _round(x: float | None, nd: int) -> float | None:
    return None if x is None else round(x, nd)


def _arch_summary(a: Architecture) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model_type": a.model_type, "layers": a.num_layers, "hidden_size": a.hidden_size,
        "intermediate_size": a.intermediate_size, "heads": a.num_heads, "kv_heads": a.num_kv_heads,
        "head_dim": a.head_dim, "vocab_size": a.vocab_size, "tied_embeddings": a.tie_word_embeddings, "source": a.source,
    }
    if a.is_moe:
        out.update(experts=a.num_experts, experts_per_token=a.experts_per_token,
                   moe_intermediate_size=a.moe_intermediate_size)
    return out


# ---- dataset-derived workload ---------------------------------------------------------------------
def _device(req: PlanRequest, machine: LocalMachine | None) -> str:
    return machine.device if (req.backend == "local" and machine) else "cuda"


def _grad_ckpt(req: PlanRequest, device: str) -> bool:
    """The template's rule: on for GPUs, off on CPU, unless the config says."""
    return req.gradient_checkpointing if req.gradient_checkpointing is not None else device == "cuda"


def _seq_len(req: PlanRequest, stats: DatasetStats) -> int:
    if req.method == "grpo":
        return min(req.max_length, _grpo_prompt(req, stats)) + req.max_completion_length
    if req.packing or not stats.max_tokens:
        return req.max_length
    longest = stats.max_tokens * (1.1 if stats.estimated else 1.0)
    return int(min(req.max_length, max(16, math.ceil(longest))))


def _grpo_prompt(req: PlanRequest, stats: DatasetStats) -> int:
    if stats.max_tokens:
        return int(min(req.max_length, math.ceil(stats.max_tokens * (1.1 if stats.estimated else 1.0))))
    return min(req.max_length, DEFAULT_GRPO_PROMPT)


def _sequences_per_row(req: PlanRequest) -> int:
    return {"dpo": 2, "reward": 2, "kto": 2, "grpo": req.num_generations}.get(req.method, 1)


def _work(req: PlanRequest, stats: DatasetStats, gpus: int) -> RunShape:
    seq_len = _seq_len(req, stats)
    if stats.rows is None:
        return RunShape(rows=None, train_rows=None, mean_tokens=None, seq_len=seq_len, padded_len=None, steps=None,
                         tokens=None, compute_tokens=None, eval_tokens=0.0)
    rows = stats.rows
    eval_rows = int(rows * req.eval_fraction) if rows >= 10 else 0
    train_rows = max(1, rows - eval_rows)
    if req.method == "grpo":
        mean = min(req.max_length, stats.mean_tokens or DEFAULT_GRPO_PROMPT) + req.max_completion_length
    else:
        mean = min(float(req.max_length), stats.mean_tokens or req.max_length / 2)
    # Without packing, a batch is padded to its longest row: between the mean and the p95 for batches > 1.
    if req.packing or req.batch_size == 1:
        padded = mean
    else:
        p95 = min(float(req.max_length), stats.p95_tokens or mean * 1.5)
        padded = min(float(seq_len), mean + (p95 - mean) * (1 - 1 / req.batch_size))
    rows_per_step = req.batch_size * req.grad_accum * max(1, gpus)
    steps = math.ceil(train_rows / rows_per_step * req.epochs)
    if req.max_steps:
        steps = min(steps, req.max_steps)
    epochs_done = steps * rows_per_step / train_rows
    seqs = _sequences_per_row(req)
    tokens = int(train_rows * min(req.epochs, epochs_done) * mean * seqs)
    compute_tokens = train_rows * min(req.epochs, epochs_done) * padded * seqs
    eval_tokens = 2 * eval_rows * mean * (2 if req.method in ("dpo", "reward", "kto") else 1)  # before and after
    return RunShape(rows=rows, train_rows=train_rows, mean_tokens=mean, seq_len=seq_len, padded_len=padded,
                     steps=steps, tokens=tokens, compute_tokens=compute_tokens, eval_tokens=eval_tokens)


# ---- candidates -----------------------------------------------------------------------------------
def _peft_options(req: PlanRequest, params: float, device: str) -> list[str]:
    if req.peft != "auto":
        return [req.peft]
    if device == "cpu":
        return ["lora", "none"]
    return ["none", "lora", "qlora"] if params <= LORA_ABOVE_PARAMS else ["lora", "qlora"]


def _workload(req: PlanRequest, stats: DatasetStats, *, peft: str, device: str, precision: str, gpus: int,
              sharding: str) -> Workload:
    return Workload(
        method=req.method, peft=peft, lora_r=req.lora_r, target_modules=req.target_modules, batch_size=req.batch_size,
        seq_len=_seq_len(req, stats), prompt_len=_grpo_prompt(req, stats), completion_len=req.max_completion_length,
        num_generations=req.num_generations, gradient_checkpointing=_grad_ckpt(req, device), precision=precision,
        device=device, optimizer=req.optimizer, lora_dropout=req.lora_dropout, gpus=gpus, sharding=sharding,
    )


def _precision(req: PlanRequest, bf16: bool, device: str) -> str:
    if req.precision != "auto":
        return req.precision
    if device == "cpu":
        return "bf16"  # autocast over fp32 weights on CPUs with AVX512-BF16 (the template's choice)
    return "bf16" if bf16 else "fp16"


def _timing(arch: Architecture, req: PlanRequest, stats: DatasetStats, cand: Candidate, *, peak_tflops: float,
            bandwidth_gbs: float, device: str, local: bool) -> None:
    """Fill tokens/s, hours and cost of a candidate in place."""
    work = _work(req, stats, cand.gpus)
    n_params = count_parameters(arch)
    context = (work.padded_len or work.seq_len) / 2  # average causal context
    tp = training_throughput(arch, peft=cand.peft, context=context,
                             gradient_checkpointing=_grad_ckpt(req, device), method=req.method,
                             peak_tflops=peak_tflops, gpus=cand.gpus, device=device, params=n_params)
    cand.tokens_per_second = tp.tokens_per_second
    cand.utilisation = tp.utilisation
    cand.flops_per_token = tp.flops_per_token
    cand.overhead_minutes = _overhead_minutes(arch, cand.peft, local)
    if work.compute_tokens is None:
        return
    seconds = work.compute_tokens / tp.tokens_per_second if tp.tokens_per_second else 0.0
    seconds += work.eval_tokens * (2 * n_params) / (tp.flops_per_token * tp.tokens_per_second) if tp.tokens_per_second else 0.0
    if req.method == "grpo" and work.train_rows:
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


def _overhead_minutes(arch: Architecture, peft: str, local: bool) -> float:
    """Start-up (image, dependencies), model download and load, save and push."""
    model_gb = count_parameters(arch) * 2 / 1e9  # bf16 safetensors
    if local:
        return 0.5 + model_gb / 0.5 / 60 + (model_gb / 1.0 / 60 if peft == "none" else 0.1)
    startup = 4.0  # container start + uv installing torch/transformers/trl
    download = model_gb / 0.25 / 60  # ~250 MB/s from the Hub
    load = model_gb / 1.5 / 60
    push = model_gb / 0.1 / 60 if peft == "none" else 0.5  # full weights vs a small adapter
    return startup + download + load + push


def _evaluate(arch: Architecture, req: PlanRequest, stats: DatasetStats, flavor: Flavor, peft: str) -> Candidate:
    precision = _precision(req, flavor.bf16, "cuda")
    per_gpu = flavor.vram_gb_per_gpu
    capacity = per_gpu * GPU_HEADROOM
    gpus = flavor.gpus
    if peft == "none" and precision == "fp16" and req.precision == "auto":
        mem = memory_breakdown(arch, _workload(req, stats, peft=peft, device="cuda", precision=precision, gpus=1, sharding="none"))
        return Candidate(flavor=flavor, peft=peft, gpus=gpus, distributed=None, memory=mem, capacity_gb=per_gpu,
                         fits=False, precision=precision,
                         reason=f"{flavor.gpu} has no bf16: full fine-tuning in fp16 is unstable (use LoRA there)")
    if peft == "qlora" and gpus > 1:
        mem = memory_breakdown(arch, _workload(req, stats, peft=peft, device="cuda", precision=precision, gpus=1, sharding="none"))
        return Candidate(flavor=flavor, peft=peft, gpus=gpus, distributed=None, memory=mem, capacity_gb=per_gpu,
                         fits=False, precision=precision, reason="QLoRA runs on one GPU (no 4-bit sharding in the template)")
    if gpus == 1:
        options = [("none", None)]
    elif req.flavor:  # asked for this multi-GPU flavor: data parallel when a replica fits, else sharded
        options = [("ddp", "ddp"), ("fsdp", "fsdp")]
    else:  # the planner only picks several GPUs to shard a model that one GPU cannot hold
        single = memory_breakdown(arch, _workload(req, stats, peft=peft, device="cuda", precision=precision, gpus=1,
                                                  sharding="none"))
        if single.total <= capacity:
            return Candidate(flavor=flavor, peft=peft, gpus=gpus, distributed=None, memory=single, capacity_gb=per_gpu,
                             fits=False, precision=precision,
                             reason=f"one {flavor.gpu} holds it: more GPUs only as an explicit --flavor (data parallel)")
        options = [("fsdp", "fsdp")]
    mem = None
    host_short = ""
    for sharding, distributed in options:
        mem = memory_breakdown(arch, _workload(req, stats, peft=peft, device="cuda", precision=precision, gpus=gpus,
                                               sharding=sharding))
        host_need = _host_ram_gib(arch, peft, gpus if sharding == "ddp" else 1)
        if flavor.ram_gb is not None and host_need > flavor.ram_gb * 0.9:
            host_short = (f"loading the model needs about {host_need:.0f} GiB of host RAM, {flavor.name} has "
                          f"{flavor.ram_gb:g} GB")
            continue
        if mem.total <= capacity:
            cand = Candidate(flavor=flavor, peft=peft, gpus=gpus, distributed=distributed, memory=mem, capacity_gb=per_gpu,
                             fits=True, precision=precision)
            _timing(arch, req, stats, cand, peak_tflops=flavor.peak_tflops, bandwidth_gbs=flavor.memory_bandwidth_gbs,
                    device="cuda", local=False)
            return cand
    assert mem is not None
    shard_note = " even sharded with FSDP" if gpus > 1 else ""
    reason = host_short if (host_short and mem.total <= capacity) else (
        f"needs {mem.total:.1f} GiB per GPU{shard_note}, {flavor.gpu} has {per_gpu:g} GB ({int(GPU_HEADROOM * 100)}% usable)")
    return Candidate(flavor=flavor, peft=peft, gpus=gpus, distributed=None, memory=mem, capacity_gb=per_gpu, fits=False,
                     precision=precision, reason=reason)


def _host_ram_gib(arch: Architecture, peft: str, processes: int) -> float:
    """Host RAM to load the checkpoint before it moves to the GPU (16-bit weights; NF4 quantizes while loading),
    once per process, plus ~3 GiB for Python, CUDA and the data."""
    per_param = 0.6 if peft == "qlora" else 2.0
    return count_parameters(arch) * per_param * processes / 1024**3 + 3.0


def _hf_candidates(arch: Architecture, req: PlanRequest, stats: DatasetStats, table: HardwareTable) -> list[Candidate]:
    params = count_parameters(arch)
    if req.flavor:
        flavor = table.get(req.flavor)
        if flavor is None:
            names = ", ".join(f.name for f in table.gpu_flavors())
            raise TuneforgeError(f"Unknown Hugging Face Jobs flavor {req.flavor!r}.", f"Use one of: {names}.")
        if flavor.gpus == 0:
            raise TuneforgeError(f"{req.flavor} is a CPU flavor: the training templates need a GPU on Hugging Face Jobs.",
                                 "Pick a GPU flavor (t4-small, l4x1, a10g-large, a100-large, ...) or omit --flavor.")
        flavors = [flavor]
    else:
        flavors = table.gpu_flavors()
    return [_evaluate(arch, req, stats, f, peft) for peft in _peft_options(req, params, "cuda") for f in flavors]


def _local_candidates(arch: Architecture, req: PlanRequest, stats: DatasetStats, machine: LocalMachine) -> list[Candidate]:
    params = count_parameters(arch)
    out = []
    for peft in _peft_options(req, params, machine.device):
        precision = _precision(req, machine.bf16, machine.device)
        mem = memory_breakdown(arch, _workload(req, stats, peft=peft, device=machine.device, precision=precision, gpus=1,
                                               sharding="none"))
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
        _timing(arch, req, stats, cand, peak_tflops=machine.peak_tflops, bandwidth_gbs=machine.memory_bandwidth_gbs,
                device=machine.device, local=True)
        out.append(cand)
    return out


# ---- choice ---------------------------------------------------------------------------------------
def _cost_key(c: Candidate) -> tuple[float, float]:
    price = c.price if c.price is not None else 0.0
    return (c.cost_usd if c.cost_usd is not None else price, price)


def _choose(arch: Architecture, req: PlanRequest, candidates: list[Candidate],
            machine: LocalMachine | None) -> tuple[Candidate, str]:
    params = count_parameters(arch)
    device = machine.device if machine else "cuda"
    order = _peft_options(req, params, device)
    peft_why = _peft_reason(req, params, device)
    for multi in (False, True):
        for peft in order:
            fits = [c for c in candidates if c.fits and c.peft == peft and (c.gpus > 1) == multi]
            if fits:
                best = min(fits, key=_cost_key)
                return best, _choice_reason(best, fits, peft_why, order, candidates)
        if req.backend == "local":
            break
    raise _nothing_fits(arch, req, candidates, machine)


def _peft_reason(req: PlanRequest, params: float, device: str) -> str:
    if req.peft != "auto":
        return f"PEFT: {req.peft} (as asked)."
    if device == "cpu":
        return "PEFT auto on CPU: LoRA (trains a small adapter; QLoRA needs a CUDA GPU)."
    if params <= LORA_ABOVE_PARAMS:
        return (f"PEFT auto: full fine-tuning for a {params / 1e9:.2f}B model (at or under 3B it fits one GPU); "
                "LoRA, then QLoRA, when it does not.")
    return f"PEFT auto: LoRA for a {params / 1e9:.1f}B model (above 3B); QLoRA when LoRA does not fit."


def _choice_reason(best: Candidate, fits: list[Candidate], peft_why: str, order: list[str],
                   candidates: list[Candidate]) -> str:
    skipped = [p for p in order[: order.index(best.peft)]]
    parts = [peft_why]
    if skipped:
        parts.append(f"{', '.join(skipped)} fits no {'single GPU' if best.gpus == 1 else 'flavor'}, so {best.peft}.")
    m = best.memory.total
    if best.flavor is None:
        parts.append(f"Fits this machine: {m:.1f} GiB predicted peak of {best.capacity_gb:g} GB.")
        return " ".join(parts)
    cheapest = min(fits, key=lambda c: c.price or 0)
    where = f"{best.flavor.name} ({best.gpus}x {best.flavor.gpu}, {best.flavor.vram_gb_per_gpu:g} GB each, ${best.price:.2f}/h)"
    if best.distributed == "fsdp":
        parts.append(f"No single GPU holds it: {where} with FSDP sharding weights, gradients and optimizer states, "
                     f"{m:.1f} GiB per GPU.")
    elif best is cheapest:
        parts.append(f"Cheapest flavor that fits: {where}, {m:.1f} GiB predicted peak per GPU.")
    else:
        parts.append(f"{where} is cheaper in total than the lowest hourly price that fits ({cheapest.flavor.name}, "
                     f"${cheapest.cost_usd or 0:.2f} vs ${best.cost_usd or 0:.2f}): it finishes sooner.")
    too_small = sorted((c for c in candidates if not c.fits and c.peft == best.peft and c.flavor and c.gpus == 1
                        and (c.price or 0) < (best.price or 0)), key=lambda c: c.price or 0)
    if too_small:
        c = too_small[-1]
        parts.append(f"Cheaper {c.flavor.name} does not fit: {c.reason}.")
    return " ".join(parts)


def _nothing_fits(arch: Architecture, req: PlanRequest, candidates: list[Candidate],
                  machine: LocalMachine | None) -> TuneforgeError:
    need = min((c.memory.total for c in candidates), default=0.0)
    params = count_parameters(arch)
    fixes = []
    if req.peft in ("none", "auto") and params > 0:
        fixes.append("use --peft lora" if req.peft == "none" else "")
    if machine is None or machine.device == "cuda":
        if req.peft in ("lora", "none"):
            fixes.append("use --peft qlora (4-bit base weights)")
    if req.batch_size > 1:
        fixes.append(f"lower --batch-size to 1 and raise --grad-accum to {req.batch_size * req.grad_accum}")
    if req.max_length > 512 or req.method == "grpo":
        fixes.append(f"shorten --max-length (now {req.max_length})")
    if req.backend == "local":
        fixes.append("train on Hugging Face Jobs with --backend hf")
        where = f"this machine ({machine.memory_gb:g} GB {'GPU memory' if machine and machine.device == 'cuda' else 'RAM'})" if machine else "this machine"
    elif req.flavor:
        fixes.append("pick a bigger --flavor or omit --flavor to let the planner choose")
        where = f"flavor {req.flavor}"
    else:
        where = "any Hugging Face Jobs flavor"
    fixes = [f for f in fixes if f]
    reasons = sorted({c.reason for c in candidates if c.reason})[:3]
    return TuneforgeError(
        f"{req.model} ({params / 1e9:.2f}B, {req.method}, peft {req.peft}) does not fit {where}: "
        f"the smallest predicted peak is {need:.1f} GiB. " + ("; ".join(reasons) + "." if reasons else ""),
        ("Try: " + "; or ".join(fixes) + ".") if fixes else "Use a smaller model.",
        details={"memory_gb": need},
    )


# ---- explanation, timeout, alternatives, budget ---------------------------------------------------
def _explain(arch: Architecture, req: PlanRequest, stats: DatasetStats, work: RunShape, chosen: Candidate,
             machine: LocalMachine | None, table: HardwareTable | None) -> tuple[list[str], list[str]]:
    notes, warnings = [], []
    m = chosen.memory
    parts = [f"{k} {getattr(m, k):.2f}" for k in ("weights", "lora", "gradients", "optimizer", "activations", "logits",
                                                  "reference_model", "generation", "runtime") if getattr(m, k) > 0.005]
    notes.append(f"Memory per device (GiB): {', '.join(parts)}; total {m.total:.2f}. Sequence length {work.seq_len} "
                 f"x batch {req.batch_size}, {chosen.precision}, gradient checkpointing "
                 f"{'on' if _grad_ckpt(req, _device(req, machine)) else 'off'}.")
    if req.method in ("dpo", "kto") and chosen.peft != "none":
        notes.append("No reference model in memory: with LoRA the reference is the base model with the adapter switched off.")
    if req.method == "grpo":
        notes.append(f"GRPO: {req.num_generations} completions of up to {req.max_completion_length} tokens per prompt; "
                     "generation with transformers' generate (no vLLM), memory-bandwidth bound; no reference model "
                     "(TRL's default beta = 0).")
    if stats.rows is not None and work.mean_tokens is not None:
        seqs = _sequences_per_row(req)
        if stats.mean_tokens is None:
            label = f"ASSUMED: no token statistics, half of max_length {req.max_length}"
        else:
            label = ("estimated" if stats.estimated else "measured") + f"; {stats.source}"
        notes.append(f"Tokens: {work.train_rows} training rows x {work.mean_tokens:.0f} tokens per sequence ({label}) "
                     f"x {seqs} sequence(s) per row x {req.epochs:g} epoch(s) = {work.tokens:,}"
                     + (f" (capped at {req.max_steps} steps)" if req.max_steps else "") + ".")
        if stats.estimated and stats.mean_tokens is not None:
            notes.append("Token counts are an estimate from characters; `tuneforge validate` counts them with the model's tokenizer.")
    if chosen.tokens_per_second:
        if chosen.flavor:
            notes.append(f"Throughput: {chosen.gpus} x {chosen.flavor.peak_tflops:g} TFLOPs peak x {chosen.utilisation:.0%} "
                         f"utilisation / {chosen.flops_per_token / 1e9:.2f} GFLOPs per token "
                         f"(~{'6' if chosen.peft == 'none' else '4'}N plus attention"
                         f"{', +2N recompute' if _grad_ckpt(req, 'cuda') else ''}) = {chosen.tokens_per_second:,.0f} tokens/s.")
        else:
            notes.append(f"Throughput on this {machine.name if machine else 'machine'}: {chosen.tokens_per_second:,.0f} tokens/s "
                         f"from {chosen.flops_per_token / 1e9:.2f} GFLOPs per token at an effective "
                         f"{(machine.peak_tflops if machine else 0) * 1000:.0f} GFLOP/s (run --calibrate to measure it).")
    if chosen.hours is not None:
        cost = f", ${chosen.cost_usd:.2f} at ${chosen.price:.2f}/h" if chosen.cost_usd is not None else ""
        notes.append(f"Time: {chosen.train_hours * 60:.0f} min training + {chosen.overhead_minutes:.0f} min start-up, "
                     f"download, load and save{cost}.")
    if table is not None:
        notes.append(f"Prices and flavors: {table.source}.")
    if machine is not None and machine.device == "cpu":
        if machine.available_gb is not None and m.total > machine.available_gb:
            warnings.append(f"The run needs about {m.total:.1f} GiB and only {machine.available_gb:g} GB of RAM is free now.")
        if chosen.train_hours is not None and chosen.train_hours > 2:
            warnings.append(f"About {chosen.train_hours:.1f} h on this CPU: consider --backend hf, a smaller model or fewer rows.")
    return notes, warnings


def _timeout(c: Candidate, device: str = "cuda") -> int | None:
    """ETA x 1.3 + a load/push buffer, at least 15 minutes. A CPU shared with other work can run several
    times slower than its estimate, so local CPU runs get ETA x 3 instead of a job killed half way."""
    if c.train_hours is None:
        return None
    buffer = max(5.0, 1.5 * c.overhead_minutes) * 60
    factor = CPU_TIMEOUT_FACTOR if (c.flavor is None and device == "cpu") else TIMEOUT_FACTOR
    seconds = c.train_hours * 3600 * factor + buffer
    seconds = max(MIN_TIMEOUT_SECONDS, math.ceil(seconds / 300) * 300)
    return int(min(seconds, MAX_TIMEOUT_SECONDS))


def _alternatives(chosen: Candidate, candidates: list[Candidate], limit: int = 5) -> list[Alternative]:
    def alt(c: Candidate, why: str) -> Alternative:
        return Alternative(flavor=c.flavor.name if c.flavor else None, gpus=c.gpus, peft=c.peft, distributed=c.distributed,
                           fits=c.fits, memory_gb=c.memory.total, vram_gb=c.capacity_gb or None,
                           hours=_round(c.hours, 3), cost_usd=_round(c.cost_usd, 2), why=why)

    out: list[Alternative] = []
    others = [c for c in candidates if c is not chosen]
    fitting = sorted((c for c in others if c.fits), key=_cost_key)
    faster = sorted((c for c in fitting if c.hours is not None and chosen.hours is not None and c.hours < chosen.hours * 0.75),
                    key=lambda c: (c.peft != chosen.peft, c.hours or 0))
    if faster:
        c = faster[0]
        out.append(alt(c, f"faster: {c.hours:.2f} h instead of {chosen.hours:.2f} h"
                          + (f", ${c.cost_usd:.2f}" if c.cost_usd is not None else "")))
    for c in fitting:
        if len(out) >= limit - 1:
            break
        if any(a.flavor == (c.flavor.name if c.flavor else None) and a.peft == c.peft for a in out):
            continue
        if c.peft != chosen.peft:
            why = f"{c.peft} instead of {chosen.peft}: {c.memory.total:.1f} GiB"
        else:
            why = "also fits" + (f", ${c.cost_usd:.2f}" if c.cost_usd is not None else "")
        out.append(alt(c, why))
    blocked = sorted((c for c in others if not c.fits and c.reason and (c.price or 0) <= (chosen.price or 0)),
                     key=lambda c: -(c.price or 0))
    if blocked:
        out.append(alt(blocked[0], f"does not fit: {blocked[0].reason}"))
    return out[:limit]


def _apply_budget(p: Plan, req: PlanRequest, chosen: Candidate, candidates: list[Candidate], work: RunShape) -> Plan:
    budget = req.budget_usd or 0.0
    if p.cost_usd is None:
        p.notes.append(f"Budget ${budget:.2f}: no cost to compare (" + ("local run, free" if p.backend == "local"
                                                                     else "row count unknown") + ").")
        return p
    if p.cost_usd <= budget:
        p.within_budget = True
        p.budget_usd = budget
        p.notes.append(f"Within the ${budget:.2f} budget (estimated ${p.cost_usd:.2f}).")
        return p
    p.within_budget = False
    p.budget_usd = budget
    overhead_cost = (chosen.overhead_minutes / 60) * (chosen.price or 0)
    train_cost = (chosen.train_hours or 0) * (chosen.price or 0)
    suggestions = []
    if budget > overhead_cost and train_cost > 0 and p.steps:
        share = (budget - overhead_cost) / train_cost
        max_steps = max(1, int(p.steps * share))
        p.max_steps = max_steps
        suggestions.append(f"cap the run at max_steps={max_steps} ({share:.0%} of the {p.steps} planned steps)")
    cheaper = sorted((c for c in candidates if c.fits and c.cost_usd is not None and c.cost_usd <= budget), key=_cost_key)
    if cheaper:
        c = cheaper[0]
        suggestions.append(f"or use {c.flavor.name if c.flavor else 'this machine'} with {c.peft} "
                           f"(${c.cost_usd:.2f}, {c.hours:.2f} h)")
        if not any(a.flavor == (c.flavor.name if c.flavor else None) and a.peft == c.peft for a in p.alternatives):
            p.alternatives.insert(0, Alternative(
                flavor=c.flavor.name if c.flavor else None, gpus=c.gpus, peft=c.peft, distributed=c.distributed, fits=True,
                memory_gb=c.memory.total, vram_gb=c.capacity_gb, hours=_round(c.hours, 3), cost_usd=_round(c.cost_usd, 2),
                why=f"within the ${budget:.2f} budget"))
    if req.max_length > 512:
        suggestions.append(f"or shorten max_length (now {req.max_length}) if your rows allow")
    msg = f"Over budget: estimated ${p.cost_usd:.2f} > ${budget:.2f}. " + ("Proposal: " + "; ".join(suggestions) + "."
                                                                          if suggestions else "Use a smaller model or less data.")
    p.notes.append(msg)
    p.warnings.append(msg)
    return p
