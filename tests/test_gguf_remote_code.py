"""GGUF export never runs a model's own code without the user's consent (issue 11, item 3).

The model here is the tiny Llama with an `auto_map` in config.json and tokenizer_config.json that
points at `tokenization_evil.py`, a tokenizer module that writes a marker file when it is imported.
Its tokenizer class is `HybridDNATokenizer`, for which llama.cpp's converter at the pinned commit calls
`AutoTokenizer.from_pretrained(..., trust_remote_code=True)`, so the converter really would run it.

Every face refuses it (`gguf.remote_code`) unless `--trust-remote-code` / `trust_remote_code=true` is
given; and even when that check is bypassed, the staged copy the export converts has no code to find
and transformers, under `_shared/no_remote_code.py`, cannot import any. One slow test runs the real
converter (the persistent toolchain cache, as in tests/test_gguf.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_main import run_main
from conftest import test_cache_dir
from mcp_client import in_memory, text_of
from test_gguf_cloud import serve
from test_hf_backend import USER, hub  # noqa: F401  (fixture)
from tuneforge import paths
from tuneforge.config import RunConfig
from tuneforge.config.export import ExportConfig
from tuneforge.errors import TuneforgeError
from tuneforge.gguf import export as gguf_export
from tuneforge.gguf import toolchain as tcm
from tuneforge.gguf import workers
from tuneforge.templates._shared.model_files import (
    remote_code_findings,
    stage_model_folder,
)

EVIL_MAP = {"AutoTokenizer": [None, "tokenization_evil.HybridDNATokenizer"]}
#: what the converter does for HybridDNA, ChatGLM, Qwen (v1), DeepSeek, GLM, HunYuan, MiniMax... tokenizers
LOAD_LIKE_THE_CONVERTER = ("import sys\nfrom transformers import AutoTokenizer\n"
                           "tok = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
                           "print(type(tok).__name__)\n")


def make_evil(tiny: Path, root: Path, *, tokenizer_class: str = "HybridDNATokenizer") -> tuple[Path, Path]:
    """(a copy of the tiny Llama whose tokenizer is its own code, the marker that code writes when imported)."""
    model, marker = root / "evil-model", root / "MARKER"
    model.mkdir(parents=True)
    for f in tiny.iterdir():
        if f.suffix == ".safetensors":
            (model / f.name).symlink_to(f)
        else:
            shutil.copyfile(f, model / f.name)
    for name in ("config.json", "tokenizer_config.json"):
        data = json.loads((model / name).read_text())
        data["auto_map"] = EVIL_MAP
        if name == "tokenizer_config.json":
            data["tokenizer_class"] = tokenizer_class
        (model / name).write_text(json.dumps(data, indent=2))
    (model / "tokenization_evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('the model code ran')\n"
        "from transformers import PreTrainedTokenizerFast\n\n\nclass HybridDNATokenizer(PreTrainedTokenizerFast):\n    pass\n")
    return model, marker


@pytest.fixture
def evil(tiny_llama_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    return make_evil(tiny_llama_dir, tmp_path)


@pytest.fixture
def no_export(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """run_export replaced by a recorder that stops there: whatever reaches it got past every check."""
    calls: list[dict] = []

    def reached(source, quant_types, out_dir, **kwargs):
        calls.append({"source": source, "out_dir": out_dir, **kwargs})
        raise TuneforgeError("reached the export", "nothing", code="test.reached_export")

    monkeypatch.setattr(gguf_export, "run_export", reached)
    return calls


def python(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], check=False, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env=env, cwd=cwd)


# ---- refused before any work, from every face ----------------------------------------------------------
def test_a_model_with_its_own_code_is_refused_before_any_work(evil, tmp_path: Path, no_export: list[dict]):
    from tuneforge.actions.export import export_gguf

    model, marker = evil
    with pytest.raises(TuneforgeError) as info:
        export_gguf(str(model), quants=["f16"], out=str(tmp_path / "out"))
    err = info.value
    assert err.code == "gguf.remote_code" and "--trust-remote-code" in err.fix
    assert "config.json: auto_map (AutoTokenizer)" in err.message and "tokenizer_config.json: auto_map (AutoTokenizer)" in err.message
    assert "tokenization_evil.py" in err.message and str(model) in err.message
    assert err.details["found"] == {str(model): remote_code_findings(model)}
    assert not no_export and not (tmp_path / "out").exists() and not marker.exists()


def test_python_files_beside_the_weights_or_code_in_the_base_model_are_refused_too(tiny_llama_dir: Path, tmp_path: Path,
                                                                                  no_export: list[dict]):
    from tuneforge.actions.export import export_gguf

    plain = tmp_path / "plain"
    shutil.copytree(tiny_llama_dir, plain, copy_function=os.symlink)
    (plain / "modeling_custom.py").write_text("raise SystemExit('never imported')\n")
    with pytest.raises(TuneforgeError) as info:
        export_gguf(str(plain), quants=["f16"], out=str(tmp_path / "o1"))
    assert info.value.code == "gguf.remote_code" and "modeling_custom.py" in info.value.message

    base, _ = make_evil(tiny_llama_dir, tmp_path / "base")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": str(base)}))
    with pytest.raises(TuneforgeError) as info:
        export_gguf(str(adapter), quants=["f16"], out=str(tmp_path / "o2"))
    assert info.value.code == "gguf.remote_code" and str(base) in info.value.message and str(adapter) not in info.value.message
    assert not no_export


def test_with_trust_remote_code_the_refusal_goes_away_and_the_code_is_kept(evil, tmp_path: Path, no_export: list[dict]):
    from tuneforge import api

    model, marker = evil
    with pytest.raises(TuneforgeError) as info:
        api.export_gguf(str(model), quants=["f16"], out=str(tmp_path / "out"), trust_remote_code=True)
    assert info.value.code == "test.reached_export"
    assert no_export[0]["trust_remote_code"] is True and no_export[0]["source"].path == str(model)

    trusted = stage_model_folder(model, tmp_path / "trusted", trust_remote_code=True)
    assert (trusted / "tokenization_evil.py").is_file()
    assert json.loads((trusted / "tokenizer_config.json").read_text())["auto_map"] == EVIL_MAP
    assert remote_code_findings(trusted) == remote_code_findings(model)
    assert not marker.exists()  # nothing ran: the export stopped at its first step


def test_the_cli_refuses_with_the_code_and_passes_the_flag_on(evil, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              no_export: list[dict]):
    model, marker = evil
    proc = run_main(capsys, "gguf", str(model), "--quant", "f16", "--out", str(tmp_path / "out"), "--json")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = json.loads(proc.stdout)
    assert err["code"] == "gguf.remote_code" and "tokenization_evil.py" in err["error"] and "--trust-remote-code" in err["fix"]
    assert not no_export

    proc = run_main(capsys, "gguf", str(model), "--quant", "f16", "--out", str(tmp_path / "out"), "--trust-remote-code", "--json")
    assert json.loads(proc.stdout)["code"] == "test.reached_export" and no_export[0]["trust_remote_code"] is True
    assert not marker.exists()


def test_the_mcp_tool_refuses_with_the_code_and_tells_the_agent_to_ask_the_user(evil, tmp_path: Path, no_export: list[dict]):
    model, marker = evil

    async def body(client):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        refused = await client.call_tool("export_gguf", {"model": str(model), "quants": ["f16"], "out": str(tmp_path / "out")})
        trusted = await client.call_tool("export_gguf", {"model": str(model), "quants": ["f16"], "out": str(tmp_path / "out"),
                                                         "trust_remote_code": True})
        return tools["export_gguf"], refused, trusted

    tool, refused, trusted = in_memory(body)
    field = tool.input_schema["properties"]["trust_remote_code"]
    assert field["type"] == "boolean" and field["default"] is False and "user" in field["description"]
    assert "trust_remote_code" not in tool.input_schema.get("required", [])
    assert refused.is_error and "[gguf.remote_code]" in text_of(refused) and "tokenization_evil.py" in text_of(refused)
    fix = text_of(refused).split("Fix:", 1)[1]
    assert "ask" in fix and "trust_remote_code=true" in fix and "--trust-remote-code" not in fix
    assert trusted.is_error and "[test.reached_export]" in text_of(trusted) and no_export[0]["trust_remote_code"] is True
    assert not marker.exists()


def test_a_cloud_export_is_refused_and_trust_travels_as_a_template_argument_not_in_the_config(hub, evil, tuneforge_cli):  # noqa: F811
    model, _ = evil
    repo = f"{USER}/evil-model"
    serve(hub, model, repo)
    base = [*tuneforge_cli, "gguf", repo, "--backend", "hf", "--push-to", f"{USER}/evil-GGUF", "--quant", "q8_0", "--json"]
    proc = subprocess.run(base, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = json.loads(proc.stdout)
    assert err["code"] == "gguf.remote_code" and repo in err["error"] and "--trust-remote-code" in err["fix"]
    assert not hub.jobs

    proc = subprocess.run([*base, "--trust-remote-code"], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    received = hub.jobs[json.loads(proc.stdout)["backend_job_id"]]
    assert received["command"][-1] == "--trust-remote-code"
    config = json.loads(hub.volume_files(json.loads(proc.stdout)["backend_job_id"])["config.json"])
    assert not any("trust" in key for key in config)
    # no config file can say it: neither config schema has such a key
    assert not any("trust" in name for name in [*ExportConfig.model_fields, *RunConfig.model_fields])


def test_the_cloud_template_refuses_untrusted_code_and_downloads_code_only_when_trusted(evil, tmp_path: Path):
    model, marker = evil
    driver = tmp_path / "driver.py"
    driver.write_text(
        "import json, runpy, sys\nimport huggingface_hub\n"
        "def fake(repo_id, allow_patterns, local_dir):\n"
        "    print(json.dumps(allow_patterns), flush=True)\n    return sys.argv[2]\n"
        "huggingface_hub.snapshot_download = fake\n"
        "template = runpy.run_path(sys.argv[1], run_name='template')\n"
        "folder = template['download']('alice/evil', None, 'model', sys.argv[3] == 'trust')\n"
        "print('DOWNLOADED', folder)\n")
    template = str(paths.templates_dir() / "gguf_export.py")
    refused = python(str(driver), template, str(model), "no", cwd=tmp_path)
    assert refused.returncode == 2 and "DOWNLOADED" not in refused.stdout
    assert "ships its own code" in refused.stderr and "tokenization_evil.py" in refused.stderr
    assert "--trust-remote-code" in refused.stderr and "*.py" not in refused.stdout
    trusted = python(str(driver), template, str(model), "trust", cwd=tmp_path)
    assert trusted.returncode == 0 and "DOWNLOADED" in trusted.stdout and "*.py" in trusted.stdout
    assert not marker.exists()


# ---- and the converter cannot load the code even when the check is bypassed --------------------------------
def test_the_staged_copy_has_only_model_files_and_no_auto_map(evil, tmp_path: Path):
    model, _ = evil
    staged = stage_model_folder(model, tmp_path / "staged", trust_remote_code=False)
    assert sorted(p.name for p in staged.iterdir()) == sorted(p.name for p in model.iterdir() if p.suffix != ".py")
    for name in ("config.json", "tokenizer_config.json"):
        data = json.loads((staged / name).read_text())
        original = json.loads((model / name).read_text())
        assert "auto_map" not in data and data == {k: v for k, v in original.items() if k != "auto_map"}
    assert (staged / "model.safetensors").read_bytes()[:64] == (model / "model.safetensors").read_bytes()[:64]
    assert remote_code_findings(staged) == []
    assert json.loads((model / "config.json").read_text())["auto_map"] == EVIL_MAP  # the user's folder is untouched


def test_transformers_cannot_import_the_code_from_the_staged_copy_nor_under_the_guard(evil, tmp_path: Path):
    model, marker = evil
    probe = tmp_path / "probe.py"
    probe.write_text(LOAD_LIKE_THE_CONVERTER)
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"))

    ran = python(str(probe), str(model), env=env)  # the fixture's code is live: loaded as the converter does, it runs
    assert ran.returncode == 0 and "HybridDNATokenizer" in ran.stdout and marker.exists(), ran.stderr[-2000:]
    marker.unlink()

    staged = stage_model_folder(model, tmp_path / "staged", trust_remote_code=False)
    loaded = python(str(probe), str(staged), env=env)  # the same call on the staged copy: transformers' own class
    assert loaded.returncode == 0 and "HybridDNATokenizer" not in loaded.stdout, loaded.stderr[-2000:]
    assert not marker.exists()

    guarded = python(str(workers.NO_REMOTE_CODE), str(probe), str(model), env=env)  # the original folder, under the guard
    assert guarded.returncode != 0 and "tuneforge refused to run this model's own code" in guarded.stderr
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_pinned_converter_runs_the_code_on_the_folder_but_not_the_way_the_export_calls_it(tiny_llama_dir: Path, tmp_path: Path,
                                                                                              monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TUNEFORGE_TOOLCHAIN_DIR", str(test_cache_dir() / "toolchain"))
    tc = tcm.ensure()
    model, marker = make_evil(tiny_llama_dir, tmp_path / "a")
    log = tmp_path / "export.log"

    # what issue 11 found: llama.cpp's converter itself, on the folder, imports the model's tokenizer module
    env = tc.env(dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules")))
    python(tc.convert_script, str(model), "--outtype", "f16", "--outfile", str(tmp_path / "direct.gguf"), env=env)
    assert marker.exists(), "the fixture must be code the converter runs"
    marker.unlink()

    # the export's call on the staged copy: nothing to import (this tokenizer needs its code, so it fails)
    staged = stage_model_folder(model, tmp_path / "staged", trust_remote_code=False)
    with pytest.raises(TuneforgeError) as info:
        workers.convert(tc, staged, tmp_path / "staged.gguf", "f16", log)
    assert info.value.code == "gguf.convert_failed" and not marker.exists()
    # the export's call on the original folder (detection and staging both bypassed): the guard refuses it
    with pytest.raises(TuneforgeError) as info:
        workers.convert(tc, model, tmp_path / "guarded.gguf", "f16", log)
    assert info.value.code == "gguf.remote_code" and "refused to run this model's own code" in info.value.message
    assert "--trust-remote-code" in info.value.fix and not marker.exists()

    # a model whose auto_map is only a stray key converts from its staged copy
    stray, stray_marker = make_evil(tiny_llama_dir, tmp_path / "b", tokenizer_class="TokenizersBackend")
    out = tmp_path / "stray.gguf"
    workers.convert(tc, stage_model_folder(stray, tmp_path / "stray-staged", trust_remote_code=False), out, "f16", log)
    assert out.read_bytes()[:4] == b"GGUF" and not stray_marker.exists()
