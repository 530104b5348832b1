"""The README's "Use it from your agent" lines, run as written with the real agent CLIs in a temporary HOME.

The commands come from the README's fenced blocks (one per way in), so the README and what is tested cannot
drift; each run ends with the agent's own check that the tuneforge server is connected. The CLIs are the
pinned ones scripts/install_agent_clis.sh installs; a missing CLI skips locally and fails under CI=true
(tests/test_packaging_clients.py's `require`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_packaging_clients import REPO, agent_env, require, stage_plugin  # noqa: F401  (agent_env is a fixture)

README = REPO / "README.md"
SECTION = "## Use it from your agent"


def readme_blocks() -> dict[str, str]:
    """The section's ```bash blocks, keyed by their first comment line (`# Claude Code: ...` -> "Claude Code")."""
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"README.md has no {SECTION!r} section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = {}
    for body in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        first = body.splitlines()[0]
        assert first.startswith("# "), f"a block must start with a comment naming its agent: {first!r}"
        blocks[re.split(r"[:]", first[2:], maxsplit=1)[0].strip()] = body
    return blocks


def run_block(block: str, env: dict[str, str], cwd: Path, answers: str = "") -> subprocess.CompletedProcess:
    """The block's lines, as written, in bash (-e: a failing line fails the block)."""
    return subprocess.run(["bash", "-e", "-c", block], env=env, cwd=cwd, input=answers, capture_output=True,
                          text=True, timeout=300)


def connected_line(output: str, marker: str = "tuneforge") -> str:
    lines = [line for line in output.splitlines() if marker in line and ("onnect" in line or "Failed" in line)]
    assert lines, output
    return lines[-1]


@pytest.fixture
def checkout(tmp_path: Path, agent_env: dict[str, str]) -> tuple[dict[str, str], Path]:  # noqa: F811
    """$TUNEFORGE_DIR: a copy of the checkout's agent packaging (the repo's .venv stays out of agents' caches)."""
    plugin = stage_plugin(tmp_path / "tuneforge")
    work = tmp_path / "work"
    work.mkdir()
    return {**agent_env, "TUNEFORGE_DIR": str(plugin)}, work


def test_the_readme_has_a_block_for_each_agent():
    blocks = readme_blocks()
    assert {"Claude Code", "Claude Code, the MCP server only", "Gemini CLI", "Codex"} <= set(blocks), list(blocks)
    assert "claude plugin marketplace add" in blocks["Claude Code"] and "claude plugin install" in blocks["Claude Code"]
    assert "claude mcp add" in blocks["Claude Code, the MCP server only"]
    assert "gemini extensions install" in blocks["Gemini CLI"]
    assert "codex mcp add" in blocks["Codex"] and "AGENTS.md" in blocks["Codex"]


def test_claude_code_plugin_lines_install_it_and_the_server_connects(checkout):
    require("claude")
    env, work = checkout
    proc = run_block(readme_blocks()["Claude Code"], env, work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = connected_line(proc.stdout)
    assert "plugin:tuneforge:tuneforge" in line and "Connected" in line and "Failed" not in line, line


def test_claude_code_mcp_add_line_connects_the_server(checkout):
    require("claude")
    env, work = checkout
    proc = run_block(readme_blocks()["Claude Code, the MCP server only"], env, work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = connected_line(proc.stdout)
    assert "tuneforge mcp" in line and "Connected" in line and "Failed" not in line, line


def test_gemini_cli_lines_install_the_extension_and_the_server_connects(checkout):
    require("gemini")
    env, work = checkout
    proc = run_block(readme_blocks()["Gemini CLI"], env, work, answers="y\n")  # the folder-trust question
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "installed successfully" in out, out
    line = connected_line(out)
    assert "Connected" in line and "Disconnected" not in line, line
    assert (Path(env["HOME"]) / ".gemini" / "extensions" / "tuneforge" / "gemini-extension.json").is_file()


def test_codex_lines_configure_the_server_and_the_instructions_and_codex_starts_it(checkout):
    codex = require("codex")
    env, work = checkout
    proc = run_block(readme_blocks()["Codex"], env, work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^tuneforge\s+tuneforge\s+mcp\b.*enabled", proc.stdout, flags=re.M), proc.stdout
    config = (Path(env["CODEX_HOME"]) / "config.toml").read_text()
    assert "[mcp_servers.tuneforge]" in config and 'command = "tuneforge"' in config

    # `codex mcp list` only reads the config: start the server exactly as configured there (command, args,
    # env) and go through the MCP handshake, as Codex does when a session starts
    [server] = [x for x in json.loads(run_block("codex mcp list --json", env, work).stdout) if x["name"] == "tuneforge"]
    transport = server["transport"]
    assert server["enabled"] and transport["type"] == "stdio"
    tools = connect(transport["command"], transport["args"], {**env, **(transport.get("env") or {})}, work)
    assert {"submit_training", "job_status", "validate_dataset"} <= tools

    elsewhere = work / "some-project"
    elsewhere.mkdir()
    proc = subprocess.run(["timeout", "120", codex, "debug", "prompt-input", "fine-tune a model"], env=env, cwd=elsewhere,
                          capture_output=True, text=True, timeout=150, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    texts = [c.get("text", "") for item in json.loads(proc.stdout) for c in (item.get("content") or []) if isinstance(c, dict)]
    expected = (REPO / "AGENTS.md").read_text().strip()
    assert any(t.startswith("# AGENTS.md instructions") and expected in t for t in texts), "the global AGENTS.md is not read"


def connect(command: str, args: list[str], env: dict[str, str], cwd: Path) -> set[str]:
    """Start an MCP server over stdio, initialize a session, and return its tool names."""
    import anyio
    from mcp import ClientSession, StdioServerParameters, stdio_client

    resolved = shutil.which(command, path=env["PATH"]) or command

    async def main() -> set[str]:
        params = StdioServerParameters(command=resolved, args=args, env=env, cwd=str(cwd))
        with anyio.fail_after(120), open(os.devnull, "w") as log:
            async with stdio_client(params, errlog=log) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    return {t.name for t in (await session.list_tools()).tools}

    return anyio.run(main)
