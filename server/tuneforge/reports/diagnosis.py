"""Why a job failed and what to change: the typed answer of the diagnosis (a leaf module).

`kind` names the failure; `evidence` is the log lines it was read from; `fix` says what to do in words;
`retry_with` is the config change a retry applies (dotted RunConfig field -> new value, e.g.
{"train.per_device_batch_size": 2, "train.gradient_accumulation_steps": 8}), empty when a retry alone
would fail the same way (a bad token, a gated model).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

DiagnosisKind = Literal[
    "out_of_memory",
    "auth",
    "gated_model",
    "not_found",
    "payment_required",
    "disk_full",
    "divergence",
    "chat_template",
    "dataset_format",
    "unsupported_hardware",
    "missing_dependency",
    "network",
    "rate_limited",
    "timeout",
    "budget",
    "unknown",
]

KINDS: tuple[str, ...] = DiagnosisKind.__args__  # type: ignore[attr-defined]


class Diagnosis(BaseModel):
    """A failed run, classified: what went wrong, the lines that show it, the fix, and the retry's config change."""

    kind: DiagnosisKind
    evidence: list[str] = Field(default_factory=list, description="The log lines the kind was read from.")
    fix: str = Field(description="What to do, in one or two sentences.")
    retry_with: dict[str, Any] = Field(default_factory=dict, description="Dotted RunConfig field -> value a retry "
                                       "applies (`jobs retry --apply-fix`); empty when retrying cannot help by itself.")


__all__ = ["Diagnosis", "DiagnosisKind", "KINDS"]
