"""Starting a training run: the config, one process per GPU when asked, seed, output folder, precision, device.

torch is imported inside the functions that need it, so a bad config fails before the slow imports.
"""

from __future__ import annotations

import os
import random
import resource
import sys
import time
from pathlib import Path

from _config import config_from_args
from _events import emit


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accelerate_config(strategy: str, processes: int, use_cpu: bool = False) -> dict:
    """The `accelerate launch --config_file` mapping for a strategy: ddp (one process per device), fsdp (FULL_SHARD,
    transformer-block wrapping, sharded state dict; FSDP2), deepspeed (ZeRO-3, no offload). Read by accelerate's
    own config classes (tests/test_multiprocess_launch.py loads each with them). Mixed precision stays the
    TrainingArguments' (the template's precision choice), not the launcher's."""
    mixed = "no"
    base = {"compute_environment": "LOCAL_MACHINE", "debug": False, "machine_rank": 0, "num_machines": 1,
            "num_processes": int(processes), "main_training_function": "main", "mixed_precision": mixed,
            "rdzv_backend": "static", "same_network": True, "use_cpu": bool(use_cpu), "downcast_bf16": "no",
            "tpu_env": [], "tpu_use_cluster": False, "tpu_use_sudo": False}
    if strategy == "fsdp":
        return {**base, "distributed_type": "FSDP", "fsdp_config": {
            "fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_offload_params": False, "fsdp_reshard_after_forward": True, "fsdp_state_dict_type": "SHARDED_STATE_DICT",
            "fsdp_activation_checkpointing": False}}
    if strategy == "deepspeed":
        return {**base, "distributed_type": "DEEPSPEED", "deepspeed_config": {
            "zero_stage": 3, "offload_optimizer_device": "none", "offload_param_device": "none",
            "zero3_init_flag": True, "zero3_save_16bit_model": True, "gradient_accumulation_steps": "auto",
            "gradient_clipping": "auto", "deepspeed_multinode_launcher": "standard"}}
    # MULTI_GPU on a CPU too: accelerate then starts the processes through torchrun (MULTI_CPU would need mpirun),
    # and each picks gloo once TrainingArguments says use_cpu
    return {**base, "distributed_type": "MULTI_GPU", "gpu_ids": "all"}


def launch_strategy(requested: str | None) -> str:
    """ddp, fsdp or deepspeed; deepspeed without the deepspeed package falls back to fsdp (said in an event)."""
    strategy = requested if requested in ("fsdp", "deepspeed") else "ddp"
    if strategy == "deepspeed":
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            emit("status", message="speed: deepspeed unavailable (not installed: pip install deepspeed); using fsdp")
            strategy = "fsdp"
    return strategy


def relaunch_command(cfg: dict, argv: list[str] | None, script: str, config_dir: Path) -> list[str]:
    """`python -m accelerate.commands.launch --config_file <generated> ... script args`: one process per GPU (a CPU
    machine: gloo processes, for tests). The generated config is written into config_dir."""
    import json

    launch = cfg.get("launch") or {}
    processes = int(launch.get("gpus") or 1)
    strategy = launch_strategy(launch.get("strategy"))
    use_cpu = os.environ.get("CUDA_VISIBLE_DEVICES") == "" or not _cuda_visible()
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / f"accelerate_{strategy}.json"  # accelerate reads .json and .yaml config files alike
    path.write_text(json.dumps(accelerate_config(strategy, processes, use_cpu),
                               indent=2), encoding="utf-8")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(path), "--num_processes",
           str(processes), "--num_machines", "1", "--main_process_port", str(free_port())]
    if use_cpu:
        cmd += ["--num_cpu_threads_per_process", str(max(1, (os.cpu_count() or 1) // processes))]
    return cmd + [os.path.abspath(script), *(sys.argv[1:] if argv is None else argv)]


def _cuda_visible() -> bool:
    """A CUDA device without importing torch (the relaunch happens before the slow imports)."""
    return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvidiactl")


def maybe_relaunch_distributed(cfg: dict, argv: list[str] | None, script: str) -> None:
    """Multi-GPU flavors: run this same script under `accelerate launch`, one process per GPU; only rank 0 prints
    events (_events.emit) and writes the results."""
    launch = cfg.get("launch") or {}
    gpus = int(launch.get("gpus") or 1)
    if gpus <= 1 or "LOCAL_RANK" in os.environ:
        return
    out = Path(cfg.get("output_dir") or "outputs")
    cmd = relaunch_command(cfg, argv, script, out)
    strategy = Path(cmd[cmd.index("--config_file") + 1]).stem.removeprefix("accelerate_")
    emit("status", message=f"launching {gpus} processes ({strategy})")
    sys.stdout.flush()
    os.execv(sys.executable, cmd)


def begin(argv: list[str] | None, doc: str, script: str, check=None) -> tuple[dict, float]:
    """The run config (checked by check(cfg) before anything slow), relaunched per GPU when asked: (cfg, start time)."""
    cfg = config_from_args(argv, doc)
    if check is not None:
        check(cfg)
    maybe_relaunch_distributed(cfg, argv, script)
    t_start = time.time()
    emit("status", message="loading libraries")
    return cfg, t_start


def seed_everything(cfg: dict) -> int:
    import torch

    seed = int(cfg.get("seed", 42))
    random.seed(seed)
    torch.manual_seed(seed)
    return seed


def start_run(cfg: dict) -> tuple[int, Path, str, bool]:
    """Seed, the output folder (created), the precision and whether a GPU trains: (seed, out_dir, precision, on_gpu)."""
    import torch

    seed = seed_everything(cfg)
    out_dir = Path(cfg["output_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    return seed, out_dir, choose_precision(cfg["train"].get("precision", "auto")), torch.cuda.is_available()


def choose_precision(requested: str) -> str:
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    try:  # CPUs with native bf16 (AVX512-BF16 / AMX) train ~1.7x faster in bf16 than fp32
        if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported():
            return "bf16"
    except AttributeError:
        pass
    return "fp32"


def peak_memory() -> dict:
    import torch

    out = {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "peak_cuda_bytes": None}
    if torch.cuda.is_available():
        out["peak_cuda_bytes"] = int(torch.cuda.max_memory_allocated())
    return out
