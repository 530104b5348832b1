"""What `tuneforge setup` answers: each part of the machine checked, and what to do about each gap."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

#: below this much free space under $TUNEFORGE_HOME a run or an export is likely to fail
LOW_DISK_GB = 20.0

TokenSource = Literal["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "token file", "none"]


class HfToken(BaseModel):
    present: bool = Field(description="A Hugging Face token was found (its value is never shown).")
    source: TokenSource = Field(description="Where it came from: an environment variable, the token file, or none.")
    path: str | None = Field(default=None, description="The token file, when that is the source.")
    user: str | None = Field(default=None, description="The account name from whoami (only with online=true).")
    whoami_error: str | None = None


class GpuInfo(BaseModel):
    name: str
    memory_total_mib: int | None = None
    driver: str | None = None


class TorchInfo(BaseModel):
    installed: bool
    version: str | None = None
    build: Literal["cuda", "rocm", "cpu", "unknown"] | None = Field(
        default=None, description="Which accelerator the installed wheel was built for (from its version tag)."
    )
    gpus: list[GpuInfo] = Field(default_factory=list, description="GPUs nvidia-smi reports (empty on CPU-only machines).")
    apple_silicon: bool = False


class PackageStatus(BaseModel):
    name: str
    installed: bool
    version: str | None = None


class TrainExtra(BaseModel):
    installed: bool = Field(description="Every package local training needs is installed.")
    packages: list[PackageStatus]
    missing: list[str] = Field(default_factory=list)


class BackendStatus(BaseModel):
    name: Literal["local", "hf"]
    available: bool
    reason: str = Field(description="Why it is (or is not) usable right now.")


class DiskStatus(BaseModel):
    path: str = Field(description="$TUNEFORGE_HOME: job folders, outputs and the GGUF toolchain live here.")
    free_gb: float
    total_gb: float
    low: bool = Field(description=f"Less than {LOW_DISK_GB:.0f} GB free.")


class ToolchainStatus(BaseModel):
    cached: bool = Field(description="The pinned llama.cpp toolchain for GGUF export is built and cached.")
    path: str | None = None
    version: str | None = None
    commit: str | None = None
    note: str = ""


class SetupReport(BaseModel):
    """Everything `tuneforge setup` checks, and what to do about each gap."""

    tuneforge_version: str
    python: str
    platform: str
    home: str
    hf_token: HfToken
    backends: list[BackendStatus]
    torch: TorchInfo
    train_extra: TrainExtra
    disk: DiskStatus
    gguf_toolchain: ToolchainStatus
    ready_local: bool = Field(description="A local training run can start now.")
    ready_hf: bool = Field(description="A Hugging Face Jobs run can be submitted now.")
    next_steps: list[str] = Field(default_factory=list, description="What to fix, most important first.")
