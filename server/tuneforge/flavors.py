"""The one hardware table: Hugging Face Jobs flavors (GPUs, GPU model and memory, host RAM, price) and lookups.

A leaf module (stdlib, pydantic and other leaves only). The data is the bundled, dated snapshot of the
official table (`data/hardware_snapshot.json`): flavors by name, and per GPU model its memory, peak
FLOPs and memory bandwidth (which the Jobs API does not give). `table_from_api` reads the live
`HfApi.list_jobs_hardware()` answer into the same `HardwareTable`; the planner fetches and caches it.

Lookups by name (`find_flavor`, `gpus_of`, `price_for`, `host_ram_gb`) read the snapshot, and
`launch_for_flavor` / `check_launch` say how a flavor's GPUs are used: one process per GPU, DDP unless the
plan chose FSDP, under `accelerate launch` when there are several (the template relaunches itself).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field

from . import paths
from .config import LaunchSpec
from .errors import ConfigError

SNAPSHOT_FILE = "hardware_snapshot.json"


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


# ---- the bundled snapshot -------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _snapshot_raw() -> dict[str, Any]:
    return json.loads(paths.data_path(SNAPSHOT_FILE).read_text(encoding="utf-8"))


def gpu_models() -> dict[str, GpuModel]:
    return {k: GpuModel(**v) for k, v in _snapshot_raw()["gpus"].items()}


def gpu_model(name: str | None) -> GpuModel | None:
    """The snapshot's spec of a GPU model named like the Jobs API or nvidia-smi names it ("NVIDIA A100 80GB PCIe")."""
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


def _flavor(name: str, gpu: str | None, gpus: int, price_per_hour: float, ram_gb: float | None,
            vram_gb: float | None = None) -> Flavor:
    spec = gpu_model(gpu)
    # Known GPU models keep their per-GPU memory; otherwise the API's "vram" is the flavor's total.
    per_gpu = spec.vram_gb if spec else (vram_gb / gpus if (vram_gb and gpus) else 0.0)
    return Flavor(name=name, gpu=gpu, gpus=gpus, vram_gb_per_gpu=per_gpu, price_per_hour=price_per_hour, ram_gb=ram_gb,
                  peak_tflops=spec.peak_tflops if spec else 0.0,
                  memory_bandwidth_gbs=spec.memory_bandwidth_gbs if spec else 0.0, bf16=spec.bf16 if spec else True)


@lru_cache(maxsize=1)
def _snapshot() -> HardwareTable:
    raw = _snapshot_raw()
    flavors = [_flavor(f["name"], f.get("gpu"), int(f.get("gpus") or 0), float(f["price_per_hour"]), f.get("ram_gb"))
               for f in raw["flavors"]]
    return HardwareTable(flavors=flavors, source=f"bundled snapshot of the official price table ({raw['as_of']})",
                         as_of=raw["as_of"])


def snapshot_table() -> HardwareTable:
    """The bundled table (a copy: callers may annotate it)."""
    return _snapshot().model_copy(deep=True)


# ---- the live table's wire shape ------------------------------------------------------------------
def _gb(text: Any) -> float | None:
    m = re.search(r"(\d+(?:\.\d+)?)\s*(GB|GiB|TB)?", str(text or ""), re.I)
    if not m:
        return None
    value = float(m.group(1))
    return value * 1024 if (m.group(2) or "").upper() == "TB" else value


def _field(obj: Any, *keys: str) -> Any:
    """The first of `keys` present on an API object or its JSON dict (the wire shape varies by version)."""
    for key in keys:
        value = obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)
        if value is not None:
            return value
    return None


def table_from_api(items: list[Any], as_of: str) -> HardwareTable:
    """Build the table from `list_jobs_hardware()` results (JobHardwareInfo objects or raw dicts)."""
    flavors = []
    for item in items:
        name = _field(item, "name")
        unit_cost = _field(item, "unit_cost_usd", "unitCostUSD")
        unit = str(_field(item, "unit_label", "unitLabel") or "minute").lower()
        if not name or unit_cost is None:
            continue
        per_hour = round(float(unit_cost) * (60 if unit.startswith("minute") else 3600 if unit.startswith("second") else 1), 4)
        ram = _gb(_field(item, "ram"))
        acc = _field(item, "accelerator")
        if acc is None:
            flavors.append(Flavor(name=name, price_per_hour=per_hour, ram_gb=ram))
            continue
        model = str(_field(acc, "model") or "")
        qty = int(re.sub(r"\D", "", str(_field(acc, "quantity") or "1")) or 1)
        flavors.append(_flavor(name, model or None, qty, per_hour, ram, vram_gb=_gb(_field(acc, "vram"))))
    return HardwareTable(flavors=flavors, source="live: HfApi.list_jobs_hardware()", as_of=as_of)


