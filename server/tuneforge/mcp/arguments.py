"""Argument types more than one tool takes."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

JobId = Annotated[
    str,
    Field(min_length=3, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
          description="A tuneforge job id as returned by submit_training or list_jobs, e.g. tf-20260101-120000-abc123."),
]

__all__ = ["JobId"]
