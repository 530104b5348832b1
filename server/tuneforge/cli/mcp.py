"""`tuneforge mcp`: run the MCP server on stdio (for Claude Code, Codex, Gemini CLI and other MCP clients)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mcp",
        help="Run the MCP server on stdio (agents start this; see .mcp.json).",
        description="Run tuneforge's MCP server over stdio. It speaks JSON-RPC on stdout, so run it from an MCP "
        "client, not by hand: e.g. `claude mcp add tuneforge -- tuneforge mcp`.",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace | None = None) -> int:
    from ..mcp.server import serve

    serve()
    return 0
