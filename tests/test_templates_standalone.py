"""The templates run alone: a job folder (the script and its helpers, staged as the job service does)
runs with tuneforge impossible to import, as it does in a bare cloud job.

Each script is started with `python -I` through a launcher that puts a finder first on sys.meta_path
refusing every `tuneforge` module (the editable install would otherwise find it), and checks first
that `import tuneforge` really fails there. A template, or one of its helpers, that imports tuneforge
fails these tests.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tuneforge import paths
from tuneforge.config import RunConfig
from tuneforge.jobs.workspace import stage_template, support_files
from tuneforge.progress import parse_event
from tuneforge.types import METHOD_TEMPLATES

TEMPLATES = sorted(METHOD_TEMPLATES.values()) + ["gguf_export.py"]

#: python -I -c LAUNCHER SCRIPT ARGS...: run SCRIPT as __main__ with every tuneforge import refused
LAUNCHER = textwrap.dedent("""
    import importlib.abc, os, runpy, sys

    class NoTuneforge(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tuneforge" or name.startswith("tuneforge."):
                raise ModuleNotFoundError(f"No module named {name!r} (a template runs without tuneforge)", name=name)
            return None

    sys.meta_path.insert(0, NoTuneforge())
    try:
        import tuneforge  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("tuneforge is importable: this launcher proves nothing")
    script, sys.argv = sys.argv[1], sys.argv[1:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))  # as `python SCRIPT` does
    runpy.run_path(script, run_name="__main__")
""")


def run_alone(script: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-I", "-c", LAUNCHER, str(script), *args], cwd=script.parent,
                          capture_output=True, text=True, timeout=timeout)


def job_folder(tmp_path: Path, template: str) -> Path:
    """A job folder as the job service stages it: the template and its helpers, copied."""
    job_dir = tmp_path / "job"
    job_dir.mkdir(exist_ok=True)
    script, helpers = stage_template(paths.templates_dir() / template, job_dir)
    assert {h.relative_to(job_dir) for h in helpers} == set(support_files(paths.templates_dir()))
    return script


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_starts_and_checks_its_config_without_tuneforge(template: str, tmp_path: Path):
    script = job_folder(tmp_path, template)
    shown = run_alone(script, "--help")
    assert shown.returncode == 0, shown.stderr
    assert "--config" in shown.stdout

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": "x", "env": {"HF_TOKEN": "stolen"}}))
    refused = run_alone(script, "--config", str(bad), *(["--hf-worker", "w.py", "--llama-worker", "w.py"] if template == "gguf_export.py" else []))
    assert refused.returncode == 2, refused.stderr
    assert "unknown config keys" in refused.stderr and "env" in refused.stderr and "stolen" not in refused.stderr
    events = [e for e in map(parse_event, refused.stdout.splitlines()) if e]
    assert events and events[-1]["type"] == "status" and events[-1]["message"].startswith("error: unknown config keys")


def test_a_script_that_imports_tuneforge_fails_under_the_launcher(tmp_path: Path):
    script = job_folder(tmp_path, "sft.py").with_name("leaky.py")
    script.write_text("from _events import emit\nfrom tuneforge import paths\nemit('status', message='unreachable')\n")
    proc = run_alone(script)
    assert proc.returncode != 0 and "No module named 'tuneforge'" in proc.stderr and "unreachable" not in proc.stdout


def test_no_template_or_helper_imports_tuneforge():
    for path in sorted(paths.templates_dir().rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            assert not any(n.split(".")[0] == "tuneforge" for n in names), f"{path}:{node.lineno} imports tuneforge"


#: the rules templates and server share: defined in templates/_shared only, imported everywhere else
SHARED_NAMES = {"EVENT_PREFIX", "CHAT_ROLES", "ROLE_ALIASES", "END_OF_TURN_TOKENS", "TRUE_LABELS", "FALSE_LABELS",
                "PROMPTS", "MAX_NEW_TOKENS", "LOGIT_TOLERANCE", "REDUCED_REFERENCE_FACTOR", "MIN_TOP1_AGREEMENT", "summarise"}


def test_the_shared_rules_are_defined_once_in_templates_shared():
    shared = paths.templates_dir() / "_shared"
    server = Path(__file__).resolve().parents[1] / "server" / "tuneforge"
    copies = []
    for path in sorted([*paths.templates_dir().rglob("*.py"), *server.rglob("*.py")]):
        if path.parent == shared:
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)] if isinstance(node, ast.Assign) else \
                [node.target.id] if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) else \
                [node.name] if isinstance(node, ast.FunctionDef) else []
            copies += [f"{path}:{node.lineno}: {name}" for name in targets if name in SHARED_NAMES]
    assert not copies, "copies of rules that live in templates/_shared:\n" + "\n".join(copies)


@pytest.mark.slow
def test_a_real_sft_run_in_a_job_folder_without_tuneforge(tiny_llama_dir: Path, tmp_path: Path):
    rows = [{"messages": [{"role": "user", "content": f"Say the code for item {i % 4}."},
                          {"role": "assistant", "content": f"CODE-{i % 4}-XYZ"}]} for i in range(16)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = job_folder(tmp_path, "sft.py")
    config = RunConfig.model_validate({
        "model": str(tiny_llama_dir), "dataset": {"path": str(data)}, "output_dir": str(script.parent / "outputs"),
        "peft": {"kind": "lora", "r": 8, "alpha": 16, "dropout": 0.0}, "max_length": 64,
        "train": {"learning_rate": 5e-3, "max_steps": 2, "per_device_batch_size": 4, "logging_steps": 1,
                  "warmup_ratio": 0.0, "lr_scheduler": "constant"},
    })
    config_path = config.write(script.parent / "config.json")
    proc = subprocess.run([sys.executable, "-I", "-c", LAUNCHER, str(script), "--config", str(config_path)], cwd=script.parent,
                          capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                               "HF_DATASETS_OFFLINE": "1", "TUNEFORGE_NO_TRACKIO": "1", "HF_HOME": str(tmp_path / "hf")})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    events = [e for e in map(parse_event, proc.stdout.splitlines()) if e]
    assert [e["step"] for e in events if e["type"] == "progress"] == [1, 2]
    (result,) = [e for e in events if e["type"] == "result"]
    assert result["steps"] == 2 and result["tokens_trained"] > 0
    assert json.loads((script.parent / "outputs" / "result.json").read_text())["steps"] == 2
    assert (script.parent / "outputs" / "adapter" / "adapter_config.json").is_file()
