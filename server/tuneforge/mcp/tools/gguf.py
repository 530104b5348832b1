"""export_gguf: verified GGUF files (and an Ollama Modelfile) from a model, an adapter or a finished job."""

from __future__ import annotations

from typing import Annotated

import anyio
from mcp.server.mcpserver import Context
from pydantic import Field

from ...errors import TuneforgeError
from ...reports.gguf import GGUFReport
from ..errors import tool_errors

TRUST_REMOTE_CODE = ("Let the export run the model's own code (an auto_map in its config or tokenizer config, Python files "
                     "beside the weights). Leave false. Set true only after a gguf.remote_code error, once you have told "
                     "the user what was found and the user has said they trust that code: never decide it yourself.")

MIN_AGREEMENT = ("The gate's thresholds per GGUF type, e.g. {'q4_k_m': 0.7}: the share of eval prompts on which a file's "
                 "greedy answer must equal the model's (defaults f16/bf16 0.95, q8_0 0.9, q5_k_m and q4_k_m 0.8). "
                 "Leave unset; lower one only when the user has seen the failing figure and accepts it.")
VERIFY_FAILED_FIX = ("Show the user each failing file with its agreement figure and threshold (and the disagreeing answers in "
                     "the report). Suggest a higher-precision type (q5_k_m, q8_0); call export_gguf again with a lower "
                     "min_agreement only if the user accepts those answers.")


async def export_gguf(
    ctx: Context,
    model: Annotated[str | None, Field(description="A model folder, a LoRA adapter folder (merged into its base first) or a Hub model id.")] = None,
    job_id: Annotated[str | None, Field(description="Export the model of this finished training job instead of naming one.")] = None,
    quants: Annotated[list[str] | None, Field(description="GGUF types, e.g. ['q4_k_m', 'q8_0'] (default f16 and q4_k_m).")] = None,
    out: Annotated[str | None, Field(description="Output folder (default: the job's outputs/gguf, or $TUNEFORGE_HOME/gguf/NAME).")] = None,
    base: Annotated[str | None, Field(description="Base model of a LoRA adapter, when adapter_config.json does not name one that exists.")] = None,
    push_to: Annotated[str | None, Field(description="Hub repo (your-name/name-GGUF) to upload the verified files to; only when the user asked for it.")] = None,
    private: Annotated[bool | None, Field(description="Create the Hub repo as private (with push_to).")] = None,
    system_prompt: Annotated[str | None, Field(description="System prompt for the Ollama Modelfile (default: the training job's).")] = None,
    trust_remote_code: Annotated[bool, Field(description=TRUST_REMOTE_CODE)] = False,
    min_agreement: Annotated[dict[str, float] | None, Field(description=MIN_AGREEMENT)] = None,
    fallback: Annotated[list[str] | None, Field(description="Types tried in order when one in quants fails the gate, e.g. "
                                                "quants ['q4_k_m'] with fallback ['q8_0']: q4_k_m if it passes, else q8_0; "
                                                "the report's `rejected` lists the files that failed.")] = None,
) -> GGUFReport:
    """Convert a model to GGUF with llama.cpp's own converter and quantizer at one pinned version (LoRA
    adapters are merged first), load and check every file against the original model, and write an Ollama
    Modelfile. Long (minutes; the first export also builds the toolchain): sends progress notifications.
    Use when the user wants a GGUF (llama.cpp, Ollama, LM Studio) of a finished job or a model folder.
    A model that ships its own code is refused (gguf.remote_code) unless the user agrees to trust it.
    A file whose greedy answers agree with the model's on too few eval prompts fails (gguf.verify_failed)."""
    from ...actions.export import export_gguf as export

    def on_progress(step: int, total: int, message: str) -> None:  # runs in the worker thread
        anyio.from_thread.run(ctx.report_progress, float(step), float(total) if total else None, str(message)[:300])

    def run() -> GGUFReport:
        try:
            return export(model, quants=quants, out=out, base=base, job_id=job_id, push_to=push_to, private=private,
                          system_prompt=system_prompt, progress=on_progress, trust_remote_code=trust_remote_code,
                          min_agreement=min_agreement, fallback=fallback)
        except TuneforgeError as exc:
            if exc.code == "gguf.remote_code":  # the agent asks the user; the CLI's flag means nothing to it
                from ...gguf.remote_code import AGENT_FIX

                exc.fix = AGENT_FIX
            elif exc.code == "gguf.verify_failed":
                exc.fix = VERIFY_FAILED_FIX
            raise

    with tool_errors():
        return await anyio.to_thread.run_sync(run)
