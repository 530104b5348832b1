"""evaluate_models: base models, adapters, finished jobs and GGUF files on one held-out file, side by side."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from pydantic import Field

from ...actions.evaluate import EvalReport
from ..errors import tool_errors


async def evaluate_models(
    models: Annotated[list[str], Field(description="What to compare: Hub model ids, model or LoRA adapter folders, job ids, .gguf files.")],
    data: Annotated[str, Field(description="The held-out .jsonl/.json/.csv file: prompts and references.")],
    metrics: Annotated[list[str | dict[str, Any]] | None, Field(description="Metric names or {'name': ..., options}: exact_match, "
                       "contains, regex (pattern), json_fields (fields), rouge_l, perplexity, reward:<GRPO reward>. "
                       "Default exact_match and rouge_l.")] = None,
    prompt_column: Annotated[str | None, Field(description="Default: prompt/question/instruction/input, or messages.")] = None,
    reference_column: Annotated[str | None, Field(description="Default: reference/answer/completion/output/..., or the last assistant turn.")] = None,
    limit: Annotated[int | None, Field(description="At most this many rows.", ge=1)] = None,
    max_new_tokens: Annotated[int | None, Field(description="Tokens per greedy answer (default 96).", ge=1, le=4096)] = None,
    system_prompt: Annotated[str | None, Field(description="A system prompt before every prompt.")] = None,
) -> EvalReport:
    """Answer every prompt of a held-out file greedily with each model and score the answers against the
    references with the eval block's metrics: one row per model (its scores and a few samples). Use to put
    a base model, a tuned job and its GGUF export side by side. Runs locally; minutes for larger models."""
    from ...actions.evaluate import evaluate

    def run() -> EvalReport:
        return evaluate(models, data, metrics=metrics, prompt_column=prompt_column, reference_column=reference_column,
                        limit=limit, max_new_tokens=max_new_tokens, system_prompt=system_prompt)

    with tool_errors():
        return await anyio.to_thread.run_sync(run)
