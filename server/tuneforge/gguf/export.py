"""The GGUF export pipeline: merge (adapters), convert, quantize, verify every file, write the Modelfile, push.

The heavy parts run in subprocesses (see workers.py), so this process only orchestrates and the MCP
server that calls it never loads torch or llama.cpp. `run_export(source, ...)` is the pipeline once
the source is resolved; the export action (tuneforge.actions.export) checks the inputs (a model that
needs its own code is refused there, see remote_code.py) and calls it.

Every step reads a staged copy of the model folder in the work folder, never the folder itself:
without `trust_remote_code` only its config, tokenizer and weight files, without `auto_map` (the
rule is templates/_shared/model_files.py), so the converter and transformers cannot find the
model's code even where detection missed it.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from .. import __version__
from ..errors import MissingDependency, TuneforgeError
from ..reports.gguf import GGUFFile, GGUFReport
from ..templates._shared.gguf_checks import eval_prompts
from ..templates._shared.model_files import stage_model_folder
from . import mmproj as mm
from . import modelfile as mf
from . import source as src
from . import toolchain as tcm
from . import workers
from .quants import MODELFILE_PREFERENCE, QUANTS, QuantType, estimate_bytes

Progress = Callable[[int, int, str], None]

#: keep this much disk free beyond the estimated need (bytes); $TUNEFORGE_GGUF_MIN_FREE_BYTES overrides
MIN_FREE_BYTES = 256 * 2**20
LOG_NAME = "export.log"


class VerifyFailed(TuneforgeError):
    """Files failed verification (the agreement gate, or the f16 file's checks against transformers): nothing was
    pushed. The message names each file and its figure; `report` (also in details and gguf-report.json) has them all."""

    exit_code = 1
    default_code = "gguf.verify_failed"

    def __init__(self, message: str, fix: str, report: GGUFReport, failed: list[dict]):
        super().__init__(message, fix, code="gguf.verify_failed",
                         details={"failed": failed, "report": report.model_dump(mode="json")})
        self.report = report


def check_training_stack() -> None:
    """Merging, reference logits and llama.cpp's converter all need torch, transformers (and peft)."""
    from importlib.util import find_spec

    for package in ("torch", "transformers", "peft", "numpy"):
        if find_spec(package) is None:
            raise MissingDependency(package, "train")


class Steps:
    """Progress reporting: step i of n, with a message."""

    def __init__(self, total: int, progress: Progress | None):
        self.total, self.done, self.progress = total, 0, progress

    def __call__(self, message: str) -> None:
        self.done += 1
        if self.progress:
            self.progress(min(self.done, self.total), self.total, message)


def run_export(source: src.Source, quant_types: list[QuantType], out_dir: Path, *, push_to: str | None = None,
               progress: Progress | None = None, private: bool | None = None, trust_remote_code: bool = False,
               min_agreement: dict[str, float] | None = None, fallback: list[QuantType] | None = None) -> GGUFReport:
    """The export of a resolved source; raises VerifyFailed (after writing gguf-report.json) when a file fails.

    `fallback`: types tried in order, only when a requested type fails the agreement gate (and the f16 file passed
    its own checks): the first that passes stands in for the failed ones, which stay on disk for inspection, listed
    in `report.rejected`, out of the Modelfile and the push."""
    started = time.time()
    has_tc = tcm.installed() is not None
    needs_merge = source.kind == "adapter"
    floats = [q for q in quant_types if q.converted and q.name != "f16"]
    quantized = [q for q in quant_types if not q.converted]
    total = (0 if has_tc else 1) + 1 + int(needs_merge) + 1 + 2 + 2 * len(floats) + 2 * len(quantized) + 1 + int(bool(push_to))
    step = Steps(total, progress)

    out_dir.mkdir(parents=True, exist_ok=True)
    check_disk_space(out_dir, source, quant_types)
    if not has_tc:
        step("Building the llama.cpp toolchain (once per machine, 5-15 minutes)")
    tc = tcm.ensure()
    arch_dir = source.base_path if source.kind == "adapter" else source.path
    vlm = mm.is_vlm_dir(Path(str(arch_dir)))  # the converter reads a VLM's language model by its text_config's name
    src.check_architecture(mm.text_architecture(Path(str(arch_dir))) if vlm else source.architecture, str(arch_dir),
                           Path(tc.llama_cpp_dir), tc.commit)
    step("Checked inputs, disk space and toolchain")

    log = out_dir / LOG_NAME
    log.write_text(f"tuneforge {__version__} GGUF export of {source.path} ({source.kind})\n", encoding="utf-8")
    work = out_dir / f".tuneforge-work-{os.getpid()}"
    work.mkdir(exist_ok=True)
    steps: dict[str, float] = {}
    notes: list[str] = []
    trust = trust_remote_code
    try:
        if vlm:  # a vision-language model: its GGUF and the mmproj GGUF (mmproj.py)
            report = mm.run_vlm_export(source, quant_types, out_dir, tc=tc, log=log, work=work, step=step)
            (out_dir / "gguf-report.json").write_text(report.model_dump_json(indent=2), encoding="utf-8")
            if not report.passed:
                raise verify_failed(report, None, push_to, log)
            if push_to:
                report.notes.append(f"Not pushed to {push_to}: pushing a vision-language GGUF pair is not supported yet.")
            return report
        model_dir = stage_model_folder(Path(source.path), work / "model", trust_remote_code=trust)
        if needs_merge:
            step(f"Merging the LoRA adapter into {source.base_model}")
            t = time.time()
            adapter_dir, merged_dir = model_dir, work / "merged"
            base_dir = stage_model_folder(Path(str(source.base_path)), work / "base", trust_remote_code=trust)
            avail = workers.available_memory()
            merge_dtype = "float32" if avail is None or (source.n_params or 0) * 4 < 0.6 * avail else "auto"
            merged = workers.run_worker([str(workers.HF_WORKER), "merge", "--adapter", str(adapter_dir), "--base", str(base_dir),
                                         "--out", str(merged_dir), "--dtype", merge_dtype, *(["--trust-remote-code"] if trust else [])],
                                        log, what="merging the adapter into its base model", code="gguf.merge_failed",
                                        trust_remote_code=trust)
            model_dir = stage_model_folder(merged_dir, work / "merged-model", trust_remote_code=trust)
            notes.append(f"LoRA adapter merged into {source.base_model} in {merged.get('merged_in')}, "
                         f"saved in {merged.get('dtype')} before conversion.")
            steps["merge"] = round(time.time() - t, 2)

        step("Computing reference logits with transformers")
        t = time.time()
        prompts, prompt_source = eval_prompts(source.eval_prompts)
        reference = workers.reference(model_dir, work, source.n_params or 0, source.system_prompt, log, notes,
                                      trust_remote_code=trust, prompts_list=prompts)
        gate = {"min_agreement": min_agreement, "prompt_source": prompt_source}
        steps["reference"] = round(time.time() - t, 2)

        fmt = mf.chat_format(model_dir)
        if fmt.note:
            notes.append(fmt.note)

        stem = source.name
        f16_path = out_dir / f"{stem}-F16.gguf"
        step("Converting to GGUF f16 with llama.cpp's converter")
        t = time.time()
        workers.convert(tc, model_dir, f16_path, "f16", log, trust_remote_code=trust)
        made = time.time() - t
        steps["convert"] = round(made, 2)
        step("Verifying the f16 file against transformers")
        f16_checks, f16_verify = workers.verify(tc, f16_path, reference, None, work, log, QUANTS["f16"], **gate)
        f16_file = GGUFFile(quant="f16", path=str(f16_path), bytes=f16_path.stat().st_size, checks=f16_checks,
                            seconds=round(made + f16_checks["verify_seconds"], 2))
        by_name: dict[str, GGUFFile] = {"f16": f16_file}

        def made_file(q: QuantType) -> GGUFFile:
            """A float type converted from the model, else a type quantized from the f16 file; verified."""
            path = out_dir / f"{stem}-{q.tag}.gguf"
            t = time.time()
            if q.converted:
                step(f"Converting to GGUF {q.name}")
                workers.convert(tc, model_dir, path, q.name, log, trust_remote_code=trust)
            else:
                step(f"Quantizing to {q.name} with llama.cpp's quantizer")
                workers.quantize(tc, f16_path, path, q, log)
            made = time.time() - t
            step(f"Verifying {q.name}")
            checks, _ = workers.verify(tc, path, reference, None if q.converted else f16_verify, work, log, q, **gate)
            return GGUFFile(quant=q.name, path=str(path), bytes=path.stat().st_size, checks=checks,
                            seconds=round(made + checks["verify_seconds"], 2))

        for q in floats + quantized:
            by_name[q.name] = made_file(q)
        files = [by_name[q.name] for q in quant_types]
        rejected: list[GGUFFile] = []
        if fallback and f16_file.checks.get("passed") and not all(f.checks.get("passed") for f in files):
            for q in fallback:
                if q.name not in by_name:
                    by_name[q.name] = made_file(q)
                if by_name[q.name].checks.get("passed"):
                    rejected = [f for f in files if not f.checks.get("passed")]
                    files = [f for f in files if f.checks.get("passed")] + [by_name[q.name]]
                    notes.append(f"{', '.join(f.quant for f in rejected)} failed the agreement gate; the fallback {q.name} "
                                 f"passed and stands in ({', '.join(Path(f.path).name for f in rejected)} kept for "
                                 "inspection, not in the Modelfile, not pushed).")
                    break
                notes.append(f"fallback {q.name}: {by_name[q.name].checks.get('failed_because')}.")
        ref_file = None
        if f16_file not in files:  # neither asked for nor the fallback that stands in: an intermediate
            f16_path.unlink(missing_ok=True)
            ref_file = f16_file.model_copy(update={"path": f16_file.path + " (intermediate, removed)"})

        step("Writing the Ollama Modelfile")
        modelfile_path = write_modelfile(out_dir, files, fmt, source)
        passed = all(f.checks.get("passed") for f in files) and (ref_file is None or bool(ref_file.checks.get("passed")))
        for f in files + ([ref_file] if ref_file else []):
            if not f.checks.get("passed"):
                notes.append(f"{f.quant}: verification failed ({f.checks.get('failed_because')}).")
        report = GGUFReport(
            files=files, modelfile=str(modelfile_path), seconds=0.0, passed=passed, out_dir=str(out_dir),
            source={"kind": source.kind, "path": source.path, "base_model": source.base_model, "job_id": source.job_id,
                    "architecture": source.architecture, "n_params": source.n_params, "name": source.name,
                    "ollama_name": mf.ollama_name(source.name)},
            toolchain={"llama_cpp_python": tc.version, "llama_cpp_commit": tc.commit},
            chat_format=fmt.model_dump(exclude={"template"}) | {"system_prompt": source.system_prompt},
            reference=ref_file, notes=notes, steps=steps, rejected=rejected,
        )
        if not passed:
            report.seconds = round(time.time() - started, 2)
            (out_dir / "gguf-report.json").write_text(report.model_dump_json(indent=2), encoding="utf-8")
            raise verify_failed(report, ref_file, push_to, log)
        if push_to:
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
            code="gguf.disk_full", details={"needed_bytes": need, "free_bytes": free, "reserve_bytes": reserve},
        )


