"""check_setup: what this machine can do."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ...reports.setup import SetupReport
from ..errors import tool_errors


def check_setup(
    online: Annotated[bool, Field(description="Also ask the Hub who the token belongs to (network call).")] = False,
) -> SetupReport:
    """Check whether this machine can train and export: Hugging Face token (present, and where it comes
    from; never its value), which backends (local, hf) are usable, torch and GPUs, the training
    packages, free disk under $TUNEFORGE_HOME and the cached GGUF toolchain. Use it first in a session,
    and whenever a submit fails for a setup reason. `next_steps` lists what to fix."""
    from ...actions.setup import check_setup as check

    with tool_errors():
        return check(online=online)
