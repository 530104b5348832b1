"""What a GGUF export returns: the files, how each was checked, the Modelfile, the time taken."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class GGUFFile(BaseModel):
    quant: str
    path: str
    bytes: int
    checks: dict[str, Any] = Field(default_factory=dict)
    seconds: float  # making the file (convert or quantize) plus verifying it


class GGUFReport(BaseModel):
    """`{"files": [{"quant", "path", "bytes", "checks", "seconds"}], "modelfile", "seconds", ...}`."""

    files: list[GGUFFile]
    modelfile: str | None
    seconds: float
    passed: bool  # every file passed its checks
    out_dir: str
    source: dict[str, Any] = Field(default_factory=dict)
    toolchain: dict[str, Any] = Field(default_factory=dict)
    chat_format: dict[str, Any] = Field(default_factory=dict)
    reference: GGUFFile | None = None  # the f16 intermediate's checks when f16 was not asked for
    rejected: list[GGUFFile] = Field(default_factory=list)  # failed the gate; a fallback type stands in (kept on disk)
    pushed_to: str | None = None
    url: str | None = None
    notes: list[str] = Field(default_factory=list)
    steps: dict[str, float] = Field(default_factory=dict)  # seconds per stage: merge, reference, convert...
