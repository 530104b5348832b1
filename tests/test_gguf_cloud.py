"""GGUF export as a Hugging Face job (`tuneforge gguf --backend hf`), against the local Jobs/Hub emulator.

Submission goes through the CLI and the real huggingface_hub client; the payload test runs the exact
files and command the job received, locally, with the persistent llama.cpp toolchain cache standing in
for the in-job build ($TUNEFORGE_LLAMA_CPP_TOOLCHAIN), and checks that the files reach the emulated repo.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import hf_emulator
import pytest
from conftest import test_cache_dir
from test_hf_backend import USER, event, hub  # noqa: F401  (fixtures)
from test_hf_backend_payload import rewrite
from tuneforge import paths
from tuneforge.config.export import ExportConfig
from tuneforge.errors import TuneforgeError
from tuneforge.gguf.cloud import choose_flavor, estimate_params
from tuneforge.jobs.service import JobService
from tuneforge.jobs.workspace import support_files

TINY = f"{USER}/tiny-llama"
SMALL = 20_000_000


def serve(hub_: hf_emulator.HubEmulator, model_dir: Path, repo_id: str, *, weights: bool = False) -> None:
    hub_.add_model(repo_id, {p.name: p.read_bytes() for p in model_dir.iterdir()
                             if p.is_file() and (weights or p.stat().st_size < SMALL)})


def cli(command: list[str], *args: str, code: int = 0) -> dict:
    proc = subprocess.run([*command, "gguf", *args, "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


def test_submitting_through_the_cli_returns_the_job_and_ships_script_config_and_workers_without_the_token(
    hub, tiny_llama_dir, tuneforge_cli  # noqa: F811
):
    serve(hub, tiny_llama_dir, TINY)
    sub = cli(tuneforge_cli, TINY, "--backend", "hf", "--push-to", f"{USER}/tiny-GGUF", "--quant", "q8_0")
    assert sub["backend"] == "hf" and sub["kind"] == "gguf" and sub["flavor"] == "cpu-upgrade"
    assert sub["url"] == f"{hub.url}/jobs/{USER}/{sub['backend_job_id']}"
    assert "cpu-upgrade" in sub["flavor_reason"] and sub["files"] == ["tiny-llama-Q8_0.gguf", "Modelfile", "README.md"]

    received = hub.jobs[sub["backend_job_id"]]
    assert received["command"] == ["uv", "run", "/data/gguf_export.py", "--config", "/data/config.json",
                                   "--hf-worker", "/data/hf_worker.py", "--llama-worker", "/data/llama_worker.py"]
    assert received["flavor"] == "cpu-upgrade" and received["labels"]["tuneforge-kind"] == "gguf"
    assert received["_secrets"] == {"HF_TOKEN": hub.token}
    files = hub.volume_files(sub["backend_job_id"])
    helpers = {rel.as_posix() for rel in support_files(paths.templates_dir())}
    assert {"_events.py", "_shared/events.py", "_shared/gguf_checks.py"} <= helpers  # what gguf_export.py imports
    assert set(files) == {"gguf_export.py", "config.json", "hf_worker.py", "llama_worker.py", *helpers}
    assert all(files[rel] == (paths.templates_dir() / rel).read_bytes() for rel in helpers)
    config = json.loads(files["config.json"])
    assert ExportConfig.model_validate(config).model == TINY  # the job's config.json is an ExportConfig
    assert config["model"] == TINY and config["adapter"] is False and config["push_to_hub"] == f"{USER}/tiny-GGUF"
    assert [q["name"] for q in config["quants"]] == ["q8_0"]
    assert "FROM ./tiny-llama-Q8_0.gguf" in config["modelfile"] and "TEMPLATE" in config["modelfile"]
    assert 'PARAMETER stop "<|im_end|>"' in config["modelfile"] and "ollama run hf.co/alice/tiny-GGUF:Q8_0" in config["readme"]
    assert all(hub.token.encode() not in data for data in files.values())
    assert hub.token not in json.dumps(hub.public(received))

    # the record is a job like any other: status reads stage, progress and the result event
    hub.set_stage(sub["backend_job_id"], "RUNNING")
    hub.append_log(sub["backend_job_id"], event("progress", step=3, total_steps=9, message="Converting"))
    status = JobService().status(sub["job_id"])
    assert status.kind == "gguf" and status.stage == "RUNNING" and status.progress["step"] == 3
    result = {"files": [{"quant": "q8_0", "path": "/gguf/tiny-llama-Q8_0.gguf", "bytes": 1, "checks": {"passed": True}}],
              "pushed_files": ["tiny-llama-Q8_0.gguf", "Modelfile", "README.md"], "pushed_to": f"{USER}/tiny-GGUF", "passed": True}
    hub.append_log(sub["backend_job_id"], event("result", **result))
    hub.set_stage(sub["backend_job_id"], "COMPLETED")
    done = JobService().wait(sub["job_id"], timeout=30, poll_seconds=0.05)
    assert done.stage == "COMPLETED" and done.outputs["result"]["pushed_files"] == result["pushed_files"]


def test_a_local_only_model_is_refused_with_the_fix_and_nothing_is_submitted(hub, tiny_llama_dir, tuneforge_cli):  # noqa: F811
    err = cli(tuneforge_cli, str(tiny_llama_dir), "--backend", "hf", "--push-to", f"{USER}/x-GGUF", code=2)
    assert err["code"] == "gguf.not_on_hub" and "hf upload" in err["fix"] and "--backend local" in err["fix"]
    err = cli(tuneforge_cli, f"{USER}/not-there", "--backend", "hf", "--push-to", f"{USER}/x-GGUF", code=2)
    assert err["code"] == "hf.repo_not_found"
    assert not hub.jobs and not hub.calls("POST", r"/api/jobs/")


def test_a_big_adapter_gets_a_flavor_with_enough_memory_and_says_why(hub, tiny_llama_dir, tuneforge_cli):  # noqa: F811
    # an 8B Llama base (config only: the size comes from config.json) and a LoRA adapter trained on it
    big = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
           "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
           "tie_word_embeddings": False}
    tok = {p.name: p.read_bytes() for p in tiny_llama_dir.iterdir() if p.name.startswith(("tokenizer", "chat_template", "special"))}
    hub.add_model(f"{USER}/big-8b", {"config.json": json.dumps(big).encode(), **tok})
    adapter = {"peft_type": "LORA", "base_model_name_or_path": f"{USER}/big-8b", "r": 16, "target_modules": ["q_proj"]}
    hub.add_model(f"{USER}/big-8b-lora", {"adapter_config.json": json.dumps(adapter).encode()})
    assert 7.9e9 < estimate_params(big) < 8.1e9

    sub = cli(tuneforge_cli, f"{USER}/big-8b-lora", "--backend", "hf", "--push-to", f"{USER}/big-GGUF", "--quant", "q4_k_m")
    assert sub["flavor"] != "cpu-upgrade" and sub["base_model"] == f"{USER}/big-8b"
    assert "cpu-upgrade" in sub["flavor_reason"] and "too small" in sub["flavor_reason"] and "GB" in sub["flavor_reason"]
    config = json.loads(hub.volume_files(sub["backend_job_id"])["config.json"])
    assert config["adapter"] is True and config["base_model"] == f"{USER}/big-8b"

    small = choose_flavor(135_000_000, adapter=True)
    assert small.flavor == "cpu-upgrade" and small.checks == "full"
    large = choose_flavor(30_000_000_000, adapter=False)
    assert large.flavor == "a100-large" and large.checks == "bf16"
    with pytest.raises(TuneforgeError) as refused:
        choose_flavor(70_000_000_000, adapter=True)
    assert refused.value.code == "gguf.too_large_for_cloud" and "--backend local" in refused.value.fix


@pytest.fixture
def repo_info_route(monkeypatch: pytest.MonkeyPatch) -> None:
    """snapshot_download asks for the repo's commit and file list first (repo info, tree): served from the emulator's repos."""

    def repo_info(self, ns: str, name: str, rev: str) -> None:
        files = self.emulator.repos.get(f"model:{ns}/{name}")
        if files is None:
            return self._error(404, "Repository not found", {"X-Error-Code": "RepoNotFound"})
        self._json({"id": f"{ns}/{name}", "modelId": f"{ns}/{name}", "sha": "0" * 40, "private": False,
                    "siblings": [{"rfilename": p} for p in sorted(files)]})

    def tree(self, ns: str, name: str, rev: str) -> None:
        import hashlib

        files = self.emulator.repos.get(f"model:{ns}/{name}")
        if files is None:
            return self._error(404, "Repository not found", {"X-Error-Code": "RepoNotFound"})
        self._json([{"type": "file", "path": p, "size": len(e["content"]), "oid": hashlib.sha1(e["content"]).hexdigest()}
                    for p, e in sorted(files.items())])

    routes = [("GET", re.compile(r"/api/models/(?P<ns>[^/]+)/(?P<name>[^/]+)/revision/(?P<rev>[^/]+)"), repo_info),
              ("GET", re.compile(r"/api/models/(?P<ns>[^/]+)/(?P<name>[^/]+)/tree/(?P<rev>[^/]+)"), tree)]
    monkeypatch.setattr(hf_emulator, "ROUTES", [*routes, *hf_emulator.ROUTES])


@pytest.mark.slow
def test_the_exact_payload_exports_verifies_and_pushes_the_tiny_model(hub, repo_info_route, tiny_llama_dir, tuneforge_cli, tmp_path):  # noqa: F811
    from tuneforge.gguf import toolchain as tcm

    os.environ["TUNEFORGE_TOOLCHAIN_DIR"] = str(test_cache_dir() / "toolchain")
    try:
        tc = tcm.ensure()  # built once per machine (CI: tuneforge gguf --install-toolchain)
    finally:
        os.environ.pop("TUNEFORGE_TOOLCHAIN_DIR", None)
    serve(hub, tiny_llama_dir, TINY, weights=True)
    sub = cli(tuneforge_cli, TINY, "--backend", "hf", "--push-to", f"{USER}/tiny-GGUF", "--quant", "q8_0", "--min-agreement", "q8_0=0.85")
    received = hub.jobs[sub["backend_job_id"]]
    assert received["command"][-2:] == ["--min-agreement", "q8_0=0.85"]  # the threshold travels as a template argument

    data = tmp_path / "mount"  # stands for the bucket folder mounted at /data
    for rel, content in hub.volume_files(sub["backend_job_id"]).items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(content)
    workdir = tmp_path / "job-cwd"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TUNEFORGE_"))}
    env.update(received["environment"])
    env.update(received["_secrets"])  # what HF Jobs injects: HF_TOKEN
    env.update({"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "job-hf-home"), "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TUNEFORGE_LLAMA_CPP_TOOLCHAIN": tc.root})
    proc = subprocess.run([sys.executable, *rewrite(received["command"][2:], data)], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    events = [json.loads(line.split(" ", 1)[1]) for line in proc.stdout.splitlines() if line.startswith("##tuneforge-event ")]
    (result,) = [e for e in events if e["type"] == "result"]
    assert result["passed"] and [f["quant"] for f in result["files"]] == ["q8_0"]
    assert result["reference"]["checks"]["max_abs_logit_diff"] < 0.05  # the f16 intermediate matched transformers
    assert result["files"][0]["checks"]["generated_tokens"] > 0
    gate = result["files"][0]["checks"]
    assert gate["min_agreement"] == 0.85 and gate["agreement"] >= 0.85 and gate["prompts"] == 24  # the same gate as a local export
    assert result["reference"]["checks"]["min_agreement"] == 0.95
    progress = [e for e in events if e["type"] == "progress"]
    assert progress[-1]["step"] == progress[-1]["total_steps"]
    out = workdir / "gguf"
    assert (out / "tiny-llama-Q8_0.gguf").stat().st_size > 1_000_000 and not (out / "tiny-llama-F16.gguf").exists()
    assert "FROM ./tiny-llama-Q8_0.gguf" in (out / "Modelfile").read_text()

    pushed = hub.repo_files(f"{USER}/tiny-GGUF")
    assert set(pushed) == {"tiny-llama-Q8_0.gguf", "Modelfile", "README.md"} == set(result["pushed_files"])
    card = hub.read_repo_file(f"{USER}/tiny-GGUF", "README.md").decode()
    assert "| tiny-llama-Q8_0.gguf | Q8_0 | " in card and "0.0 MiB" not in card
    assert hub.token not in proc.stdout + proc.stderr
