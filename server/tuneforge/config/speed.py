"""The run config's `speed` block: training-throughput knobs. None everywhere means auto: the template
decides per device, model and installed packages (templates/_speed.py `choose`, the one place), and says
in one status event line what it chose and what it fell back from."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SpeedSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    group_by_length: bool | None = Field(default=None, description="Batch rows of similar length together (less "
                                         "padding). None: on when a batch holds more than one row.")
    compact_lm_head: bool | None = Field(default=None, description="Score only labelled positions in the LM head on "
                                         "a CPU (TRL does so on CUDA). None: on for CPU runs.")
    cpu_threads: int | None = Field(default=None, ge=0, le=1024, description="torch threads on a CPU; None or 0: "
                                    "torch's default.")
    liger: bool | None = Field(default=None, description="Liger kernels (RMSNorm, RoPE, SwiGLU) on CUDA. None: on "
                               "when liger-kernel is installed and supports the model; off on CPU.")
    attention: Literal["auto", "sdpa", "eager", "flash_attention_2", "flash_attention_3"] = Field(
        default="auto", description="auto: flash_attention_2 on CUDA when flash-attn is installed, else sdpa; a "
        "flash kernel that is missing falls back to sdpa.")
    fused_optimizer: bool | None = Field(default=None, description="adamw_torch_fused for adamw_torch. None: on CUDA.")
    engine: Literal["transformers", "unsloth", "auto"] = Field(
        default="transformers", description="unsloth: Unsloth's FastLanguageModel where it is installed, on CUDA, for "
        "a model it supports (else transformers, said in an event); auto: unsloth whenever it can.")
