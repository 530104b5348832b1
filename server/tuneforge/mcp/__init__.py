"""The MCP face: tuneforge's capabilities as typed MCP tools over stdio (`tuneforge mcp`).

`server` builds the server and only registers; each tool is a module-level function in `tools/`
that calls an action, the planner, the doctor or the job service and returns a pydantic model.
"""
