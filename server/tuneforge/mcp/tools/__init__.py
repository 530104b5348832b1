"""The MCP tools, one module-level function each, grouped by what they work on.

A tool validates its arguments (pydantic, from the type hints), calls the layer below (an action,
the doctor, the planner, the job service) inside `tool_errors()` and returns a pydantic model.
Capabilities load inside the tool that uses them, so starting the server stays light.
"""
