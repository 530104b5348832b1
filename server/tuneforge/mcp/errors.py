"""TuneforgeError -> an MCP tool error the agent can act on: `[code] message` and a `Fix:` line.

The words are the agent's (mcp/wording.py): a per-code fix where the next step differs from the CLI's, and
tool arguments and tools wherever the core names a flag or a command. Argument errors (pydantic's, raised
before or inside a tool) carry the code `tool.invalid_arguments`, the field names in details, and a fix
worded from those fields.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from ..config import config_error
from ..errors import TuneforgeError
from .wording import AGENT_FIXES, agent_words, argument_fix, field_name

INVALID_ARGUMENTS = "tool.invalid_arguments"


def tool_error_text(exc: TuneforgeError) -> str:
    fix = AGENT_FIXES.get(exc.code) or (agent_words(exc.fix) if exc.fix else None)
    return f"[{exc.code}] {agent_words(exc.message)}" + (f"\nFix: {fix}" if fix else "")


def argument_error(tool: str, exc: ValidationError) -> TuneforgeError:
    """A tool call's arguments refused by pydantic, as an error with a code, the fields and a fix in argument terms."""
    errors = exc.errors(include_url=False)
    fields, fix = argument_fix(errors)
    lines: dict[str, str] = {}
    for err in errors:
        loc = field_name(err.get("loc", ()))
        got = "" if err.get("type") == "missing" or isinstance(err.get("input"), (dict, list)) else f" (got {err.get('input')!r})"
        lines.setdefault(loc, f"{loc}: {err.get('msg')}{got}"[:300])
    count = len(lines)
    return TuneforgeError(f"{tool}: {count} validation error{'s' if count != 1 else ''} in the arguments: "
                          + "; ".join(lines.values()), fix, code=INVALID_ARGUMENTS, details={"tool": tool, "fields": fields})


@contextlib.contextmanager
def tool_errors() -> Iterator[None]:
    """TuneforgeError (and a core model's ValidationError) -> a ToolError with the code and the fix."""
    try:
        yield
    except TuneforgeError as exc:
        raise ToolError(tool_error_text(exc)) from exc
    except ValidationError as exc:
        raise ToolError(tool_error_text(config_error(exc, "tool arguments"))) from exc


__all__ = ["tool_errors", "tool_error_text", "argument_error", "AGENT_FIXES", "INVALID_ARGUMENTS"]
