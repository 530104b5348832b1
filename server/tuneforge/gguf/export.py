"""GGUF export: merge (adapters), convert, quantize, verify every file, write the Modelfile, push.

The heavy parts run in subprocesses: `hf_worker.py` (transformers/peft: merge, reference logits) with
this interpreter, and `llama_worker.py` plus llama.cpp's `convert_hf_to_gguf.py` with the pinned
toolchain on PYTHONPATH. This process only orchestrates, so the MCP server that calls it never loads
torch or llama.cpp. `run_export(source, ...)` is the part a job script calls once paths are known.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..errors import TuneforgeError
from ..paths import home
from . import modelfile as mf
from . import source as src
from . import toolchain as tcm
from .quants import MODELFILE_PREFERENCE, QUANTS, QuantType, estimate_bytes, parse_quants
from ..reports.gguf import GGUFFile, GGUFReport

Progress = Callable[[int, int, str], None]

HERE = Path(__file__).resolve().parent
HF_WORKER = HERE / "hf_worker.py"
LLAMA_WORKER = HERE / "llama_worker.py"

#: chat prompts every file is checked on (short, so verification stays cheap)
PROMPTS = [
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "List three prime numbers.",
    "How do I boil an egg?",
]
MAX_NEW_TOKENS = 16
#: max |logit difference| against transformers for unquantized files (f16 on SmolLM2: ~0.04)
LOGIT_TOLERANCE = {"f32": 0.05, "f16": 0.25, "bf16": 1.0}
#: keep this much disk free beyond the estimated need (bytes); $TUNEFORGE_GGUF_MIN_FREE_BYTES overrides
MIN_FREE_BYTES = 256 * 2**20
LOG_NAME = "export.log"


def export_gguf(model: str | None = None, *, quants: list[str] | str | None = None, out: str | None = None,
                base: str | None = None, job_id: str | None = None, push_to: str | None = None,
                system_prompt: str | None = None, progress: Progress | None = None,
                private: bool | None = None) -> GGUFReport:
    """Export MODEL (a model folder, LoRA adapter, Hub id) or a finished job's model to verified GGUF files."""
    quant_types = parse_quants(quants)
    _check_training_stack()
    if push_to:
        from .hub import check_can_push

        check_can_push(push_to)
    source = src.resolve(model, base=base, job_id=job_id, system_prompt=system_prompt)
    out_dir = (Path(out).expanduser() if out else _default_out(source, job_id)).resolve()
    return run_export(source, quant_types, out_dir, push_to=push_to, progress=progress, private=private)


def _check_training_stack() -> None:
    """Merging, reference logits and llama.cpp's converter all need torch, transformers (and peft)."""
    from importlib.util import find_spec

    from ..errors import MissingDependency

    for package in ("torch", "transformers", "peft", "numpy"):
        if find_spec(package) is None:
            raise MissingDependency(package, "train")


