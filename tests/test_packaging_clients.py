"""The agents' own CLIs check our packaging, offline, each in a temporary HOME.

Installed at pinned versions by scripts/install_agent_clis.sh into $TUNEFORGE_NPM_PREFIX (default
$TUNEFORGE_TEST_CACHE/npm). A missing CLI skips its test locally and fails it when $CI is set, so CI
can never pass without running them. These CLIs exit 0 even when a server fails to connect: the tests
read their output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAUNCHER = REPO / "scripts" / "tuneforge-mcp"
TOOLS = {"check_setup", "validate_dataset", "plan_training", "submit_training", "job_status", "job_logs",
         "list_jobs", "cancel_job", "wait_for_job", "export_gguf"}
#: what a plugin or extension consists of (a staged copy keeps the repo's .venv out of Claude's plugin cache)
PLUGIN_PARTS = (".claude-plugin", ".mcp.json", "gemini-extension.json", "AGENTS.md", "scripts", "skills")


def npm_prefix() -> Path:
    cache = Path(os.environ.get("TUNEFORGE_TEST_CACHE") or Path.home() / ".cache" / "tuneforge-test")
    return Path(os.environ.get("TUNEFORGE_NPM_PREFIX") or cache / "npm")


def require(binary: str) -> str:
    """The CLI's path; skip when missing, but fail under CI."""
    path = npm_prefix() / "bin" / binary
    found = str(path) if path.exists() else shutil.which(binary)
    if found is None or shutil.which("node") is None:
        message = f"{binary} is not installed: run scripts/install_agent_clis.sh (needs Node.js 20+)"
        if os.environ.get("CI"):
            pytest.fail(message + " - CI must install the agent CLIs before the tests")
        pytest.skip(message)
    return found


