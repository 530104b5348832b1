"""The skills: valid for every agent, consistent with the server and the CLI, and mirrored in AGENTS.md."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

REPO = Path(__file__).resolve().parent.parent
SKILLS = REPO / "skills"
MAIN_SKILL = SKILLS / "fine-tune-llm" / "SKILL.md"
sys.path.insert(0, str(REPO / "scripts"))

import gen_agents_md  # noqa: E402
import validate_skills  # noqa: E402


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / name), *args], capture_output=True, text=True, timeout=60)


def test_every_skill_in_the_repo_passes_the_validator():
    proc = run_script("validate_skills.py")
    assert proc.returncode == 0, proc.stderr
    assert "ok  fine-tune-llm" in proc.stdout
    assert validate_skills.validate_all(SKILLS) == {"fine-tune-llm": []}


def _skill(root: Path, folder: str, frontmatter: str, body: str = "Do the thing.\n", files: dict[str, str] | None = None) -> Path:
    d = root / folder
    d.mkdir(parents=True)
    (d / "SKILL.md").write_text(f"---\n{frontmatter}---\n\n{body}")
    for rel, text in (files or {}).items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    return d


@pytest.mark.parametrize(
    ("folder", "frontmatter", "body", "files", "expected"),
    [
        ("good-one", "name: other-name\ndescription: Does X. Use when Y.\n", "Body.\n", {}, "differs from its folder"),
        ("Bad_Name", "name: Bad_Name\ndescription: Does X.\n", "Body.\n", {}, "not kebab-case"),
        ("long-desc", "name: long-desc\ndescription: " + "x" * 1025 + "\n", "Body.\n", {}, "1025 characters"),
        ("no-desc", "name: no-desc\n", "Body.\n", {}, "missing `description`"),
        ("extra-key", "name: extra-key\ndescription: Does X.\nversion: 2\n", "Body.\n", {}, "unknown frontmatter key `version`"),
        ("bad-yaml", "name: bad-yaml\ndescription: [unclosed\n", "Body.\n", {}, "not valid YAML"),
        ("angle", "name: angle\ndescription: Use <this>.\n", "Body.\n", {}, "'<' or '>'"),
        ("dangling", "name: dangling\ndescription: Does X.\n", "Read `references/missing.md` when stuck.\n", {}, "`references/missing.md`, which does not exist"),
        ("orphan", "name: orphan\ndescription: Does X.\n", "Body.\n", {"references/lonely.md": "# lonely\n"}, "references/lonely.md is never mentioned"),
        ("link", "name: link\ndescription: Does X.\n", "See [the guide](guide.md).\n", {}, "`guide.md`, which does not exist"),
        ("escape", "name: escape\ndescription: Does X.\n", "See [up](../secret.md).\n", {}, "points outside the skill folder"),
    ],
)
def test_the_validator_names_each_kind_of_broken_skill(tmp_path: Path, folder, frontmatter, body, files, expected):
    d = _skill(tmp_path, folder, frontmatter, body, files)
    problems = validate_skills.validate_skill(d)
    assert any(expected in p for p in problems), problems
    proc = run_script("validate_skills.py", str(tmp_path))
    assert proc.returncode == 1 and expected in proc.stderr


def test_a_file_without_frontmatter_is_refused(tmp_path: Path):
    d = tmp_path / "plain"
    d.mkdir()
    (d / "SKILL.md").write_text("# Just markdown\n")
    assert validate_skills.validate_skill(d) == [f"{d / 'SKILL.md'}: missing YAML frontmatter (the file must start with a '---' block)"]


def test_a_valid_skill_with_mentioned_references_passes(tmp_path: Path):
    d = _skill(tmp_path, "fine", "name: fine\ndescription: Does X. Use when Y.\n",
               "Read `references/a.md` when A. See [b](references/b.md#part).\n",
               {"references/a.md": "a", "references/b.md": "b"})
    assert validate_skills.validate_skill(d) == []


def _server_tools() -> set[str]:
    from tuneforge.mcp.server import build_server

    return {t.name for t in anyio.run(build_server().list_tools)}


def test_the_skill_names_every_tool_exactly_as_the_server_does():
    text = MAIN_SKILL.read_text()
    tools = _server_tools()
    missing = sorted(t for t in tools if f"`{t}" not in text)
    assert not missing, f"tools the skill never names: {missing}"
    called = set(re.findall(r"`([a-z][a-z_]+)\(", text))
    unknown = sorted(called - tools)
    assert not unknown, f"the skill calls tools the server does not have: {unknown}"


def test_every_cli_fallback_in_the_skill_parses_with_the_real_cli():
    import contextlib
    import io
    import shlex

    from tuneforge.cli import build_parser

    snippets = re.findall(r"`(tuneforge [^`]+)`", MAIN_SKILL.read_text())
    commands = {shlex.split(s)[1] for s in snippets}
    assert {"setup", "validate", "plan", "train", "jobs", "gguf"} <= commands, commands
    refused = []
    for snippet in snippets:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                args = build_parser().parse_args(shlex.split(snippet)[1:])
        except SystemExit:
            refused.append(f"{snippet}: {err.getvalue().strip().splitlines()[-1:]}")
            continue
        if not getattr(args, "handler", None):
            refused.append(f"{snippet}: names no command")
    assert not refused, "\n".join(refused)


def test_agents_md_is_current_and_carries_the_skill_with_paths_from_the_repo_root():
    proc = run_script("gen_agents_md.py", "--check")
    assert proc.returncode == 0, proc.stderr
    agents = (REPO / "AGENTS.md").read_text()
    assert agents == gen_agents_md.generate(SKILLS)
    assert "Generated by scripts/gen_agents_md.py" in agents
    assert "**Never start a paid run" in agents
    paths = re.findall(r"`(skills/[\w./-]+\.md)`", agents)
    assert "skills/fine-tune-llm/references/troubleshooting.md" in paths
    for rel in paths:
        assert (REPO / rel).is_file(), rel
    assert "`references/" not in agents  # every skill-relative path was rewritten


def test_the_agents_md_check_fails_when_a_skill_changed_and_the_generator_fixes_it(tmp_path: Path):
    skills = tmp_path / "skills"
    shutil.copytree(SKILLS, skills)
    out = tmp_path / "AGENTS.md"
    shutil.copy(REPO / "AGENTS.md", out)
    md = skills / "fine-tune-llm" / "SKILL.md"
    md.write_text(md.read_text() + "\n- A new rule for agents.\n")
    stale = run_script("gen_agents_md.py", "--check", "--skills", str(skills), "--output", str(out))
    assert stale.returncode == 1 and "is stale" in stale.stderr and "A new rule for agents." in stale.stderr
    assert run_script("gen_agents_md.py", "--skills", str(skills), "--output", str(out)).returncode == 0
    assert "A new rule for agents." in out.read_text()
    assert run_script("gen_agents_md.py", "--check", "--skills", str(skills), "--output", str(out)).returncode == 0
