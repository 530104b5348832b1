"""Packaging without the agent CLIs: one version everywhere, manifests that point at real files, the launcher.

The agents' own checks (claude, gemini, codex, the MCP inspector) are in test_packaging_clients.py.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import tuneforge
from mcp_client import REPO, text_of

LAUNCHER = REPO / "scripts" / "tuneforge-mcp"
VERSION_FILES = ("pyproject.toml", "server/tuneforge/__init__.py", ".claude-plugin/plugin.json",
                 ".claude-plugin/marketplace.json", "gemini-extension.json")


def run_script(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, **kw)


def test_one_version_across_pyproject_package_and_manifests():
    proc = run_script(str(REPO / "scripts" / "check_versions.py"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"All at {tuneforge.__version__}." in proc.stdout


def _version_tree(tmp_path: Path) -> Path:
    for rel in VERSION_FILES:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, tmp_path / rel)
    return tmp_path


def test_a_manifest_with_another_version_fails_the_check_and_set_aligns_them(tmp_path: Path):
    tree = _version_tree(tmp_path)
    gemini = tree / "gemini-extension.json"
    data = json.loads(gemini.read_text())
    data["version"] = "9.9.9"
    gemini.write_text(json.dumps(data))
    script = str(REPO / "scripts" / "check_versions.py")
    bad = run_script(script, "--repo", str(tree))
    assert bad.returncode == 1
    assert "gemini-extension.json version" in bad.stdout and "9.9.9" in bad.stdout and "--set" in bad.stderr

    fixed = run_script(script, "--repo", str(tree), "--set", "1.2.3")
    assert fixed.returncode == 0 and "All at 1.2.3." in fixed.stdout
    assert 'version = "1.2.3"' in (tree / "pyproject.toml").read_text()
    assert '__version__ = "1.2.3"' in (tree / "server/tuneforge/__init__.py").read_text()
    market = json.loads((tree / ".claude-plugin/marketplace.json").read_text())
    assert market["plugins"][0]["version"] == "1.2.3"


def test_the_manifests_point_at_files_that_exist():
    plugin = json.loads((REPO / ".claude-plugin/plugin.json").read_text())
    market = json.loads((REPO / ".claude-plugin/marketplace.json").read_text())
    assert plugin["name"] == "tuneforge" and market["name"] == "tuneforge"
    [entry] = [p for p in market["plugins"] if p["name"] == plugin["name"]]
    assert entry["source"] == "./"  # the repo is its own marketplace
    assert (REPO / plugin["skills"] / "fine-tune-llm" / "SKILL.md").is_file()

    mcp = json.loads((REPO / ".mcp.json").read_text())["mcpServers"]["tuneforge"]
    assert mcp["command"] == "${CLAUDE_PLUGIN_ROOT}/scripts/tuneforge-mcp"
    gemini = json.loads((REPO / "gemini-extension.json").read_text())
    assert gemini["name"] == plugin["name"]
    assert gemini["mcpServers"]["tuneforge"]["command"] == "${extensionPath}${/}scripts${/}tuneforge-mcp"
    assert (REPO / gemini["contextFileName"]).is_file()
    assert LAUNCHER.is_file() and os.access(LAUNCHER, os.X_OK)


def test_the_launcher_starts_a_working_server_with_the_python_it_is_given(tmp_path: Path):
    import anyio
    from mcp import ClientSession, StdioServerParameters, stdio_client

    async def main():
        env = dict(os.environ, TUNEFORGE_PYTHON=sys.executable)
        params = StdioServerParameters(command=str(LAUNCHER), args=[], env=env)
        with open(os.devnull, "w") as log:
            async with stdio_client(params, errlog=log) as (r, w):
                async with ClientSession(r, w) as s:
                    await s.initialize()
                    return await s.call_tool("list_jobs", {})

    result = anyio.run(main)
    assert not result.is_error and result.structured_content["count"] == 0, text_of(result)


def _fake(path: Path, marker: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho {marker} \"$@\"\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _launch(root: Path, path_dirs: list[Path], **env: str) -> subprocess.CompletedProcess:
    """Run a copy of the launcher placed in root/scripts, with only the given PATH."""
    (root / "scripts").mkdir(parents=True, exist_ok=True)
    shutil.copy(LAUNCHER, root / "scripts" / "tuneforge-mcp")
    system = ":".join(d for d in ("/usr/bin", "/bin") if Path(d).is_dir())
    full_env = {"PATH": ":".join([*map(str, path_dirs), system]), "HOME": str(root), **env}
    return subprocess.run([str(root / "scripts" / "tuneforge-mcp")], capture_output=True, text=True, env=full_env, timeout=30)


def test_the_launcher_prefers_the_checkout_s_venv_then_path_then_uvx(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    _fake(bin_dir / "tuneforge", "from-path")
    _fake(bin_dir / "uvx", "from-uvx")

    with_venv = tmp_path / "with-venv"
    _fake(with_venv / ".venv" / "bin" / "tuneforge", "from-venv")
    assert _launch(with_venv, [bin_dir]).stdout.split() == ["from-venv", "mcp"]

    on_path = tmp_path / "on-path"
    assert _launch(on_path, [bin_dir]).stdout.split() == ["from-path", "mcp"]

    only_uvx = tmp_path / "only-uvx"
    uvx_dir = tmp_path / "uvx-bin"
    _fake(uvx_dir / "uvx", "from-uvx")
    out = _launch(only_uvx, [uvx_dir]).stdout.split()
    assert out == ["from-uvx", "--from", str(only_uvx.resolve()), "tuneforge", "mcp"]


def test_the_launcher_without_tuneforge_says_how_to_install_it(tmp_path: Path):
    proc = _launch(tmp_path / "bare", [])
    assert proc.returncode == 127 and proc.stdout == ""
    assert "pip install tuneforge" in proc.stderr and "uv" in proc.stderr


def test_the_agent_cli_installer_reports_what_is_missing_without_installing(tmp_path: Path):
    env = dict(os.environ, TUNEFORGE_NPM_PREFIX=str(tmp_path / "npm"))
    proc = subprocess.run(["bash", str(REPO / "scripts" / "install_agent_clis.sh"), "--check"],
                          capture_output=True, text=True, env=env, timeout=60)
    if shutil.which("npm") is None:
        assert proc.returncode == 1 and "npm is not on PATH" in proc.stderr
        return
    assert proc.returncode == 1
    for package in ("@anthropic-ai/claude-code@", "@google/gemini-cli@", "@openai/codex@", "@modelcontextprotocol/inspector@0.15."):
        assert package in proc.stderr
    assert not (tmp_path / "npm").exists()
