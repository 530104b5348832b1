"""validate_dataset: the dataset doctor."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ...reports.dataset import DatasetReport
from ...types import Method
from ..errors import tool_errors


def validate_dataset(
    source: Annotated[str, Field(min_length=1, description="Local .jsonl/.json/.csv/.parquet file or folder, or a Hub dataset id (owner/name).")],
    method: Annotated[Method | Literal["auto"], Field(description="Training method to check for; 'auto' says which methods the data fits.")] = "auto",
    model: Annotated[str | None, Field(description="Base model (Hub id or local dir): adds token-length statistics with its tokenizer and chat template.")] = None,
    max_length: Annotated[int | None, Field(ge=16, le=262144, description="Max sequence length to check rows against.")] = None,
    eval_source: Annotated[str | None, Field(description="A separate eval file or Hub id to check as well.")] = None,
) -> DatasetReport:
    """Read the WHOLE dataset (every row, not a sample) and report whether each method can train on it:
    format detected, column mapping to propose (pass it to submit_training as dataset.column_map), bad
    rows with their line numbers, duplicates, token lengths. Use before planning or training on any
    data, and after the user edits their data."""
    from ...doctor import validate

    with tool_errors():
        return validate(source, method=method, model=model, max_length=max_length, eval_source=eval_source)
