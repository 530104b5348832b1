"""Hardware to plan against: Hugging Face Jobs flavors (live or the bundled snapshot) or this machine.

Online, the flavor table comes from `HfApi.list_jobs_hardware()` (names, accelerator, VRAM, price per
minute) and is cached for a day under $TUNEFORGE_HOME. Offline, or when the Hub does not answer within a
few seconds, the bundled, dated snapshot of the official table is used, and the plan says so. Peak
FLOPs and memory bandwidth per GPU model are not in the API: they come from the snapshot's GPU table.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field

from .. import paths

LIVE_TIMEOUT_SECONDS = 6.0
LIVE_CACHE_SECONDS = 24 * 3600
LIVE_CACHE_FILE = "hardware_live.json"


class GpuModel(BaseModel):
    vram_gb: float
    peak_tflops: float = Field(description="Dense bf16 (fp16 on T4) tensor TFLOPs per GPU.")
    memory_bandwidth_gbs: float
    bf16: bool = True


class Flavor(BaseModel):
    name: str
    gpu: str | None = None
    gpus: int = 0
    vram_gb_per_gpu: float = 0.0
    price_per_hour: float
    ram_gb: float | None = Field(default=None, description="Host RAM, where known.")
    peak_tflops: float = 0.0
    memory_bandwidth_gbs: float = 0.0
    bf16: bool = True

    @property
    def vram_gb(self) -> float:
        return self.vram_gb_per_gpu * self.gpus


class HardwareTable(BaseModel):
    flavors: list[Flavor]
    source: str
    as_of: str

    def get(self, name: str) -> Flavor | None:
        return next((f for f in self.flavors if f.name == name), None)

    def gpu_flavors(self) -> list[Flavor]:
        return [f for f in self.flavors if f.gpus > 0]


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


@lru_cache(maxsize=1)
def _snapshot_raw() -> dict[str, Any]:
    return json.loads(paths.data_path("hardware_snapshot.json").read_text(encoding="utf-8"))


def gpu_models() -> dict[str, GpuModel]:
    return {k: GpuModel(**v) for k, v in _snapshot_raw()["gpus"].items()}


def _gpu_model(name: str | None) -> GpuModel | None:
    if not name:
        return None
    models = gpu_models()
    key = name.upper().replace("NVIDIA", "").strip()
    for known, spec in models.items():
        if key == known.upper() or key.replace("-", " ") == known.upper():
            return spec
    for known, spec in sorted(models.items(), key=lambda kv: -len(kv[0])):  # "A100 80GB PCIe" -> A100
        if known.upper() in key or known.upper().replace(" ", "") in key.replace(" ", ""):
            return spec
    return None


def snapshot_table() -> HardwareTable:
    raw = _snapshot_raw()
    flavors = []
    for f in raw["flavors"]:
        spec = _gpu_model(f.get("gpu"))
        flavors.append(Flavor(
            name=f["name"], gpu=f.get("gpu"), gpus=int(f.get("gpus") or 0), price_per_hour=float(f["price_per_hour"]),
            ram_gb=f.get("ram_gb"),
            vram_gb_per_gpu=spec.vram_gb if spec else 0.0, peak_tflops=spec.peak_tflops if spec else 0.0,
            memory_bandwidth_gbs=spec.memory_bandwidth_gbs if spec else 0.0, bf16=spec.bf16 if spec else True,
        ))
    return HardwareTable(flavors=flavors, source=f"bundled snapshot of the official price table ({raw['as_of']})",
                         as_of=raw["as_of"])


def _gb(text: Any) -> float | None:
    m = re.search(r"(\d+(?:\.\d+)?)\s*(GB|GiB|TB)?", str(text or ""), re.I)
    if not m:
        return None
    value = float(m.group(1))
    return value * 1024 if (m.group(2) or "").upper() == "TB" else value


def table_from_api(items: list[Any], as_of: str) -> HardwareTable:
    """Build the table from `list_jobs_hardware()` results (JobHardwareInfo objects or raw dicts)."""
    flavors = []
    for item in items:
        get = (lambda k, d=None: item.get(k, d)) if isinstance(item, dict) else (lambda k, d=None: getattr(item, k, d))
        name = get("name")
        acc = get("accelerator")
        if isinstance(acc, dict):
            acc_get = acc.get
        elif acc is not None:
            acc_get = lambda k, d=None, _a=acc: getattr(_a, k, d)  # noqa: E731
        else:
            acc_get = None
        unit_cost = get("unit_cost_usd", get("unitCostUSD"))
        unit = str(get("unit_label", get("unitLabel")) or "minute").lower()
        if not name or unit_cost is None:
            continue
        per_hour = float(unit_cost) * (60 if unit.startswith("minute") else 3600 if unit.startswith("second") else 1)
        ram = _gb(get("ram"))
        if acc_get is None:
            flavors.append(Flavor(name=name, price_per_hour=round(per_hour, 4), ram_gb=ram))
            continue
        model = str(acc_get("model") or "")
        qty = int(re.sub(r"\D", "", str(acc_get("quantity") or "1")) or 1)
        spec = _gpu_model(model)
        vram = _gb(acc_get("vram"))
        # Known GPU models keep their per-GPU memory; otherwise the API's "vram" is the flavor's total.
        per_gpu = spec.vram_gb if spec else (vram / qty if vram else 0.0)
        flavors.append(Flavor(
            name=name, gpu=model or None, gpus=qty, vram_gb_per_gpu=per_gpu, price_per_hour=round(per_hour, 4), ram_gb=ram,
            peak_tflops=spec.peak_tflops if spec else 0.0, memory_bandwidth_gbs=spec.memory_bandwidth_gbs if spec else 0.0,
            bf16=spec.bf16 if spec else True,
        ))
    return HardwareTable(flavors=flavors, source="live: HfApi.list_jobs_hardware()", as_of=as_of)


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
        spec = _gpu_model(name)
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


def _calibrated_cpu_gflops() -> float | None:
    """The training rate `plan --calibrate` measured on this machine, if any."""
    try:
        data = json.loads((paths.home() / "calibration.json").read_text(encoding="utf-8"))
        value = float(data["cpu"]["effective_gflops"])
        return value if value > 0 else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
