"""Every error a user can act on carries a stable code: each raise in server/ names one explicitly."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from tuneforge.errors import ConfigError, JobNotFound, MissingDependency, TuneforgeError

PACKAGE = Path(__file__).resolve().parents[1] / "server" / "tuneforge"
#: error classes whose calls must name a code (subclasses with one fixed meaning set their own default)
NEEDS_CODE = {"TuneforgeError", "ConfigError", "HubError"}


def calls_without_code() -> list[str]:
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr if isinstance(node.func, ast.Attribute) else None
            if name in NEEDS_CODE and not any(k.arg in ("code", None) for k in node.keywords):
                missing.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {name}(...) without code=")
    return missing


def test_every_raise_names_a_code():
    missing = calls_without_code()
    assert not missing, "errors without a stable code:\n" + "\n".join(missing)


def test_codes_are_dotted_and_rendered():
    err = TuneforgeError("bad", "do this", code="dataset.not_found")
    assert err.to_dict() == {"error": "bad", "code": "dataset.not_found", "fix": "do this"}
    assert ConfigError("x").code == "config.invalid"
    assert JobNotFound("tf-1").code == "job.not_found"
    assert MissingDependency("torch", "train").code == "dependency.missing"
    with pytest.raises(ValueError):
        TuneforgeError("bad", code="Not A Code")
