"""GGUF export: llama.cpp's own converter and quantizer at one pinned version, every file verified.

    from tuneforge.gguf import export_gguf
    report = export_gguf("outputs/adapter", quants=["f16", "q4_k_m"], out="gguf/")

Import-light: the pipeline (and everything heavy, in subprocesses) loads only when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ..reports.gguf import GGUFReport


def export_gguf(model: str | None = None, *, quants: list[str] | str | None = None, out: str | None = None,
                base: str | None = None, job_id: str | None = None, push_to: str | None = None,
                system_prompt: str | None = None, progress: Callable[[int, int, str], None] | None = None,
                **options: Any) -> "GGUFReport":
    """Merge (LoRA adapters), convert, quantize and verify GGUF files, write an Ollama Modelfile, push if asked.

    MODEL is a model folder, a LoRA adapter folder or a Hub id; or pass job_id for a finished training
    job. `progress(step, total, message)` is called as the export moves on. Returns a GGUFReport.
    """
    from .export import export_gguf as _export

    return _export(model, quants=quants, out=out, base=base, job_id=job_id, push_to=push_to,
                   system_prompt=system_prompt, progress=progress, **options)


def submit_export(model: str | None = None, **options: Any) -> Any:
    """The same export as a Hugging Face job (`--backend hf`): returns the job id, URL and flavor at once."""
    from .cloud import submit_export as _submit

    return _submit(model, **options)


__all__ = ["export_gguf", "submit_export"]
