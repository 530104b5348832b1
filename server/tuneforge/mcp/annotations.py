"""The MCP tool annotations (hints to the client about what a tool does to the world)."""

from __future__ import annotations

from mcp.types import ToolAnnotations

#: reads local state or the Hub (cloud job status, dataset and model metadata); changes nothing
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
#: starts work that uses the machine or (backend hf) costs money
SUBMIT = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True)
#: stops a job: its unsaved progress is lost
CANCEL = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True)
#: writes new files next to a model; never changes the model itself
EXPORT = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)

__all__ = ["READ_ONLY", "SUBMIT", "CANCEL", "EXPORT"]
