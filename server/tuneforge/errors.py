"""One error type for everything a user can act on.

Every error carries a `message` (what is wrong, where) and a `fix` (what to do next). Faces render
both: the CLI prints them and exits non-zero, the MCP server returns them as tool errors. Nothing a
user can cause should ever surface as a traceback.
"""

from __future__ import annotations

from typing import Any


class TuneforgeError(Exception):
    """An error the user (or the agent driving tuneforge) can act on."""

    #: process exit code used by the CLI for this error
    exit_code: int = 2

    def __init__(self, message: str, fix: str | None = None, *, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.details = details or {}

    def __str__(self) -> str:  # shown by MCP tool errors and logs
        return f"{self.message}\nFix: {self.fix}" if self.fix else self.message

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "fix": self.fix}
        if self.details:
            out["details"] = self.details
        return out


class ConfigError(TuneforgeError):
    """A training config (or a CLI flag that feeds one) is invalid."""


class JobNotFound(TuneforgeError):
    def __init__(self, job_id: str):
        super().__init__(
            f"No job with id {job_id!r}.",
            "List known jobs with `tuneforge jobs list` and use one of their ids.",
        )


class MissingDependency(TuneforgeError):
    """An optional extra (train, gguf, ...) is not installed."""

    def __init__(self, package: str, extra: str):
        super().__init__(
            f"This needs the Python package {package!r}, which is not installed.",
            f"Install the extra: pip install 'tuneforge[{extra}]' (on CPU-only machines install torch==2.13.0 first).",
        )
