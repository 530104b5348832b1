"""One error type for everything a user can act on.

Every error carries a stable `code` (``area.reason``, for example ``dataset.not_found`` or
``hf.payment_required``), a `message` (what is wrong, where) and a `fix` (what to do next). Faces map
codes (the CLI to an exit status and a rendering, the MCP server to a tool error); tests assert codes,
not wording. Nothing a user can cause should ever surface as a traceback.
"""

from __future__ import annotations

import re
from typing import Any

_CODE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class TuneforgeError(Exception):
    """An error the user (or the agent driving tuneforge) can act on."""

    #: process exit status used by the CLI for this error
    exit_code: int = 2
    #: the code an instance gets when none is given (subclasses set their own)
    default_code: str = "tuneforge.error"

    def __init__(self, message: str, fix: str | None = None, *, code: str | None = None,
                 details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.code = code or self.default_code
        if not _CODE.match(self.code):
            raise ValueError(f"error code {self.code!r} is not of the form area.reason")
        self.details = details or {}

    def __str__(self) -> str:  # shown by MCP tool errors and logs
        return f"{self.message}\nFix: {self.fix}" if self.fix else self.message

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "code": self.code, "fix": self.fix}
        if self.details:
            out["details"] = self.details
        return out


class ConfigError(TuneforgeError):
    """A training config (or a CLI flag or tool argument that feeds one) is invalid."""

    default_code = "config.invalid"


class JobNotFound(TuneforgeError):
    default_code = "job.not_found"

    def __init__(self, job_id: str):
        super().__init__(
            f"No job with id {job_id!r}.",
            "List known jobs with `tuneforge jobs list` and use one of their ids.",
        )


class MissingDependency(TuneforgeError):
    """An optional extra (train, gguf, ...) is not installed."""

    default_code = "dependency.missing"

    def __init__(self, package: str, extra: str):
        super().__init__(
            f"This needs the Python package {package!r}, which is not installed.",
            f"Install the extra: pip install 'tuneforge[{extra}]' (on CPU-only machines install torch==2.13.0 first).",
            details={"package": package, "extra": extra},
        )


__all__ = ["TuneforgeError", "ConfigError", "JobNotFound", "MissingDependency"]
