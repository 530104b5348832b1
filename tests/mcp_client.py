"""Talk to `tuneforge mcp` the way an agent does: a real subprocess over stdio, the SDK's own client.

Used by the tests/test_mcp*.py files. Each call starts a fresh server with the test's environment
(its own $TUNEFORGE_HOME), runs `body(session)` and returns what it returns.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client

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


def text_of(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)