def verify_failed(report: GGUFReport, ref_file: GGUFFile | None, push_to: str | None, log: Path) -> VerifyFailed:
    """The error for a report with failed files: each file with its agreement figure and threshold."""
    failed = []
    for f in report.files + ([ref_file] if ref_file else []):
        c = f.checks
        if not c.get("passed"):
            failed.append({"file": Path(f.path).name, "quant": f.quant, "agreement": c.get("agreement"),
                           "min_agreement": c.get("min_agreement"), "agreement_with": c.get("agreement_with"),
                           "top1_agreement": c.get("top1_agreement"), "failed_because": c.get("failed_because")})
    what = "; ".join(f"{x['file']}: {x['failed_because']}" for x in failed)
    low = [x for x in failed if x["agreement"] is not None and x["min_agreement"] is not None and x["agreement"] < x["min_agreement"]]
    fix = f"Compare the answers in {report.out_dir}/gguf-report.json (and {log})."
    if low:
        fix += (" A file that does not match its model (wrong conversion, wrong model) must not be used; if its answers are "
                f"acceptable, lower the bar with --min-agreement {low[0]['quant']}={math.floor(low[0]['agreement'] * 100) / 100:.2f}, "
                "or export a type with more bits (q5_k_m, q8_0, f16).")
    where = f"nothing was pushed to {push_to}" if push_to else f"the files stay in {report.out_dir} for inspection"
    return VerifyFailed(f"GGUF verification failed ({where}): {what}.", fix, report, failed)


def write_modelfile(out_dir: Path, files: list[GGUFFile], fmt: mf.ChatFormat, source: src.Source) -> Path:
    by_quant = {f.quant: f for f in files}
    pick = next((by_quant[q] for q in MODELFILE_PREFERENCE if q in by_quant), files[0])
    others = [Path(f.path).name for f in files if f is not pick]
    text = mf.modelfile_text(Path(pick.path).name, fmt, system_prompt=source.system_prompt, others=others,
                             model_name=mf.ollama_name(source.name), trained=source.job_id is not None,
                             header=f"Ollama Modelfile written by tuneforge {__version__} for {source.name}")
    path = out_dir / "Modelfile"
    path.write_text(text, encoding="utf-8")
    return path