# ---- lookups by name (the snapshot) ---------------------------------------------------------------
def find_flavor(name: str) -> Flavor | None:
    return _snapshot().get(name)


def gpus_of(flavor: str) -> int | None:
    """GPUs of a flavor (0 for CPU flavors), None when the flavor is not in the table."""
    found = find_flavor(flavor)
    return None if found is None else found.gpus


def price_for(flavor: str) -> float | None:
    """List price in USD per hour, None when the flavor is not in the table."""
    found = find_flavor(flavor)
    return None if found is None else found.price_per_hour


def host_ram_gb(flavor: str) -> float | None:
    """Host RAM of a flavor in GB, where the table knows it."""
    found = find_flavor(flavor)
    return None if found is None else found.ram_gb


def flavor_names() -> list[str]:
    """Every flavor in the table, CPU and GPU."""
    return [f.name for f in _snapshot().flavors]


# ---- how a flavor's GPUs are used -----------------------------------------------------------------
def expected_launch(flavor_gpus: int, distributed: str | None) -> LaunchSpec:
    if flavor_gpus <= 1:
        return LaunchSpec(gpus=1, strategy="none")
    return LaunchSpec(gpus=flavor_gpus, strategy="fsdp" if distributed == "fsdp" else "ddp")


def launch_for_flavor(flavor: str, distributed: str | None = None, current: LaunchSpec | None = None) -> LaunchSpec:
    """The launch a flavor needs: one process per GPU, DDP unless the plan says FSDP.

    Set before the config file is written (actions.train.start_training, for backend 'hf'). An unknown
    flavor keeps `current` (the backend then checks it against the live hardware list)."""
    gpus = gpus_of(flavor)
    if gpus is None:
        return current or LaunchSpec()
    return expected_launch(gpus, distributed)


def check_launch(launch: LaunchSpec | Mapping[str, Any] | None, flavor: str, flavor_gpus: int,
                 distributed: str | None) -> None:
    """Refuse a config whose launch does not use the flavor's GPUs the way the plan said."""
    spec = launch if isinstance(launch, LaunchSpec) else LaunchSpec.model_validate(dict(launch or {}))
    gpus, strategy = spec.gpus, spec.strategy
    want = expected_launch(flavor_gpus, distributed)
    fix = (
        f"Let tuneforge set it from the flavor, or write launch: {{gpus: {want.gpus}, strategy: {want.strategy}}} "
        f"in the config (or pick a flavor with {gpus} GPU{'s' if gpus != 1 else ''})."
    )
    if gpus != want.gpus:
        raise ConfigError(
            f"Flavor {flavor} has {flavor_gpus or 'no'} GPU{'s' if flavor_gpus != 1 else ''}, but the config's launch.gpus is {gpus}: "
            + ("GPUs would sit idle while you pay for them." if gpus < want.gpus else "the extra processes would have no GPU."),
            fix, code="config.launch_gpus_mismatch",
        )
    if want.gpus > 1 and strategy == "none":
        raise ConfigError(f"Flavor {flavor} runs {want.gpus} processes, but launch.strategy is 'none'.", fix,
                          code="config.launch_strategy_missing")
    if want.gpus > 1 and distributed in ("ddp", "fsdp") and strategy != distributed:
        raise ConfigError(f"The plan chose {distributed.upper()} for {flavor}, but launch.strategy is {strategy!r}.", fix,
                          code="config.launch_strategy_mismatch")


__all__ = [
    "GpuModel", "Flavor", "HardwareTable", "gpu_models", "gpu_model", "snapshot_table", "table_from_api", "find_flavor",
    "gpus_of", "price_for", "host_ram_gb", "flavor_names", "expected_launch", "launch_for_flavor", "check_launch",
]
