"""The package's imports go one way (faces -> actions -> core -> backends -> leaves) and never in a circle.

Read from the AST of every module under server/tuneforge, function-local imports included, so an
import hidden inside a function counts as much as one at the top. docs/architecture.md draws the same map.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "server"
PACKAGE = ROOT / "tuneforge"

#: module prefix -> layer; the longest matching prefix wins. Higher numbers may import lower ones.
LAYERS: dict[str, int] = {
    # faces
    "tuneforge.cli": 4,
    "tuneforge.mcp": 4,
    "tuneforge.api": 4,
    "tuneforge.__main__": 4,
    # actions
    "tuneforge.actions": 3,
    # core
    "tuneforge.doctor": 2,
    "tuneforge.planner": 2,
    "tuneforge.jobs": 2,
    "tuneforge.gguf": 2,
    "tuneforge.models_offline": 2,
    "tuneforge.benchmarks": 2,  # lm-evaluation-harness runs (issue 12 item 4)
    "tuneforge.ledger": 2,  # every run and its notes (issue 15)
    "tuneforge.sweeps": 3,  # a sweep submits its trials through actions.train (issue 15)
    "tuneforge.pipelines": 2,  # pipeline files, stage inputs (issue 14)
    "tuneforge.pipelines.driver": 3,  # the detached driver runs actions (train, export, evaluate)
    # backends
    "tuneforge.backends": 1,
    # leaves
    "tuneforge": 0,  # the package root (__version__)
    "tuneforge.types": 0,
    "tuneforge.errors": 0,
    "tuneforge.paths": 0,
    "tuneforge.flavors": 0,
    "tuneforge.secrets": 0,
    "tuneforge.log_lines": 0,
    "tuneforge.records": 0,
    "tuneforge.reports": 0,
    "tuneforge.config": 0,
    "tuneforge.progress": 0,
    "tuneforge.diagnosis": 0,  # a log -> a Diagnosis (issue 13 item 2); imports leaves only
    "tuneforge.templates": 0,
    "tuneforge.data": 0,
}
LAYER_NAMES = {4: "faces", 3: "actions", 2: "core", 1: "backends", 0: "leaves"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> int:
    best = max((prefix for prefix in LAYERS if module == prefix or (prefix != "tuneforge" and module.startswith(prefix + "."))),
               key=len, default=None)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS here and to docs/architecture.md")
    return LAYERS[best]


def imports_of(module: str) -> set[str]:
    """The tuneforge modules this module imports, anywhere in its body."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "tuneforge")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "tuneforge":
                continue
            names = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            found.update(names or [target])
    found.discard(module)
    return {m for m in found if m in MODULES}


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_import_goes_up_a_layer():
    upward = [
        f"{m} ({LAYER_NAMES[layer_of(m)]}) imports {d} ({LAYER_NAMES[layer_of(d)]})"
        for m, deps in sorted(GRAPH.items()) for d in sorted(deps) if layer_of(d) > layer_of(m)
    ]
    assert not upward, "imports that go up a layer:\n" + "\n".join(upward)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_400_lines(module):
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= 400, f"{MODULES[module]} has {lines} lines; split it by concern"


def test_every_package_is_listed_for_the_wheel():
    import tomllib

    repo = ROOT.parent
    listed = set(tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py")}
    found |= {".".join(("tuneforge", "templates", *p.parent.relative_to(repo / "templates").parts))
              for p in (repo / "templates").rglob("__init__.py")}
    assert found == listed, f"not listed in pyproject.toml: {sorted(found - listed)}; listed but gone: {sorted(listed - found)}"
