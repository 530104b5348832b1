"""The config of a GGUF export job: what templates/gguf_export.py reads from its config.json.

Built by the export action, stored typed on the job record, written next to the job. It never holds
secrets; its shape is the template's contract.
"""

from __future__ import annotations

from pydantic import Field

from .schema import Strict


class QuantTarget(Strict):
    name: str
    tag: str
    ftype: str
    converted: bool = Field(description="Written by the converter itself (f16/bf16/q8_0...) rather than the quantizer.")


class ToolchainPin(Strict):
    llama_cpp_python: str
    llama_cpp_commit: str
    cmake_args: str


class VerifySettings(Strict):
    prompts: list[str]
    max_new_tokens: int
    logit_tolerance: dict[str, float]


class ExportConfig(Strict):
    model: str
    adapter: bool
    base_model: str | None = None
    push_to_hub: str | None = None
    hub_private: bool = True
    name: str
    quants: list[QuantTarget]
    system_prompt: str | None = None
    modelfile: str
    readme: str
    toolchain: ToolchainPin
    verify: VerifySettings
    timeout_seconds: int
    source_job: str | None = None
    n_params_estimate: int | None = Field(default=None, description="Parameters estimated from config.json, for the flavor.")
    flavor_reason: str | None = None
