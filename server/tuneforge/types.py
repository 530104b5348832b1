"""The small shared vocabulary: training methods, job stages, backend names.

A leaf module: it imports nothing of tuneforge. Every other module takes these names from here, so the
list of methods or stages lives in one place.
"""

from __future__ import annotations

from enum import StrEnum


class Method(StrEnum):
    """A training method; each has one static template under templates/."""

    SFT = "sft"
    DPO = "dpo"
    GRPO = "grpo"
    KTO = "kto"
    REWARD = "reward"


class Stage(StrEnum):
    """A job's stage, with Hugging Face Jobs' names whatever the backend."""

    SCHEDULING = "SCHEDULING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    CANCELED = "CANCELED"


class BackendName(StrEnum):
    """Where a job runs."""

    LOCAL = "local"
    HF = "hf"
    RAY = "ray"


METHODS: tuple[str, ...] = tuple(m.value for m in Method)
STAGES: tuple[str, ...] = tuple(s.value for s in Stage)
TERMINAL: frozenset[Stage] = frozenset({Stage.COMPLETED, Stage.ERROR, Stage.CANCELED})
BACKENDS: tuple[str, ...] = tuple(b.value for b in BackendName)

#: the template that trains each method (file names under templates/)
METHOD_TEMPLATES: dict[Method, str] = {m: f"{m.value}.py" for m in Method}

__all__ = ["Method", "Stage", "BackendName", "METHODS", "STAGES", "TERMINAL", "BACKENDS", "METHOD_TEMPLATES"]
