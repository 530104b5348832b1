"""Check setup: is this machine ready to validate, plan, train and export?

Answers without importing torch (or any training library): packages are found with
`importlib.util.find_spec` and their versions read from installed metadata; GPUs come from
`nvidia-smi`. The Hugging Face token is never read into the report: only whether one is present
and where it came from. `whoami` (a network call) runs only when asked with `online=True`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

from .. import __version__, paths
from ..gguf import toolchain
from ..reports.setup import (
    LOW_DISK_GB,
    BackendStatus,
    DiskStatus,
    GpuInfo,
    HfToken,
    PackageStatus,
    SetupReport,
    ToolchainStatus,
    TorchInfo,
    TrainExtra,
)

#: what the `train` extra brings for local training (imported by the templates, never here)
TRAIN_PACKAGES = ("torch", "transformers", "trl", "peft", "datasets", "accelerate")

# ---- parts ----------------------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def token_file() -> Path:
    """Where huggingface_hub keeps the login token ($HF_TOKEN_PATH, else $HF_HOME/token)."""
    explicit = os.environ.get("HF_TOKEN_PATH")
    if explicit:
        return Path(explicit).expanduser()
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "huggingface"
    )
    return Path(hf_home).expanduser() / "token"


def find_token() -> tuple[str | None, HfToken]:
    """The token (for the caller's own use, never for display) and a report of where it came from.

    Same order as huggingface_hub: HF_TOKEN, then HUGGING_FACE_HUB_TOKEN, then the token file.
    """
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        value = (os.environ.get(var) or "").strip()
        if value:
            return value, HfToken(present=True, source=var)  # type: ignore[arg-type]
    path = token_file()
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        value = ""
    if value:
        return value, HfToken(present=True, source="token file", path=str(path))
    return None, HfToken(present=False, source="none")


def check_token(online: bool = False) -> HfToken:
    token, report = find_token()
    if online and token:
        try:
            from huggingface_hub import whoami

            info = whoami(token=token)
            report.user = info.get("name") if isinstance(info, dict) else None
        except Exception as exc:  # offline, revoked token, hub down: report, never raise
            text = str(exc).replace(token, "***")
            report.whoami_error = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:300]
    return report


def _torch_build(version: str) -> Literal["cuda", "rocm", "cpu", "unknown"]:
    local = version.partition("+")[2]
    if local.startswith("cu"):
        return "cuda"
    if local.startswith("rocm"):
        return "rocm"
    if local == "cpu":
        return "cpu"
    # Linux wheels from PyPI without a tag are CUDA builds; macOS and Windows ones are CPU/MPS.
    return "cuda" if sys.platform.startswith("linux") and platform.machine() == "x86_64" and not local else "unknown"


def nvidia_gpus(timeout: float = 10.0) -> list[GpuInfo]:
    """GPUs from nvidia-smi; empty when there is none (or no driver)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    gpus = []
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        parts = [p.strip() for p in line.split(",")]
        if not parts or not parts[0]:
            continue
        mem = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        gpus.append(GpuInfo(name=parts[0], memory_total_mib=mem, driver=parts[2] if len(parts) > 2 else None))
    return gpus


def check_torch() -> TorchInfo:
    version = _version("torch") if _installed("torch") else None
    return TorchInfo(
        installed=version is not None,
        version=version,
        build=_torch_build(version) if version else None,
        gpus=nvidia_gpus(),
        apple_silicon=sys.platform == "darwin" and platform.machine() == "arm64",
    )


def check_train_extra() -> TrainExtra:
    packages = []
    for name in TRAIN_PACKAGES:
        ok = _installed(name)
        packages.append(PackageStatus(name=name, installed=ok, version=_version(name) if ok else None))
    missing = [p.name for p in packages if not p.installed]
    return TrainExtra(installed=not missing, packages=packages, missing=missing)


def check_disk(root: Path) -> DiskStatus:
    usage = shutil.disk_usage(root)
    free_gb = usage.free / 1e9
    return DiskStatus(path=str(root), free_gb=round(free_gb, 1), total_gb=round(usage.total / 1e9, 1), low=free_gb < LOW_DISK_GB)


def check_toolchain() -> ToolchainStatus:
    tc = toolchain.installed()
    if tc is None:
        return ToolchainStatus(
            cached=False,
            path=str(toolchain.toolchain_dir()),
            version=toolchain.LLAMA_CPP_PYTHON_VERSION,
            note="Built on the first GGUF export (5-15 minutes on 2 cores), then cached.",
        )
    return ToolchainStatus(cached=True, path=tc.root, version=tc.version, commit=tc.commit, note="Ready.")


# ---- the report ------------------------------------------------------------------------------------


def check_setup(online: bool = False) -> SetupReport:
    """Check everything; never raises for a missing piece (that is what the report is for)."""
    root = paths.home()
    token = check_token(online=online)
    torch_info = check_torch()
    extra = check_train_extra()
    disk = check_disk(root)
    tc = check_toolchain()

    steps: list[str] = []
    if extra.installed:
        where = ", ".join(g.name for g in torch_info.gpus) or "CPU only (fine for tiny models and smoke tests)"
        local = BackendStatus(name="local", available=True, reason=f"Training packages installed; {where}.")
    else:
        local = BackendStatus(name="local", available=False, reason=f"Missing packages: {', '.join(extra.missing)}.")
        steps.append(
            "Install the training extra for local runs: pip install 'tuneforge[train]' "
            "(CPU-only machines: install torch from https://download.pytorch.org/whl/cpu first)."
        )
    if not token.present:
        hf = BackendStatus(name="hf", available=False, reason="No Hugging Face token found.")
        steps.append("Log in for Hugging Face Jobs and Hub pushes: `hf auth login`, or set HF_TOKEN in the environment.")
    elif online and token.whoami_error:
        hf = BackendStatus(name="hf", available=False, reason=f"The token did not work: {token.whoami_error}")
        steps.append("Check the token: create a new one with write access at https://huggingface.co/settings/tokens.")
    else:
        checked = f" (logged in as {token.user})" if token.user else " (not verified: pass online=true / --online)"
        hf = BackendStatus(name="hf", available=True, reason=f"Token from {token.source}{checked}; Jobs need a paid account or credits.")
    if disk.low:
        steps.append(f"Free disk space under {disk.path}: only {disk.free_gb} GB left (or set TUNEFORGE_HOME to a bigger disk).")
    if extra.installed and torch_info.build == "cuda" and not torch_info.gpus:
        steps.append("torch is a CUDA build but no NVIDIA GPU was found: local runs will use the CPU (slow beyond ~0.5B).")
    if torch_info.gpus and torch_info.build == "cpu":
        steps.append("An NVIDIA GPU is present but torch is a CPU build: install a CUDA build of torch to use the GPU.")

    return SetupReport(
        tuneforge_version=__version__,
        python=f"{platform.python_version()} ({sys.executable})",
        platform=f"{platform.system()} {platform.machine()}",
        home=str(root),
        hf_token=token,
        backends=[local, hf],
        torch=torch_info,
        train_extra=extra,
        disk=disk,
        gguf_toolchain=tc,
        ready_local=local.available,
        ready_hf=hf.available,
        next_steps=steps,
    )


__all__ = ["SetupReport", "check_setup", "find_token"]
