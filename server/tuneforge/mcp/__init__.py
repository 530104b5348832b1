"""The MCP face: tuneforge as typed MCP tools (`tuneforge mcp`)."""
