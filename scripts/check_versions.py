#!/usr/bin/env python3
"""One version number everywhere: pyproject, tuneforge.__version__ and the agent manifests.

    python scripts/check_versions.py            # exit 1 (and name each file) when they differ
    python scripts/check_versions.py --set 0.2.0  # write one version into all of them

Places: pyproject.toml [project].version, server/tuneforge/__init__.py __version__,
.claude-plugin/plugin.json version, .claude-plugin/marketplace.json plugins[name=tuneforge].version
(and metadata.version when present), gemini-extension.json version.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "tuneforge"
SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:[-.+][0-9A-Za-z.-]+)?$")

PYPROJECT_RE = re.compile(r'(?ms)^(\[project\]\s*\n(?:(?!^\[).)*?^version\s*=\s*")([^"]+)(")')
INIT_RE = re.compile(r'(?m)^(__version__\s*=\s*")([^"]+)(")')


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def versions(repo: Path = REPO) -> dict[str, str | None]:
    """Where each version lives -> the version found there (None when missing)."""
    found: dict[str, str | None] = {}
    m = PYPROJECT_RE.search(_read(repo / "pyproject.toml"))
    found["pyproject.toml [project].version"] = m.group(2) if m else None
    m = INIT_RE.search(_read(repo / "server/tuneforge/__init__.py"))
    found["server/tuneforge/__init__.py __version__"] = m.group(2) if m else None
    plugin = json.loads(_read(repo / ".claude-plugin/plugin.json"))
    found[".claude-plugin/plugin.json version"] = plugin.get("version")
    market = json.loads(_read(repo / ".claude-plugin/marketplace.json"))
    entries = [p for p in market.get("plugins", []) if p.get("name") == PLUGIN_NAME]
    found[f".claude-plugin/marketplace.json plugins[{PLUGIN_NAME}].version"] = entries[0].get("version") if entries else None
    if "version" in (market.get("metadata") or {}):
        found[".claude-plugin/marketplace.json metadata.version"] = market["metadata"]["version"]
    gemini = json.loads(_read(repo / "gemini-extension.json"))
    found["gemini-extension.json version"] = gemini.get("version")
    return found


def set_version(version: str, repo: Path = REPO) -> None:
    for rel, pattern in (("pyproject.toml", PYPROJECT_RE), ("server/tuneforge/__init__.py", INIT_RE)):
        path = repo / rel
        text, n = pattern.subn(lambda m: m.group(1) + version + m.group(3), _read(path), count=1)
        if n != 1:
            raise SystemExit(f"{rel}: no version to replace")
        path.write_text(text, encoding="utf-8")
    for rel in (".claude-plugin/plugin.json", "gemini-extension.json", ".claude-plugin/marketplace.json"):
        path = repo / rel
        data = json.loads(_read(path))
        if rel.endswith("marketplace.json"):
            for entry in data.get("plugins", []):
                if entry.get("name") == PLUGIN_NAME:
                    entry["version"] = version
            if "version" in (data.get("metadata") or {}):
                data["metadata"]["version"] = version
        else:
            data["version"] = version
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", metavar="VERSION", help="Write this version into every place.")
    parser.add_argument("--repo", default=str(REPO))
    args = parser.parse_args(argv)
    repo = Path(args.repo)
    if args.set:
        if not SEMVER.match(args.set):
            print(f"{args.set!r} is not a version like 1.2.3", file=sys.stderr)
            return 2
        set_version(args.set, repo)
    found = versions(repo)
    distinct = {v for v in found.values()}
    width = max(len(k) for k in found)
    for place, version in found.items():
        print(f"{place:<{width}}  {version if version is not None else 'MISSING'}")
    if None in distinct or len(distinct) != 1:
        print("Versions differ: run `python scripts/check_versions.py --set X.Y.Z` to align them.", file=sys.stderr)
        return 1
    print(f"All at {distinct.pop()}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