def worker_threads() -> int:
    """Threads for llama.cpp and torch: the idle cores, at least one ($TUNEFORGE_GGUF_THREADS overrides).

    llama.cpp's threads spin while they wait for each other: on a busy machine two threads on two
    cores shared with other work ran a 37-token prompt 20x slower than one thread (9 s vs 0.44 s).
    """
    env = os.environ.get("TUNEFORGE_GGUF_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cpus, int(cpus - busy + 0.5)))


def _default_out(source: src.Source, job_id: str | None) -> Path:
    if job_id:
        from ..jobs.service import JobService

        outputs = JobService().store.get(job_id).outputs
        if outputs.get("output_dir"):
            return Path(outputs["output_dir"]) / "gguf"
    return home() / "gguf" / source.name


class _Steps:
    """Progress reporting: step i of n, with a message."""

    def __init__(self, total: int, progress: Progress | None):
        self.total, self.done, self.progress = total, 0, progress

    def __call__(self, message: str) -> None:
        self.done += 1
        if self.progress:
            self.progress(min(self.done, self.total), self.total, message)


def run_export(source: src.Source, quant_types: list[QuantType], out_dir: Path, *, push_to: str | None = None,
               progress: Progress | None = None, private: bool | None = None) -> GGUFReport:
    started = time.time()
    has_tc = tcm.installed() is not None
    needs_merge = source.kind == "adapter"
    floats = [q for q in quant_types if q.converted and q.name != "f16"]
    quantized = [q for q in quant_types if not q.converted]
    total = (0 if has_tc else 1) + 1 + int(needs_merge) + 1 + 2 + 2 * len(floats) + 2 * len(quantized) + 1 + int(bool(push_to))
    step = _Steps(total, progress)

    out_dir.mkdir(parents=True, exist_ok=True)
    check_disk_space(out_dir, source, quant_types)
    if not has_tc:
        step("Building the llama.cpp toolchain (once per machine, 8-16 minutes)")
    tc = tcm.ensure()
    arch_dir = source.base_path if source.kind == "adapter" else source.path
    src.check_architecture(source.architecture, str(arch_dir), Path(tc.llama_cpp_dir), tc.commit)
    step("Checked inputs, disk space and toolchain")

    log = out_dir / LOG_NAME
    log.write_text(f"tuneforge {__version__} GGUF export of {source.path} ({source.kind})\n", encoding="utf-8")
    work = out_dir / f".tuneforge-work-{os.getpid()}"
    work.mkdir(exist_ok=True)
    steps: dict[str, float] = {}
    notes: list[str] = []
    try:
        model_dir = Path(source.path)
        if needs_merge:
            step(f"Merging the LoRA adapter into {source.base_model}")
            t = time.time()
            model_dir = work / "merged"
            avail = _available_memory()
            merge_dtype = "float32" if avail is None or (source.n_params or 0) * 4 < 0.6 * avail else "auto"
            merged = _run_worker([str(HF_WORKER), "merge", "--adapter", source.path, "--base", str(source.base_path),
                                  "--out", str(model_dir), "--dtype", merge_dtype],
                                 log, what="merging the adapter into its base model")
            notes.append(f"LoRA adapter merged into {source.base_model} in {merged.get('merged_in')}, "
                         f"saved in {merged.get('dtype')} before conversion.")
            steps["merge"] = round(time.time() - t, 2)

        step("Computing reference logits with transformers")
        t = time.time()
        reference = _reference(model_dir, work, source, log, notes)
        steps["reference"] = round(time.time() - t, 2)

        fmt = mf.chat_format(model_dir)
        if fmt.note:
            notes.append(fmt.note)

        stem = source.name
        f16_path = out_dir / f"{stem}-F16.gguf"
        step("Converting to GGUF f16 with llama.cpp's converter")
        t = time.time()
        _convert(tc, model_dir, f16_path, "f16", log)
        made = time.time() - t
        steps["convert"] = round(made, 2)
        step("Verifying the f16 file against transformers")
        f16_checks, f16_verify = _verify(tc, f16_path, reference, None, work, log, QUANTS["f16"])
        f16_file = GGUFFile(quant="f16", path=str(f16_path), bytes=f16_path.stat().st_size, checks=f16_checks,
                            seconds=round(made + f16_checks["verify_seconds"], 2))
        keep_f16 = any(q.name == "f16" for q in quant_types)
        by_name: dict[str, GGUFFile] = {"f16": f16_file}

        for q in floats:
            step(f"Converting to GGUF {q.name}")
            t = time.time()
            path = out_dir / f"{stem}-{q.tag}.gguf"
            _convert(tc, model_dir, path, q.name, log)
            made = time.time() - t
            step(f"Verifying {q.name}")
            checks, _ = _verify(tc, path, reference, None, work, log, q)
            by_name[q.name] = GGUFFile(quant=q.name, path=str(path), bytes=path.stat().st_size, checks=checks,
                                       seconds=round(made + checks["verify_seconds"], 2))
        for q in quantized:
            step(f"Quantizing to {q.name} with llama.cpp's quantizer")
            path = out_dir / f"{stem}-{q.tag}.gguf"
            t = time.time()
            part = path.with_name(path.name + ".part")
            try:
                _run_worker([str(LLAMA_WORKER), "--threads", str(worker_threads()), "quantize", "--in", str(f16_path),
                             "--out", str(part), "--ftype", q.ftype], log, what=f"quantizing to {q.name}", env=tc.env())
            except TuneforgeError:
                part.unlink(missing_ok=True)
                raise
            if not part.is_file():
                raise TuneforgeError(f"llama.cpp's quantizer wrote no {q.name} file.", f"The full output is in {log}.")
            part.replace(path)
            made = time.time() - t
            step(f"Verifying {q.name}")
            checks, _ = _verify(tc, path, reference, f16_verify, work, log, q)
            by_name[q.name] = GGUFFile(quant=q.name, path=str(path), bytes=path.stat().st_size, checks=checks,
                                       seconds=round(made + checks["verify_seconds"], 2))
        files = [by_name[q.name] for q in quant_types]
        ref_file = None
        if not keep_f16:
            f16_path.unlink(missing_ok=True)
            ref_file = f16_file.model_copy(update={"path": f16_file.path + " (intermediate, removed)"})

        step("Writing the Ollama Modelfile")
        modelfile_path = _write_modelfile(out_dir, files, fmt, source)
        passed = all(f.checks.get("passed") for f in files) and (ref_file is None or bool(ref_file.checks.get("passed")))
        for f in files + ([ref_file] if ref_file else []):
            if not f.checks.get("passed"):
                notes.append(f"{f.quant}: verification failed ({f.checks.get('failed_because')}).")
        report = GGUFReport(
            files=files, modelfile=str(modelfile_path), seconds=0.0, passed=passed, out_dir=str(out_dir),
            source={"kind": source.kind, "path": source.path, "base_model": source.base_model, "job_id": source.job_id,
                    "architecture": source.architecture, "n_params": source.n_params},
            toolchain={"llama_cpp_python": tc.version, "llama_cpp_commit": tc.commit},
            chat_format=fmt.model_dump(exclude={"template"}) | {"system_prompt": source.system_prompt},
            reference=ref_file, notes=notes, steps=steps,
        )
        if push_to:
            if not passed:
                raise TuneforgeError(f"Not pushing to {push_to}: some files failed verification ({'; '.join(notes)}).",
                                     f"Inspect the files in {out_dir} and {log}; fix the model or drop the failing quant types.")
            step(f"Pushing to the Hub: {push_to}")
            from .hub import push

            card = mf.model_card(repo_id=push_to, base_model=source.base_model, files=[f.model_dump() for f in files], fmt=fmt,
                                 toolchain=f"llama-cpp-python {tc.version}, llama.cpp {tc.commit[:7]}",
                                 system_prompt=source.system_prompt)
            (out_dir / "README.md").write_text(card, encoding="utf-8")
            report.url = push(out_dir, push_to, [Path(f.path).name for f in files], private=private)
            report.pushed_to = push_to
        report.seconds = round(time.time() - started, 2)
        (out_dir / "gguf-report.json").write_text(report.model_dump_json(indent=2), encoding="utf-8")
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---- pre-flight -----------------------------------------------------------------------------------
def estimate_need(source: src.Source, quant_types: list[QuantType]) -> int:
    """Bytes the export writes at its peak: merged model (adapters), f16 file, every other file."""
    n = source.n_params or 0
    need = estimate_bytes(n, QUANTS["f16"])
    if source.kind == "adapter":
        need += sum(f.stat().st_size for f in Path(str(source.base_path)).glob("*.safetensors")) or n * 2
    need += sum(estimate_bytes(n, q) for q in quant_types if q.name != "f16")
    return need


def check_disk_space(out_dir: Path, source: src.Source, quant_types: list[QuantType]) -> None:
    need = estimate_need(source, quant_types)
    free = shutil.disk_usage(out_dir).free
    reserve = int(os.environ.get("TUNEFORGE_GGUF_MIN_FREE_BYTES") or MIN_FREE_BYTES)
    if free - need < reserve:
        raise TuneforgeError(
            f"Not enough disk space in {out_dir}: the export needs about {need / 2**30:.2f} GiB "
            f"(plus {reserve / 2**30:.2f} GiB kept free) and {free / 2**30:.2f} GiB is free.",
            "Free some space, pass --out on a larger disk, or ask for fewer quant types.",
            details={"needed_bytes": need, "free_bytes": free, "reserve_bytes": reserve},
        )


# ---- subprocesses ---------------------------------------------------------------------------------
def _run_worker(args: list[str], log: Path, *, what: str, env: dict[str, str] | None = None,
                cwd: str | None = None) -> dict[str, Any]:
    """Run a worker (or the converter) with this interpreter; its output goes to the log."""
    cmd = [sys.executable, *args]
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
        fh.write(proc.stdout)
        fh.write(proc.stderr)
    if proc.returncode != 0:
        raise TuneforgeError(f"GGUF export failed while {what}: {_error_line(proc.stderr)}",
                             f"The full output is in {log}.")
    last = (proc.stdout.strip().splitlines() or ["{}"])[-1]
    try:
        return json.loads(last)
    except ValueError:
        return {}


def _error_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("ERROR") or "Error" in ln.split(":")[0]:
            return ln.removeprefix("ERROR:").strip()
    return lines[-1] if lines else "no error output"


def _convert(tc: tcm.Toolchain, model_dir: Path, out: Path, outtype: str, log: Path) -> None:
    tmp = out.with_name(out.name + ".part")
    try:
        _run_worker([tc.convert_script, str(model_dir), "--outtype", outtype, "--outfile", str(tmp)], log,
                    what=f"converting to {outtype} (llama.cpp convert_hf_to_gguf.py)", env=tc.env())
    except TuneforgeError as exc:
        tmp.unlink(missing_ok=True)
        if "is not supported" in exc.message or "not supported!" in exc.message:
            raise TuneforgeError(exc.message, "GGUF export needs an architecture llama.cpp supports.") from None
        raise
    tmp.replace(out)


def _available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reference(model_dir: Path, work: Path, source: src.Source, log: Path, notes: list[str]) -> Path:
    """Reference logits and greedy answers from transformers (float32 when it fits in memory)."""
    n = source.n_params or 0
    avail = _available_memory()
    dtype = "float32"
    if avail is not None and n * 4 > 0.6 * avail:
        if n * 2 > 0.6 * avail:
            notes.append("Model too large to load in memory with transformers here: files were checked by tokenizing, "
                         "loading and generating with llama.cpp, without a logit comparison.")
            dtype = "none"
        else:
            dtype = "bfloat16"
            notes.append("Reference logits computed in bfloat16 (float32 does not fit in memory): expect larger differences.")
    prompts = work / "prompts.json"
    prompts.write_text(json.dumps(PROMPTS), encoding="utf-8")
    out = work / "reference.npz"
    args = [str(HF_WORKER), "reference", "--threads", str(worker_threads()), "--model", str(model_dir), "--prompts", str(prompts), "--out", str(out),
            "--max-new", str(MAX_NEW_TOKENS), "--dtype", dtype]
    if source.system_prompt:
        args.append(f"--system={source.system_prompt}")  # one token, even when the text starts with "-"
    _run_worker(args, log, what="computing reference logits with transformers")
    return out


def _verify(tc: tcm.Toolchain, gguf: Path, reference: Path, f16_verify: Path | None, work: Path, log: Path,
            q: QuantType) -> tuple[dict[str, Any], Path]:
    """Load the file with llama.cpp, compare with transformers (and the f16 file), summarise the figures."""
    result = work / f"verify-{q.name}.json"
    args = [str(LLAMA_WORKER), "--threads", str(worker_threads()), "verify", "--gguf", str(gguf), "--reference", str(reference), "--out", str(result)]
    if f16_verify is not None:
        args += ["--f16", str(f16_verify)]
    t = time.time()
    _run_worker(args, log, what=f"loading and checking {gguf.name} with llama.cpp", env=tc.env())
    seconds = time.time() - t
    data = json.loads(result.read_text(encoding="utf-8"))
    return summarise(data, q, seconds, reference), result


def summarise(data: dict[str, Any], q: QuantType, seconds: float, reference: Path) -> dict[str, Any]:
    """The figures a report shows for one file, and whether it passed."""
    items = data["items"]
    meta = json.loads(reference.with_suffix(".json").read_text(encoding="utf-8"))
    n = len(items)
    generated = sum(len(it["continuation"]) for it in items)
    has_logits = all("max_abs_logit_diff" in it for it in items)
    checks: dict[str, Any] = {
        "loaded": True,
        "load_seconds": data["load_seconds"],
        "prompts": n,
        "tokenizer_match": sum(it["tokenizer_match"] for it in items) / n,
        "finite_logits": all(it["finite"] for it in items),
        "generated_tokens": generated,
        "chat_template_in_gguf": data["chat_template_in_gguf"],
        "reference_dtype": meta.get("dtype"),
        "sample": {"prompt": meta["items"][0]["prompt"], "answer": items[0]["answer"],
                   "transformers_answer": meta["items"][0]["answer"]},
        "verify_seconds": round(seconds, 2),
    }
    if has_logits:
        positions = sum(it["positions"] for it in items)
        checks["max_abs_logit_diff"] = round(max(it["max_abs_logit_diff"] for it in items), 5)
        checks["mean_abs_logit_diff"] = round(sum(it["mean_abs_logit_diff"] * it["positions"] for it in items) / positions, 5)
        checks["top1_agreement"] = round(sum(it["top1_agree"] for it in items) / positions, 4)
        checks["greedy_match_transformers"] = sum(it["greedy_match_transformers"] for it in items) / n
    if "greedy_match_f16" in items[0]:
        checks["greedy_match_f16"] = sum(it["greedy_match_f16"] for it in items) / n
    failed: list[str] = []
    if not checks["finite_logits"]:
        failed.append("non-finite logits (NaN or inf)")
    if q.converted:
        if checks["tokenizer_match"] < 1.0:
            failed.append("llama.cpp tokenizes the chat prompts differently from transformers")
        if has_logits:
            tol = LOGIT_TOLERANCE[q.name] * (4 if meta.get("dtype") != "float32" else 1)
            checks["tolerance"] = tol
            if checks["max_abs_logit_diff"] > tol:
                failed.append(f"max |logit diff| {checks['max_abs_logit_diff']:.4f} > {tol}")
            if checks["top1_agreement"] < 0.9:
                failed.append(f"top-1 agreement {checks['top1_agreement']:.1%} < 90%")
    if generated == 0:
        failed.append("generated no token for any prompt")
    checks["passed"] = not failed
    if failed:
        checks["failed_because"] = "; ".join(failed)
    return checks


def _write_modelfile(out_dir: Path, files: list[GGUFFile], fmt: mf.ChatFormat, source: src.Source) -> Path:
    by_quant = {f.quant: f for f in files}
    pick = next((by_quant[q] for q in MODELFILE_PREFERENCE if q in by_quant), files[0])
    others = [Path(f.path).name for f in files if f is not pick]
    text = mf.modelfile_text(Path(pick.path).name, fmt, system_prompt=source.system_prompt, others=others,
                             model_name=source.name.lower(), header=f"Ollama Modelfile written by tuneforge {__version__} for {source.name}")
    path = out_dir / "Modelfile"
    path.write_text(text, encoding="utf-8")
    return path
