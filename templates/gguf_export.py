# /// script
# requires-python = ">=3.10"
# dependencies = [
#     "torch>=2.4",
#     "transformers>=5.0",
#     "peft>=0.17",
#     "numpy",
#     "huggingface_hub>=1.0",
#     "safetensors",
#     "sentencepiece",
#     "protobuf",
#     "jinja2",
#     "pip",
# ]
# ///
"""GGUF export as a Hugging Face job: download, merge (adapters), convert, quantize, verify, push.

Usage:
    uv run gguf_export.py --config config.json --hf-worker hf_worker.py --llama-worker llama_worker.py

The config is written by tuneforge (tuneforge/gguf/cloud.py): the source repo (`model`), whether it
is a LoRA adapter and its base repo, the quant types, the push target (`push_to_hub`), the Modelfile
and model card text already rendered from the model's chat template, the pinned llama.cpp version and
the verification settings. It never holds a secret: the token comes from the HF_TOKEN secret.

llama.cpp is the same pinned version tuneforge uses locally: the `llama-cpp-python` sdist at the pinned
version from PyPI, built here (its `vendor/llama.cpp` converter with its own gguf-py, its quantizer and
runtime). $TUNEFORGE_LLAMA_CPP_TOOLCHAIN may name an already built toolchain folder (`site/` with
llama_cpp and gguf, `llama.cpp/convert_hf_to_gguf.py`: tuneforge's cache layout) to skip the build.
The merge, the reference logits, quantizing and checking run in tuneforge's own standalone worker
scripts (uploaded next to this one), so the cloud export is the local export.

A model that ships its own code (an `auto_map` in its JSON files, Python files beside the weights) is
exported only with `--trust-remote-code`, which tuneforge adds to the job's command when the user said
they trust that code (it is never a config key). Without it such a model fails the job before any
work, and every step reads a staged copy of the model without its code (_shared/model_files.py) and
runs under _shared/no_remote_code.py, so the converter cannot load the model's code in any case.

Prints `##tuneforge-event {json}` lines (status, progress, result) and writes gguf-report.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # its helpers travel next to it (jobs/workspace.py)
from _shared.events import EVENT_PREFIX  # noqa: E402, F401  (part of every template's surface)
from _shared.gguf_checks import PROMPTS, summarise  # noqa: E402
from _shared.model_files import remote_code_findings, stage_model_folder  # noqa: E402
from _events import emit, fail  # noqa: E402

HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]
CODE_PATTERNS = ["*.py"]  # only with --trust-remote-code
#: runs a script with transformers unable to import a model's own code
NO_REMOTE_CODE = Path(__file__).resolve().parent / "_shared" / "no_remote_code.py"
#: the keys of tuneforge's ExportConfig (n_params_estimate and flavor_reason are on record only)
KNOWN_KEYS = {"model", "adapter", "base_model", "push_to_hub", "hub_private", "name", "quants", "system_prompt",
              "modelfile", "readme", "toolchain", "verify", "timeout_seconds", "source_job", "n_params_estimate",
              "flavor_reason"}


class Steps:
    def __init__(self, total: int):
        self.total, self.done, self.started = total, 0, time.time()

    def __call__(self, message: str) -> None:
        self.done += 1
        emit("status", message=message)
        emit("progress", step=min(self.done, self.total), total_steps=self.total, message=message,
             time=round(time.time() - self.started, 1))


def run(cmd: list[str], log: Path, what: str, env: dict[str, str] | None = None) -> dict:
    """Run a command, its output appended to the log; the last stdout line parsed as JSON when it is."""
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        fh.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        err = next((ln for ln in reversed(lines) if ln.startswith("ERROR")), lines[-1] if lines else "no output")
        print(proc.stderr[-4000:], file=sys.stderr, flush=True)
        fail(f"{what} failed: {err.removeprefix('ERROR:').strip()}")
    last = (proc.stdout.strip().splitlines() or ["{}"])[-1]
    try:
        return json.loads(last)
    except ValueError:
        return {}


# ---- the pinned llama.cpp ----------------------------------------------------------------------------
def toolchain(tc_cfg: dict, work: Path, log: Path) -> tuple[Path, Path, str]:
    """(site dir with llama_cpp + gguf, converter script, llama.cpp commit)."""
    given = os.environ.get("TUNEFORGE_LLAMA_CPP_TOOLCHAIN")
    if given:
        root = Path(given)
        stamp = root / "toolchain.json"
        commit = json.loads(stamp.read_text())["commit"] if stamp.is_file() else tc_cfg["llama_cpp_commit"]
        if not commit.startswith(tc_cfg["llama_cpp_commit"]):
            fail(f"the toolchain in {root} is llama.cpp {commit}, not the pinned {tc_cfg['llama_cpp_commit']}")
        return root / "site", root / "llama.cpp" / "convert_hf_to_gguf.py", commit
    version = tc_cfg["llama_cpp_python"]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    download, src_root, wheels, site = work / "download", work / "src", work / "wheels", work / "site"
    run(pip + ["download", f"llama-cpp-python=={version}", "--no-binary", "llama-cpp-python", "--no-deps", "-d", str(download)],
        log, f"downloading llama-cpp-python {version}")
    (sdist,) = sorted(download.glob(f"llama_cpp_python-{version}.tar.gz"))
    with tarfile.open(sdist) as tar:
        tar.extractall(src_root, filter="data")
    (src,) = [p for p in src_root.iterdir() if p.is_dir()]
    vendor = src / "vendor" / "llama.cpp"
    out = subprocess.run(["git", "-C", str(vendor), "rev-parse", "HEAD"], capture_output=True, text=True) if shutil.which("git") else None
    commit = out.stdout.strip() if out is not None and out.returncode == 0 and out.stdout.strip() else tc_cfg["llama_cpp_commit"]
    if not commit.startswith(tc_cfg["llama_cpp_commit"]):
        fail(f"llama-cpp-python {version} bundles llama.cpp {commit}, expected {tc_cfg['llama_cpp_commit']}")
    env = dict(os.environ, CMAKE_ARGS=tc_cfg["cmake_args"], CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
    run(pip + ["wheel", "--no-deps", "-w", str(wheels), str(src)], log, "building llama.cpp", env=env)
    run(pip + ["wheel", "--no-deps", "-w", str(wheels), str(vendor / "gguf-py")], log, "building gguf-py")
    run(pip + ["install", "--no-deps", "--no-compile", "--target", str(site), *map(str, sorted(wheels.glob("*.whl")))],
        log, "installing the llama.cpp wheels")
    # gguf-py's own requirements that this environment lacks (numpy, pyyaml, tqdm...): into site/ too
    missing = []
    for meta in site.glob("*.dist-info/METADATA"):
        for line in meta.read_text(errors="replace").splitlines():
            if line.startswith("Requires-Dist:") and ";" not in line:
                spec = line.split(":", 1)[1].strip()
                name = re.split(r"[\s<>=!~\[(]", spec, maxsplit=1)[0]
                try:
                    __import__("importlib.metadata").metadata.version(name)
                except Exception:  # noqa: BLE001  not installed
                    if not name.startswith(("llama", "gguf")):
                        missing.append(spec)
    if missing:
        run(pip + ["install", "--no-compile", "--target", str(site), *sorted(set(missing))], log, "installing gguf-py's requirements")
    return site, vendor / "convert_hf_to_gguf.py", commit


def llama_env(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


# ---- the model ------------------------------------------------------------------------------------------
def download(repo_id: str, dest: Path, what: str, trust: bool) -> Path:
    """The repo's model files (its Python files too when trusted), refused when it ships code that is not trusted."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS + (CODE_PATTERNS if trust else []),
                                        local_dir=str(dest)))
    except Exception as exc:  # noqa: BLE001  any Hub failure ends the job with a readable line
        fail(f"could not download the {what} {repo_id}: {type(exc).__name__}: {exc}")
        raise AssertionError from None
    found = remote_code_findings(folder)
    if found and not trust:
        fail(f"the {what} {repo_id} ships its own code ({', '.join(found)}) and this job was not started with "
             "--trust-remote-code; export it again with --trust-remote-code only if you trust that code")
    return folder


def memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def count_params(model_dir: Path) -> int:
    import struct

    total = 0
    for f in model_dir.glob("*.safetensors"):
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for key, info in header.items():
            if key != "__metadata__":
                size = 1
                for d in info.get("shape") or [1]:
                    size *= d
                total += size
    return total


# ---- the model card ------------------------------------------------------------------------------------
def card_rows(files: list[dict]) -> list[str]:
    rows = []
    for f in files:
        c = f["checks"]
        bits = []
        if c.get("max_abs_logit_diff") is not None:
            bits.append(f"max |logit diff| vs transformers {c['max_abs_logit_diff']:.3f}")
        if c.get("top1_agreement") is not None:
            bits.append(f"top-1 agreement {c['top1_agreement']:.1%}")
        if c.get("greedy_match_f16") is not None:
            bits.append(f"greedy answers equal to f16 {c['greedy_match_f16']:.0%}")
        if c.get("agreement") is not None:
            bits.append(f"greedy answers agree with {c['agreement_with']} on {c['agreement']:.0%} of prompts (gate {c['min_agreement']:.0%})")
        rows.append(f"| {Path(f['path']).name} | {f['quant'].upper()} | {f['bytes'] / 2**20:.1f} MiB | {'; '.join(bits) or 'loaded'} |")
    return rows


