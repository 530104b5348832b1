"""Talk to tuneforge's MCP server with the SDK's own client: in memory, or as an agent does over stdio.

Used by the tests/test_mcp*.py files. `in_memory(body)` connects the SDK's `Client` to a fresh
`build_server()` in this process (the test's environment, its own $TUNEFORGE_HOME); `with_session(body)`
starts `python -m tuneforge mcp` as a real subprocess. Both run `body(client)` and return what it returns;
the body sees the same `list_tools` / `call_tool(name, args, progress_callback=...)` either way.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

import anyio
from mcp import Client, ClientSession, StdioServerParameters, stdio_client

REPO = Path(__file__).resolve().parent.parent


def server_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def with_session(body: Callable[[ClientSession], Awaitable[Any]], *, env: dict[str, str] | None = None,
                 args: list[str] | None = None, errlog: Path | None = None, timeout: float = 120.0) -> Any:
    """Start the server as a subprocess, initialize a session, run body(session)."""

    async def main() -> Any:
        params = StdioServerParameters(
            command=sys.executable,
            args=args or ["-m", "tuneforge", "mcp"],
            env=env or server_env(),
            cwd=str(REPO),
        )
        log = open(errlog, "w") if errlog else open(os.devnull, "w")
        try:
            with anyio.fail_after(timeout):
                async with stdio_client(params, errlog=log) as (read, write):
                    async with ClientSession(read, write) as session:
                        await session.initialize()
                        return await body(session)
        finally:
            log.close()

    return anyio.run(main)


def in_memory(body: Callable[[Client], Awaitable[Any]], *, timeout: float = 120.0) -> Any:
    """Connect the SDK's client to a fresh server in this process, run body(client)."""
    from tuneforge.mcp.server import build_server

    async def main() -> Any:
        with anyio.fail_after(timeout):
            async with Client(build_server(), mode="legacy") as client:  # the initialize handshake, as agents do
                return await body(client)

    return anyio.run(main)


def text_of(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)
