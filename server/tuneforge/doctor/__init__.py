"""The dataset doctor: read the whole dataset (and the model's chat template) and say, before any
training, whether each method can use the data, under which column names, and what is wrong where.

    from tuneforge.doctor import validate
    report = validate("chats.jsonl", method="sft", model="HuggingFaceTB/SmolLM2-135M-Instruct")

Importing this package is light (no torch, transformers or datasets): the MCP server imports it at start-up.
"""

from typing import Any

from ..reports.dataset import DatasetReport, MethodVerdict, ParseError, Problem, TokenStats


def __getattr__(name: str) -> Any:
    # `validate` loads the reading pipeline: only when first used, so importing the reports stays fast.
    if name == "validate":
        from .validate import validate as fn

        globals()["validate"] = fn  # bind the function, not the same-named submodule
        return fn
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["validate", "DatasetReport", "MethodVerdict", "Problem", "ParseError", "TokenStats"]