def readme_with_files(readme: str, files: list[dict]) -> str:
    """The card tuneforge rendered, its file table filled with the real sizes and checks."""
    lines = readme.split("\n")
    try:
        start = lines.index("|---|---|---|---|") + 1
    except ValueError:
        return readme
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join(lines[:start] + card_rows(files) + lines[end:])


# ---- main ---------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--hf-worker", required=True, help="tuneforge's hf_worker.py (merge, reference logits)")
    parser.add_argument("--llama-worker", required=True, help="tuneforge's llama_worker.py (quantize, verify)")
    parser.add_argument("--out", default="gguf", help="output folder (default ./gguf)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="the user trusts the model's own code (set by tuneforge from their flag, never from the config)")
    parser.add_argument("--min-agreement", action="append", default=[], metavar="TYPE=SHARE",
                        help="the agreement gate's threshold for a file type (default: _shared/gguf_checks.py MIN_AGREEMENT)")
    args = parser.parse_args(argv)
    min_agreement = {}
    for item in args.min_agreement:
        name, _, share = item.partition("=")
        try:
            min_agreement[name.strip().lower()] = float(share)
        except ValueError:
            fail(f"--min-agreement {item!r} is not TYPE=SHARE")
    cfg = json.loads(Path(args.config).read_text(encoding="utf-8"))
    unknown = sorted(set(cfg) - KNOWN_KEYS)
    if unknown:
        fail(f"unknown config keys: {', '.join(unknown)}")
    started = time.time()
    out = Path(args.out).resolve()
    work = out / ".work"
    work.mkdir(parents=True, exist_ok=True)
    log = out / "export.log"
    quants = cfg["quants"]
    floats = [q for q in quants if q["converted"] and q["name"] != "f16"]
    quantized = [q for q in quants if not q["converted"]]
    step = Steps(2 + int(cfg["adapter"]) + 1 + 2 + 2 * len(floats) + 2 * len(quantized) + 1 + 1)
    threads = str(os.cpu_count() or 2)

    step(f"Installing the pinned llama.cpp (llama-cpp-python {cfg['toolchain']['llama_cpp_python']})")
    site, convert, commit = toolchain(cfg["toolchain"], work / "toolchain", log)
    env = llama_env(site)

    trust = args.trust_remote_code
    guard = [] if trust else [str(NO_REMOTE_CODE)]  # before each worker and the converter
    trust_arg = ["--trust-remote-code"] if trust else []

    step(f"Downloading {cfg['model']}")
    source = download(cfg["model"], work / "source", "model", trust)
    model_dir = stage_model_folder(source, work / "model", trust_remote_code=trust)
    if cfg["adapter"]:
        base = download(cfg["base_model"], work / "base", "base model", trust)
        step(f"Merging the LoRA adapter into {cfg['base_model']}")
        adapter_dir, merged = model_dir, work / "merged"
        n = count_params(base)
        avail = memory_bytes()
        dtype = "float32" if avail is None or n * 4 < 0.6 * avail else "auto"
        run([sys.executable, *guard, args.hf_worker, "merge", "--adapter", str(adapter_dir), "--base",
             str(stage_model_folder(base, work / "base-model", trust_remote_code=trust)), "--out", str(merged),
             "--dtype", dtype, *trust_arg], log, "merging the adapter")
        model_dir = stage_model_folder(merged, work / "merged-model", trust_remote_code=trust)

    step("Computing reference logits with transformers")
    n, avail = count_params(model_dir), memory_bytes()
    dtype = "float32"
    if avail is not None and n * 4 > 0.6 * avail:
        dtype = "bfloat16" if n * 2 <= 0.6 * avail else "none"
    prompts = work / "prompts.json"
    prompts.write_text(json.dumps(cfg["verify"]["prompts"]), encoding="utf-8")
    reference = work / "reference.npz"
    ref_cmd = [sys.executable, *guard, args.hf_worker, "reference", "--threads", threads, "--model", str(model_dir), "--prompts",
               str(prompts), "--out", str(reference), "--max-new", str(cfg["verify"]["max_new_tokens"]), "--dtype", dtype, *trust_arg]
    if cfg.get("system_prompt"):
        ref_cmd.append(f"--system={cfg['system_prompt']}")
    run(ref_cmd, log, "computing reference logits")
    meta = json.loads(reference.with_suffix(".json").read_text(encoding="utf-8"))
    prompt_source = "built-in" if cfg["verify"]["prompts"] == PROMPTS else "job eval_prompts"

    def verify(path: Path, quant: dict, f16_result: Path | None) -> tuple[dict, Path]:
        result = work / f"verify-{quant['name']}.json"
        cmd = [sys.executable, *guard, args.llama_worker, "--threads", threads, "verify", "--gguf", str(path), "--reference", str(reference),
               "--out", str(result)] + (["--f16", str(f16_result)] if f16_result else [])
        t = time.time()
        run(cmd, log, f"checking {path.name} with llama.cpp", env=env)
        data = json.loads(result.read_text(encoding="utf-8"))
        return summarise(data, meta, quant=quant["name"], converted=quant["converted"], seconds=time.time() - t,
                         tolerance=cfg["verify"]["logit_tolerance"], min_agreement=min_agreement,
                         prompt_source=prompt_source), result

    def convert_to(path: Path, outtype: str) -> None:
        run([sys.executable, *guard, str(convert), str(model_dir), "--outtype", outtype, "--outfile", str(path)], log,
            f"converting to {outtype} (llama.cpp convert_hf_to_gguf.py)", env=env)

    stem = cfg["name"]
    files: dict[str, dict] = {}
    f16 = {"name": "f16", "tag": "F16", "converted": True}
    f16_path = out / f"{stem}-F16.gguf"
    step("Converting to GGUF f16 with llama.cpp's converter")
    t = time.time()
    convert_to(f16_path, "f16")
    made = time.time() - t
    step("Verifying the f16 file against transformers")
    checks, f16_result = verify(f16_path, f16, None)
    files["f16"] = {"quant": "f16", "path": str(f16_path), "bytes": f16_path.stat().st_size, "checks": checks,
                    "seconds": round(made + checks["verify_seconds"], 2)}
    for q in floats:
        step(f"Converting to GGUF {q['name']}")
        path, t = out / f"{stem}-{q['tag']}.gguf", time.time()
        convert_to(path, q["name"])
        made = time.time() - t
        step(f"Verifying {q['name']}")
        checks, _ = verify(path, q, None)
        files[q["name"]] = {"quant": q["name"], "path": str(path), "bytes": path.stat().st_size, "checks": checks,
                            "seconds": round(made + checks["verify_seconds"], 2)}
    for q in quantized:
        step(f"Quantizing to {q['name']} with llama.cpp's quantizer")
        path, t = out / f"{stem}-{q['tag']}.gguf", time.time()
        run([sys.executable, *guard, args.llama_worker, "--threads", threads, "quantize", "--in", str(f16_path), "--out", str(path),
             "--ftype", q["ftype"]], log, f"quantizing to {q['name']}", env=env)
        made = time.time() - t
        step(f"Verifying {q['name']}")
        checks, _ = verify(path, q, f16_result)
        files[q["name"]] = {"quant": q["name"], "path": str(path), "bytes": path.stat().st_size, "checks": checks,
                            "seconds": round(made + checks["verify_seconds"], 2)}
    ordered = [files[q["name"]] for q in quants]
    reference_file = None
    if "f16" not in [q["name"] for q in quants]:
        reference_file = files["f16"]
        f16_path.unlink(missing_ok=True)
    failed = [f for f in ordered + ([reference_file] if reference_file else []) if not f["checks"]["passed"]]

    step("Writing the Ollama Modelfile and the model card")
    (out / "Modelfile").write_text(cfg["modelfile"], encoding="utf-8")
    (out / "README.md").write_text(readme_with_files(cfg["readme"], ordered), encoding="utf-8")
    report = {
        "files": ordered, "modelfile": str(out / "Modelfile"), "passed": not failed, "out_dir": str(out),
        "reference": reference_file, "pushed_to": None, "url": None,
        "toolchain": {"llama_cpp_python": cfg["toolchain"]["llama_cpp_python"], "llama_cpp_commit": commit},
        "notes": [f"{Path(f['path']).name}: verification failed ({f['checks'].get('failed_because')})." for f in failed],
    }
    if failed:
        report["seconds"] = round(time.time() - started, 2)
        (out / "gguf-report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        emit("result", **report)
        fail(f"gguf.verify_failed: not pushing to {cfg['push_to_hub']}: {' '.join(report['notes'])}")

    step(f"Pushing to the Hub: {cfg['push_to_hub']}")
    from huggingface_hub import HfApi, constants

    names = [Path(f["path"]).name for f in ordered]
    api = HfApi()
    try:
        api.create_repo(cfg["push_to_hub"], repo_type="model", exist_ok=True, private=cfg.get("hub_private"))
        api.upload_folder(repo_id=cfg["push_to_hub"], folder_path=str(out), allow_patterns=[*names, "Modelfile", "README.md"],
                          commit_message="GGUF export by tuneforge")
    except Exception as exc:  # noqa: BLE001
        fail(f"pushing to {cfg['push_to_hub']} failed: {type(exc).__name__}")
    report["pushed_to"] = cfg["push_to_hub"]
    report["url"] = f"{constants.ENDPOINT.rstrip('/')}/{cfg['push_to_hub']}"
    report["pushed_files"] = [*names, "Modelfile", "README.md"]
    shutil.rmtree(work, ignore_errors=True)
    report["seconds"] = round(time.time() - started, 2)
    (out / "gguf-report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    emit("result", **report)
    emit("status", message=f"pushed {len(names)} GGUF file(s) to {cfg['push_to_hub']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