@pytest.fixture
def agent_env(tmp_path: Path) -> dict[str, str]:
    """A clean HOME for every agent CLI; tuneforge itself is on PATH as a user's install would be."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE", "GEMINI", "GOOGLE", "CODEX", "OPENAI", "ANTHROPIC"))}
    env.update({
        "HOME": str(home),
        "CODEX_HOME": str(home / ".codex"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "PATH": os.pathsep.join([str(npm_prefix() / "bin"), str(Path(sys.executable).parent), env.get("PATH", "")]),
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "GEMINI_CLI_NO_RELAUNCH": "true",
        "NO_COLOR": "1",
        "NPM_CONFIG_PREFIX": str(npm_prefix()),
        "NPM_CONFIG_UPDATE_NOTIFIER": "false",
    })
    (home / ".codex").mkdir()
    return env


def run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def stage_plugin(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for part in PLUGIN_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / part)
    return dest


# ---- MCP inspector -------------------------------------------------------------------------------


def inspector(env: dict[str, str], tmp_path: Path, *args: str) -> dict:
    require("mcp-inspector")
    cmd = ["npx", "--no-install", "@modelcontextprotocol/inspector", "--cli",
           "-e", f"TUNEFORGE_HOME={tmp_path / 'tfhome'}", "-e", f"TUNEFORGE_PYTHON={sys.executable}",
           str(LAUNCHER), *args]
    proc = run(cmd, env, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow  # three inspector runs, each starting node and the server (~20 s on 2 busy cores)
def test_the_mcp_inspector_lists_and_calls_the_tools(agent_env: dict[str, str], tmp_path: Path):
    listed = inspector(agent_env, tmp_path, "--method", "tools/list")
    tools = {t["name"]: t for t in listed["tools"]}
    assert TOOLS <= set(tools)
    assert all(t.get("outputSchema") for t in tools.values())

    jobs = inspector(agent_env, tmp_path, "--method", "tools/call", "--tool-name", "list_jobs", "--tool-arg", "limit=5")
    assert jobs["isError"] is False and jobs["structuredContent"]["count"] == 0

    missing = inspector(agent_env, tmp_path, "--method", "tools/call", "--tool-name", "job_status",
                        "--tool-arg", "job_id=tf-20990101-000000-ffffff")
    assert missing["isError"] is True and "Fix:" in missing["content"][0]["text"]


# ---- Claude Code ---------------------------------------------------------------------------------


def test_claude_validates_the_marketplace_and_plugin_strictly(agent_env: dict[str, str], tmp_path: Path):
    claude = require("claude")
    for target in (".", ".claude-plugin/plugin.json"):
        proc = run([claude, "plugin", "validate", "--strict", target], agent_env, REPO)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0 and "Validation passed" in out, out
        assert "mcpServers: tuneforge" in out and "skills: tuneforge:fine-tune-llm" in out

    broken = stage_plugin(tmp_path / "broken")
    manifest = broken / ".claude-plugin" / "plugin.json"
    manifest.write_text(manifest.read_text().replace('"name": "tuneforge"', '"name": "Tune Forge"', 1))
    proc = run([claude, "plugin", "validate", "--strict", str(broken / ".claude-plugin" / "plugin.json")], agent_env, tmp_path)
    assert proc.returncode != 0, "a plugin name that is not kebab-case must fail validation"


def test_claude_installs_the_plugin_from_its_marketplace_and_connects_to_the_server(agent_env: dict[str, str], tmp_path: Path):
    claude = require("claude")
    plugin = stage_plugin(tmp_path / "plugin")
    work = tmp_path / "work"
    work.mkdir()
    proc = run([claude, "plugin", "marketplace", "add", str(plugin)], agent_env, work)
    assert proc.returncode == 0 and "tuneforge" in proc.stdout, proc.stdout + proc.stderr
    proc = run([claude, "plugin", "install", "tuneforge@tuneforge"], agent_env, work)
    assert proc.returncode == 0 and "Successfully installed" in proc.stdout, proc.stdout + proc.stderr

    proc = run([claude, "mcp", "list"], agent_env, work)
    lines = [line for line in proc.stdout.splitlines() if "tuneforge" in line]
    assert lines, proc.stdout + proc.stderr
    assert "plugin:tuneforge:tuneforge" in lines[0] and str(plugin / "scripts" / "tuneforge-mcp") in lines[0]
    assert "Connected" in lines[0] and "Failed" not in lines[0], lines[0]

    listed = json.loads(run([claude, "plugin", "list", "--json"], agent_env, work).stdout)
    [entry] = [p for p in listed if p["id"] == "tuneforge@tuneforge"]
    assert entry["enabled"] and entry["version"] == json.loads((REPO / ".claude-plugin/plugin.json").read_text())["version"]


# ---- Gemini CLI ----------------------------------------------------------------------------------


def test_gemini_validates_links_and_connects_the_extension(agent_env: dict[str, str], tmp_path: Path):
    gemini = require("gemini")
    proc = run([gemini, "extensions", "validate", str(REPO)], agent_env, tmp_path)
    assert proc.returncode == 0 and "successfully validated" in proc.stdout + proc.stderr, proc.stdout + proc.stderr

    extension = stage_plugin(tmp_path / "extension")
    proc = run([gemini, "extensions", "link", str(extension), "--consent"], agent_env, tmp_path)
    assert "linked successfully" in proc.stdout + proc.stderr, proc.stdout + proc.stderr

    proc = run([gemini, "extensions", "list", "-o", "json"], agent_env, tmp_path)
    listed = json.loads(proc.stdout.strip() or proc.stderr.strip())  # it writes the JSON to stderr
    [ext] = [e for e in listed if e["name"] == "tuneforge"]
    assert ext["isActive"] and ext["contextFiles"] == [str(extension / "AGENTS.md")]
    assert [s["name"] for s in ext["skills"]] == ["fine-tune-llm"]
    assert ext["mcpServers"]["tuneforge"]["command"] == str(extension / "scripts" / "tuneforge-mcp")

    proc = run([gemini, "mcp", "list"], agent_env, tmp_path)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "tuneforge" in line]
    assert lines, proc.stdout + proc.stderr
    assert "Connected" in lines[0] and "Disconnected" not in lines[0], lines[0]


# ---- Codex ---------------------------------------------------------------------------------------


def test_codex_gives_the_model_agents_md_from_the_repository(agent_env: dict[str, str]):
    codex = require("codex")
    proc = run(["timeout", "90", codex, "debug", "prompt-input", "fine-tune a model"], agent_env, REPO)
    assert proc.returncode == 0, proc.stderr
    items = json.loads(proc.stdout)
    texts = [c.get("text", "") for item in items for c in (item.get("content") or []) if isinstance(c, dict)]
    [agents] = [t for t in texts if t.startswith(f"# AGENTS.md instructions for {REPO}")]
    expected = (REPO / "AGENTS.md").read_text().strip()
    assert expected in agents
