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


def maybe_relaunch_distributed(cfg: dict, argv: list[str] | None, script: str) -> None:
    """Multi-GPU flavors: run this same script under `accelerate launch`, one process per GPU."""
    launch = cfg.get("launch") or {}
    gpus = int(launch.get("gpus") or 1)
    if gpus <= 1 or "LOCAL_RANK" in os.environ:
        return
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(gpus), "--num_machines", "1"]
    if launch.get("strategy") == "fsdp":
        cmd += ["--use_fsdp", "--fsdp_sharding_strategy", "FULL_SHARD", "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP",
                "--fsdp_state_dict_type", "SHARDED_STATE_DICT"]
    else:
        cmd += ["--multi_gpu"]
    cmd += [os.path.abspath(script), *(sys.argv[1:] if argv is None else argv)]
    emit("status", message=f"launching {gpus} processes ({launch.get('strategy') or 'ddp'})")
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
