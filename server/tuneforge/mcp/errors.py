"""TuneforgeError -> an MCP tool error the agent can act on: `[code] message` and a `Fix:` line.

Faces map codes: where the core's fix names a CLI flag or command, the agent gets the tool to call.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from ..config import config_error
from ..errors import TuneforgeError

#: error code -> the fix an agent follows (the core's own fix names the CLI)
AGENT_FIXES: dict[str, str] = {
    "job.not_found": "call list_jobs and use one of the job ids it returns.",
    "config.push_target_required": "Ask the user for a model repo they can write to and pass it as "
                                   "push_to_hub='their-name/model-name'.",
    "gguf.nothing_to_export": "Pass model (a model folder, a LoRA adapter folder or a Hub id) or job_id of a "
                              "finished training job.",
}


def tool_error_text(exc: TuneforgeError) -> str:
    fix = AGENT_FIXES.get(exc.code, exc.fix)
    return f"[{exc.code}] {exc.message}" + (f"\nFix: {fix}" if fix else "")


@contextlib.contextmanager
def tool_errors() -> Iterator[None]:
    """TuneforgeError (and a core model's ValidationError) -> a ToolError with the code and the fix."""
    try:
        yield
    except TuneforgeError as exc:
        raise ToolError(tool_error_text(exc)) from exc
    except ValidationError as exc:
        raise ToolError(tool_error_text(config_error(exc, "tool arguments"))) from exc


__all__ = ["tool_errors", "tool_error_text", "AGENT_FIXES"]
