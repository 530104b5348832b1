"""Hugging Face Jobs hardware flavors: GPU count and list price, and the launch each flavor needs.

A light module (no huggingface_hub import) so that planning and config building can use it. The live
list comes from `list_jobs_hardware()` at submission; this table is the fallback and the source of
`launch_for_flavor`, which sets `RunConfig.launch` before the config file is written: a flavor with
N > 1 GPUs runs the template under `accelerate launch --num_processes N` (the template relaunches
itself when launch.gpus > 1), a single-GPU or CPU flavor runs it plainly.
"""

from __future__ import annotations

from typing import Any

from ..config import LaunchSpec
from ..errors import ConfigError

# name -> (GPUs, $/hour). Official prices from the huggingface_hub docs (autumn 2026).
FLAVORS: dict[str, tuple[int, float]] = {
    "cpu-basic": (0, 0.01),
    "cpu-upgrade": (0, 0.03),
    "cpu-performance": (0, 1.90),
    "cpu-xl": (0, 1.00),
    "t4-small": (1, 0.40),
    "t4-medium": (1, 0.60),
    "l4x1": (1, 0.80),
    "l4x4": (4, 3.80),
    "a10g-small": (1, 1.00),
    "a10g-large": (1, 1.50),
    "a10g-largex2": (2, 3.00),
    "a10g-largex4": (4, 5.00),
    "a100-large": (1, 2.50),
    "a100x4": (4, 10.00),
    "a100x8": (8, 20.00),
    "l40sx1": (1, 1.80),
    "l40sx4": (4, 8.30),
    "l40sx8": (8, 23.50),
    "h200": (1, 5.00),
    "h200x2": (2, 10.00),
    "h200x4": (4, 20.00),
    "h200x8": (8, 40.00),
    "rtx-pro-6000": (1, 2.75),
    "rtx-pro-6000x2": (2, 5.50),
    "rtx-pro-6000x4": (4, 11.00),
    "rtx-pro-6000x8": (8, 22.00),
}


def gpus_for(flavor: str) -> int | None:
    """GPUs of a flavor from the table (0 for CPU flavors), None when the flavor is not in it."""
    entry = FLAVORS.get(flavor)
    return None if entry is None else entry[0]


def price_for(flavor: str) -> float | None:
    entry = FLAVORS.get(flavor)
    return None if entry is None else entry[1]


def launch_for_flavor(flavor: str, distributed: str | None = None, current: LaunchSpec | None = None) -> LaunchSpec:
    """The launch a flavor needs: one process per GPU, DDP unless the plan says FSDP.

    Call this before the config file is written (training.start_training, for backend 'hf').
    An unknown flavor keeps `current` (the backend then checks it against the live hardware list)."""
    gpus = gpus_for(flavor)
    if gpus is None:
        return current or LaunchSpec()
    return expected_launch(gpus, distributed)


def expected_launch(flavor_gpus: int, distributed: str | None) -> LaunchSpec:
    if flavor_gpus <= 1:
        return LaunchSpec(gpus=1, strategy="none")
    return LaunchSpec(gpus=flavor_gpus, strategy="fsdp" if distributed == "fsdp" else "ddp")


def check_launch(launch: dict[str, Any] | None, flavor: str, flavor_gpus: int, distributed: str | None) -> None:
    """Refuse a config whose launch does not use the flavor's GPUs the way the plan said."""
    launch = launch or {}
    gpus = int(launch.get("gpus") or 1)
    strategy = launch.get("strategy") or "none"
    want = expected_launch(flavor_gpus, distributed)
    fix = (
        f"Let tuneforge set it from the flavor, or write launch: {{gpus: {want.gpus}, strategy: {want.strategy}}} "
        f"in the config (or pick a flavor with {gpus} GPU{'s' if gpus != 1 else ''})."
    )
    if gpus != want.gpus:
        raise ConfigError(
            f"Flavor {flavor} has {flavor_gpus or 'no'} GPU{'s' if flavor_gpus != 1 else ''}, but the config's launch.gpus is {gpus}: "
            + ("GPUs would sit idle while you pay for them." if gpus < want.gpus else "the extra processes would have no GPU."),
            fix,
        )
    if want.gpus > 1 and strategy == "none":
        raise ConfigError(f"Flavor {flavor} runs {want.gpus} processes, but launch.strategy is 'none'.", fix)
    if want.gpus > 1 and distributed in ("ddp", "fsdp") and strategy != distributed:
        raise ConfigError(
            f"The plan chose {distributed.upper()} for {flavor}, but launch.strategy is {strategy!r}.", fix
        )
