"""Hardware to plan against: Hugging Face Jobs flavors (live or the bundled snapshot) or this machine.

Online, the flavor table comes from `HfApi.list_jobs_hardware()` (names, accelerator, VRAM, price per
minute) and is cached for a day under $TUNEFORGE_HOME. Offline, or when the Hub does not answer within a
few seconds, the bundled, dated snapshot of the official table is used, and the plan says so. The table,
its types and the GPU specs (peak FLOPs, memory bandwidth) live in `tuneforge.flavors`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .. import paths
from ..flavors import HardwareTable, gpu_model, snapshot_table, table_from_api

LIVE_TIMEOUT_SECONDS = 6.0
LIVE_CACHE_SECONDS = 24 * 3600
LIVE_CACHE_FILE = "hardware_live.json"
CALIBRATION_FILE = "calibration.json"


class LocalMachine(BaseModel):
    """This machine: its GPUs (nvidia-smi) or, without one, its CPU and RAM."""

    device: str  # "cuda" | "cpu"
    name: str
    gpus: int = 0
    memory_gb: float = Field(description="Per-GPU memory, or total RAM for CPU training.")
    available_gb: float | None = None
    cores: int = 1
    peak_tflops: float = 0.0
    memory_bandwidth_gbs: float = 0.0
    bf16: bool = True


def hub_offline() -> bool:
    if str(os.environ.get("HF_HUB_OFFLINE", "")).lower() in ("1", "true", "yes", "on"):
        return True
    try:
        from huggingface_hub import constants

        return bool(getattr(constants, "HF_HUB_OFFLINE", False))
    except Exception:  # noqa: BLE001
        return False


def _fetch_live(timeout: float) -> list[Any] | None:
    result: dict[str, Any] = {}

    def worker() -> None:
        try:
            from huggingface_hub import HfApi

            result["items"] = HfApi().list_jobs_hardware()
        except Exception as exc:  # noqa: BLE001  (no network, auth, 5xx: the snapshot takes over)
            result["error"] = exc

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    thread.join(timeout)
    return result.get("items")


def _cache_path():
    return paths.home() / LIVE_CACHE_FILE


def hardware_table(*, live: bool | None = None) -> HardwareTable:
    """The live table when the Hub answers (cached a day), else the bundled snapshot."""
    if live is None:
        live = not hub_offline() and os.environ.get("TUNEFORGE_PLANNER_LIVE_HARDWARE", "1") != "0"
    if not live:
        return snapshot_table()
    cache = _cache_path()
    try:
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if time.time() - float(cached.get("fetched_at", 0)) < LIVE_CACHE_SECONDS:
            table = HardwareTable.model_validate(cached["table"])
            if table.gpu_flavors():
                return table
    except (OSError, ValueError, KeyError):
        pass
    items = _fetch_live(LIVE_TIMEOUT_SECONDS)
    if items:
        table = table_from_api(items, as_of=time.strftime("%Y-%m-%d"))
        if table.gpu_flavors():
            try:
                cache.write_text(json.dumps({"fetched_at": time.time(), "table": table.model_dump()}), encoding="utf-8")
            except OSError:
                pass
            return table
    return snapshot_table()


# ---- this machine ---------------------------------------------------------------------------------
def _nvidia_gpus() -> list[tuple[str, float]]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, _, mem = line.rpartition(",")
        try:
            gpus.append((name.strip(), float(mem) / 1024))  # MiB -> GiB
        except ValueError:
            continue
    return gpus


# Effective CPU throughput for bf16-autocast LoRA training through the SFT template, GFLOP/s per core: this
# project's 2-core AMD EPYC measured ~15 per core idle (SmolLM2-135M LoRA, 58 tokens/s) and 2-4 while shared
# with other work. 8 sits between; local CPU timeouts allow 3x the estimate. `plan --calibrate` replaces it
# with this machine's measured rate.
CPU_GFLOPS_PER_CORE = 8.0


def local_machine() -> LocalMachine:
    import psutil

    gpus = _nvidia_gpus()
    if gpus:
        name, mem = gpus[0]
        spec = gpu_model(name)
        return LocalMachine(device="cuda", name=name, gpus=len(gpus), memory_gb=round(mem, 1),
                            peak_tflops=spec.peak_tflops if spec else 100.0,
                            memory_bandwidth_gbs=spec.memory_bandwidth_gbs if spec else 500.0,
                            bf16=spec.bf16 if spec else True, cores=os.cpu_count() or 1)
    vm = psutil.virtual_memory()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    gflops = cores * CPU_GFLOPS_PER_CORE
    measured = _calibrated_cpu_gflops()
    return LocalMachine(device="cpu", name=f"CPU ({cores} cores{', calibrated' if measured else ''})", gpus=0,
                        memory_gb=round(vm.total / 1024**3, 1), available_gb=round(vm.available / 1024**3, 1), cores=cores,
                        peak_tflops=(measured or gflops) / 1000, memory_bandwidth_gbs=20.0, bf16=True)


# ---- this machine's measured rate (`plan --calibrate`) ---------------------------------------------
def calibration_path() -> Path:
    """Where `plan --calibrate` keeps this machine's measured training rate."""
    return paths.home() / CALIBRATION_FILE


def load_calibration() -> dict[str, Any]:
    try:
        data = json.loads(calibration_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def save_cpu_rate(flops_per_second: float) -> None:
    """Keep the CPU training rate a canary measured; later local plans use it instead of the default."""
    data = load_calibration()
    data["cpu"] = {"effective_gflops": round(flops_per_second / 1e9, 2), "cores": os.cpu_count(), "measured_at": time.time()}
    try:
        calibration_path().write_text(json.dumps(data, indent=2), encoding="utf-8")
    except OSError:
        pass


def _calibrated_cpu_gflops() -> float | None:
    """The training rate `plan --calibrate` measured on this machine, if any."""
    try:
        value = float(load_calibration()["cpu"]["effective_gflops"])
        return value if value > 0 else None
    except (ValueError, KeyError, TypeError):
        return None
