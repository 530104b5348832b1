#!/usr/bin/env python3
"""Validate every skill under skills/: the checks agent clients do not make for us.

    python scripts/validate_skills.py [SKILLS_DIR] [--json]

For each skills/<folder>/SKILL.md:
  - the file starts with a YAML frontmatter block that parses to a mapping;
  - only known keys (name, description, license, allowed-tools, metadata, compatibility);
  - `name` is kebab-case, at most 64 characters, and equals the folder name;
  - `description` is a non-empty string of at most 1024 characters without '<' or '>';
  - every file the skill mentions (references/..., scripts/..., assets/..., relative markdown links)
    exists inside the skill folder, and every file in references/ is mentioned (no orphans).
Exit 0 when every skill passes, 1 otherwise (each problem printed as `path: problem`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
ALLOWED_KEYS = {"name", "description", "license", "allowed-tools", "metadata", "compatibility"}
REQUIRED_KEYS = ("name", "description")
NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
NAME_MAX = 64
DESCRIPTION_MAX = 1024
# paths a skill body points to: references/x.md, scripts/y.py, assets/z.json (in backticks or prose)
MENTION_RE = re.compile(r"(?<![\w/.-])((?:references|scripts|assets)/[\w./-]*[\w-])")
LINK_RE = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def split_frontmatter(text: str) -> tuple[str | None, str]:
    """(frontmatter YAML, body); frontmatter is None when the file does not start with '---'."""
    if not text.startswith("---"):
        return None, text
    lines = text.splitlines(keepends=True)
    if lines[0].strip() != "---":
        return None, text
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "".join(lines[1:i]), "".join(lines[i + 1:])
    return None, text


def referenced_files(body: str) -> set[str]:
    found = set(MENTION_RE.findall(body))
    for target in LINK_RE.findall(body):
        target = target.split("#", 1)[0]
        if target and not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not target.startswith("/"):
            found.add(target)
    return {f.rstrip(".") for f in found}


def validate_skill(skill_dir: Path) -> list[str]:
    """Problems with one skill folder (empty when it is valid)."""
    skill_md = skill_dir / "SKILL.md"
    where = str(skill_md)
    if not skill_md.is_file():
        return [f"{skill_dir}: no SKILL.md"]
    try:
        text = skill_md.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return [f"{where}: not UTF-8 (byte {exc.start})"]
    raw, body = split_frontmatter(text)
    if raw is None:
        return [f"{where}: missing YAML frontmatter (the file must start with a '---' block)"]
    try:
        meta = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 2}" if mark else ""
        return [f"{where}:{line} frontmatter is not valid YAML: {getattr(exc, 'problem', exc)}"]
    if not isinstance(meta, dict):
        return [f"{where}: frontmatter must be a mapping of keys"]

    problems: list[str] = []
    for key in REQUIRED_KEYS:
        if key not in meta:
            problems.append(f"{where}: frontmatter is missing `{key}`")
    for key in sorted(set(meta) - ALLOWED_KEYS):
        problems.append(f"{where}: unknown frontmatter key `{key}` (allowed: {', '.join(sorted(ALLOWED_KEYS))})")

    name = meta.get("name")
    if "name" in meta:
        if not isinstance(name, str) or not NAME_RE.match(name):
            problems.append(f"{where}: name {name!r} is not kebab-case (lowercase letters, digits, single hyphens)")
        elif len(name) > NAME_MAX:
            problems.append(f"{where}: name is {len(name)} characters (at most {NAME_MAX})")
        if name != skill_dir.name:
            problems.append(f"{where}: name {name!r} differs from its folder {skill_dir.name!r}")

    desc = meta.get("description")
    if "description" in meta:
        if not isinstance(desc, str) or not desc.strip():
            problems.append(f"{where}: description must be a non-empty string")
        else:
            if len(desc) > DESCRIPTION_MAX:
                problems.append(f"{where}: description is {len(desc)} characters (at most {DESCRIPTION_MAX})")
            if "<" in desc or ">" in desc:
                problems.append(f"{where}: description contains '<' or '>' (not allowed in skill descriptions)")

    if not body.strip():
        problems.append(f"{where}: the body after the frontmatter is empty")
    mentioned = referenced_files(body)
    root = skill_dir.resolve()
    for rel in sorted(mentioned):
        target = (skill_dir / rel).resolve()
        if root not in target.parents and target != root:
            problems.append(f"{where}: `{rel}` points outside the skill folder")
        elif not target.exists():
            problems.append(f"{where}: mentions `{rel}`, which does not exist")
    refs = skill_dir / "references"
    if refs.is_dir():
        for path in sorted(p for p in refs.rglob("*") if p.is_file()):
            rel = path.relative_to(skill_dir).as_posix()
            if rel not in mentioned:
                problems.append(f"{where}: {rel} is never mentioned, so no agent will read it (add a 'Read ... when ...' line)")
    return problems


def skill_dirs(skills_root: Path) -> list[Path]:
    return sorted(p for p in skills_root.iterdir() if p.is_dir() and not p.name.startswith("."))


def validate_all(skills_root: Path) -> dict[str, list[str]]:
    """Problems per skill folder name; a root without skills is itself a problem."""
    if not skills_root.is_dir():
        return {str(skills_root): [f"{skills_root}: no such directory"]}
    dirs = skill_dirs(skills_root)
    if not dirs:
        return {str(skills_root): [f"{skills_root}: no skill folders"]}
    return {d.name: validate_skill(d) for d in dirs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("skills_dir", nargs="?", default=str(REPO / "skills"))
    parser.add_argument("--json", action="store_true", help="Print {skill: [problems]} as JSON.")
    args = parser.parse_args(argv)
    results = validate_all(Path(args.skills_dir))
    failed = any(results.values())
    if args.json:
        print(json.dumps({"ok": not failed, "skills": results}, indent=2))
    else:
        for name, problems in results.items():
            if problems:
                for problem in problems:
                    print(problem, file=sys.stderr)
            else:
                print(f"ok  {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
