"""The dataset doctor: read the whole dataset (and the model's chat template) and say, before any
training, whether each method can use the data, under which column names, and what is wrong where.

    from tuneforge.doctor import validate
    report = validate("chats.jsonl", method="sft", model="HuggingFaceTB/SmolLM2-135M-Instruct")

Reports are cached by the files' identity (validate(..., cache=True), the default; see report_cache.py),
so planning and submitting after validating do not read the data again.

Importing this package is light (no torch, transformers or datasets): the MCP server imports it at start-up.

Modules, from the bottom up: where rows come from (sources.py; one reader per format: json_files.py,
csv_files.py, parquet_files.py with parquet_pages.py, hub_datasets.py; folders.py, file_types.py,
text_files.py, row_records.py; read_limits.py: the bounds every reader keeps), what one row holds (row_shapes.py), bounded whole-file bookkeeping (tally.py,
column_stats.py, duplicates.py, pii.py), which methods fit (method_fit.py, method_verdicts.py) and what is
wrong with the rows they read (row_findings.py: the one rule for row problems), the pass
and its report (row_scan.py, eval_check.py), tokens as training sees them (chat_tokenizer.py,
sequences.py, token_counting.py, token_stats.py, token_measuring.py, worker_pool.py), and the entry
point with its cache (validation.py, report_cache.py).
"""

from typing import Any

from ..reports.dataset import (
    DatasetReport,
    MethodVerdict,
    ParseError,
    Problem,
    TokenStats,
)


def __getattr__(name: str) -> Any:
    # `validate` loads the reading pipeline: only when first used, so importing the reports stays fast.
    if name == "validate":
        from .validation import validate as fn

        globals()["validate"] = fn
        return fn
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["validate", "DatasetReport", "MethodVerdict", "Problem", "ParseError", "TokenStats"]
