"""GGUF export of a vision-language model: the language model's GGUF plus the `mmproj` GGUF, both verified.

llama.cpp runs a VLM as two files: the language model (convert_hf_to_gguf.py, then quantized like any
model) and the multimodal projector with the vision tower (`convert_hf_to_gguf.py --mmproj`, kept f16:
llama.cpp's own advice, the projector is small and sensitive). `run_vlm_export` makes both from a model
folder or a LoRA adapter (merged with its base by vlm_worker.py) and checks them (vlm_worker.py check):
- the language model against transformers on the same text-only token ids (f16: max abs logit difference
  and top-1 agreement; a quantized file: loads and generates);
- the mmproj file read with gguf-py: a vision encoder and projector type, and its tensors' elements equal
  to the HF model's vision tower plus projector, so no weight was dropped;
- the pair asked about two images through libmtmd (llama.cpp's multimodal library, built into the pinned
  toolchain; what llama-mtmd-cli and llama-server --mmproj run): the prompt must take as many positions
  as transformers' processor gives it, the answer's logits must match transformers' (f16), and the two
  images must move them more than the two runtimes differ (`image_verdict`).

Ollama: the Modelfile names both files (`FROM model.gguf` then `FROM mmproj.gguf`). Ollama's own engine
runs vision only for the families it reimplemented (Gemma 3, Qwen2.5-VL, Llama 3.2 Vision, Mistral 3...)
and from its own converted models; a separate mmproj GGUF is read by its legacy llama.cpp runner for
CLIP/LLaVA-style projectors only. For other families (SmolVLM/Idefics3 among them) the Modelfile loads
the language model and vision is lost: the report's `ollama_vision` says which, and to use
`llama-mtmd-cli`/`llama-server --mmproj` for images.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .. import __version__
from ..reports.gguf import GGUFFile, GGUFReport
from ..templates._shared.model_files import stage_model_folder
from . import modelfile as mf
from . import source as src
from . import toolchain as tcm
from . import workers
from .quants import MODELFILE_PREFERENCE, QuantType

VLM_WORKER = Path(__file__).resolve().parent / "vlm_worker.py"
#: families whose vision Ollama runs from a GGUF pair (its engine) - others load text only
OLLAMA_VISION = {"gemma3", "qwen2_5_vl", "mllama", "mistral3", "llava", "llava_next"}
MAX_F16_LOGIT_DIFF = 0.25  # the text export's f16 rule of thumb (toolchain notes: 0.004-0.04 on fixtures)


def is_vlm_dir(model_dir: Path) -> bool:
    cfg = model_dir / "config.json"
    try:
        return isinstance(json.loads(cfg.read_text(encoding="utf-8")).get("vision_config"), dict)
    except (OSError, ValueError):
        return False


def text_architecture(model_dir: Path) -> str | None:
    """The language model's architecture as llama.cpp's converter picks it: text_config's, else the model's."""
    cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    names = (cfg.get("text_config") or {}).get("architectures") or cfg.get("architectures") or [None]
    return names[0]


def model_family(model_dir: Path) -> str:
    return str(json.loads((model_dir / "config.json").read_text(encoding="utf-8")).get("model_type") or "unknown")


def verdict(checks: dict, quantized: bool) -> tuple[bool, str | None]:
    if not checks.get("loads") or not checks.get("generates"):
        return False, "does not load or generate in llama.cpp"
    if not quantized and (checks.get("max_abs_logit_diff", 1e9) > MAX_F16_LOGIT_DIFF or checks.get("top1_agreement", 0) < 0.9):
        return False, f"logits differ from transformers (max {checks.get('max_abs_logit_diff'):.3g})"
    mm = checks.get("mmproj") or {}
    if not mm.get("has_vision_encoder") or mm.get("elements") != mm.get("hf_vision_elements"):
        return False, f"mmproj holds {mm.get('elements')} elements, the model's vision half {mm.get('hf_vision_elements')}"
    return image_verdict(checks.get("image") or {}, quantized)


def image_verdict(image: dict, quantized: bool) -> tuple[bool, str | None]:
    """The rule for "answers about an image": libmtmd loads the pair, lays out each image as transformers'
    processor does, answers; in f16 its logits after the image match transformers' and the images matter."""
    if not image.get("loads") or not image.get("vision"):
        return False, f"llama.cpp did not load the mmproj with the model ({image.get('error', 'no vision support')})"
    answers = image.get("images") or {}
    for name, one in answers.items():
        if one["positions"] != one["hf_positions"]:
            return False, (f"llama.cpp lays the {name} image's prompt out in {one['positions']} positions, "
                           f"transformers in {one['hf_positions']}")
    if quantized:
        return True, None
    worst = max((one["max_abs_logit_diff"] for one in answers.values()), default=1e9)
    if worst > MAX_F16_LOGIT_DIFF or not all(one["top1_agrees"] for one in answers.values()):
        return False, f"the answer about an image differs from transformers' (logits max {worst:.3g})"
    effect = image.get("image_effect") or {}
    if min(effect.get("llama_cpp", 0.0), effect.get("transformers", 0.0)) <= worst:
        return False, (f"two different images change llama.cpp's answer logits by {effect.get('llama_cpp', 0):.3g}, "
                       f"no more than the runtimes differ ({worst:.3g}): the image does not reach the model")
    return True, None


def modelfile_text(lm: str, mmproj: str, family: str, fmt: mf.ChatFormat, source: src.Source) -> str:
    base = mf.modelfile_text(lm, fmt, system_prompt=source.system_prompt, others=[], model_name=mf.ollama_name(source.name),
                             trained=source.job_id is not None,
                             header=f"Ollama Modelfile written by tuneforge {__version__} for {source.name} (vision-language)")
    lines = base.splitlines()
    at = next((i for i, ln in enumerate(lines) if ln.startswith("FROM ")), len(lines))
    if family in OLLAMA_VISION:
        extra = [f"FROM ./{mmproj}"]
    else:
        extra = [f"# Ollama cannot run {family}'s vision projector: this Modelfile serves the language model only.",
                 f"# For images use llama.cpp: llama-mtmd-cli -m {lm} --mmproj {mmproj} --image IMAGE -p PROMPT"]
    return "\n".join(lines[: at + 1] + extra + lines[at + 1:]) + "\n"


def run_vlm_export(source: src.Source, quant_types: list[QuantType], out_dir: Path, *, tc: tcm.Toolchain, log: Path,
                   work: Path, step) -> GGUFReport:
    """Both GGUF files of a VLM, verified; the Modelfile; the report (not yet written)."""
    started = time.time()
    notes: list[str] = []
    steps: dict[str, float] = {}
    model_dir = stage_model_folder(Path(source.path), work / "model", trust_remote_code=False)
    if source.kind == "adapter":
        step(f"Merging the LoRA adapter into {source.base_model} (vision-language)")
        t = time.time()
        base_dir = stage_model_folder(Path(str(source.base_path)), work / "base", trust_remote_code=False)
        workers.run_worker([str(VLM_WORKER), "merge", "--adapter", str(model_dir), "--base", str(base_dir),
                            "--out", str(work / "merged")], log, what="merging the adapter into its vision-language base",
                           code="gguf.merge_failed")
        model_dir = stage_model_folder(work / "merged", work / "merged-model", trust_remote_code=False)
        steps["merge"] = round(time.time() - t, 2)
        notes.append(f"LoRA adapter merged into {source.base_model} (the vision tower was frozen: unchanged).")
    family = model_family(model_dir)
    fmt = mf.chat_format(model_dir)
    stem = source.name
    f16 = out_dir / f"{stem}-F16.gguf"
    mmproj = out_dir / f"mmproj-{stem}-F16.gguf"
    step("Converting the language model to GGUF f16")
    t = time.time()
    workers.convert(tc, model_dir, f16, "f16", log)
    steps["convert"] = round(time.time() - t, 2)
    step("Converting the vision tower and projector to an mmproj GGUF (--mmproj)")
    t = time.time()
    tmp = mmproj.with_name(mmproj.name + ".part")
    workers.run_worker([tc.convert_script, str(model_dir), "--mmproj", "--outtype", "f16", "--outfile", str(tmp)], log,
                       what="converting the projector (convert_hf_to_gguf.py --mmproj)", env=tc.env(),
                       code="gguf.convert_failed")
    tmp.replace(mmproj)
    steps["convert_mmproj"] = round(time.time() - t, 2)

    files: list[GGUFFile] = []
    by_name: dict[str, Path] = {"f16": f16}
    for q in quant_types:
        if q.name != "f16":
            step(f"Quantizing the language model to {q.name}")
            path = out_dir / f"{stem}-{q.tag}.gguf"
            if q.converted:
                workers.convert(tc, model_dir, path, q.name, log)
            else:
                workers.quantize(tc, f16, path, q, log)
            by_name[q.name] = path
    for name, path in by_name.items():
        step(f"Verifying {name} with its mmproj in llama.cpp")
        t = time.time()
        quantized = name not in ("f16", "bf16", "f32")
        checks = workers.run_worker([str(VLM_WORKER), "check", "--model", str(model_dir), "--lm", str(path), "--mmproj",
                                     str(mmproj), *(["--quantized"] if quantized else [])], log,
                                    what=f"verifying {name} and the mmproj file", env=tc.env(), code="gguf.verify_failed")
        passed, why = verdict(checks, quantized)
        checks.update(passed=passed, failed_because=why, verify_seconds=round(time.time() - t, 2),
                      image_answer_checked=bool((checks.get("image") or {}).get("images")))
        files.append(GGUFFile(quant=name, path=str(path), bytes=path.stat().st_size, checks=checks,
                              seconds=round(time.time() - t, 2)))
    kept = {q.name for q in quant_types}
    listed = [f for f in files if f.quant in kept] or files[:1]
    if "f16" not in kept:
        f16.unlink(missing_ok=True)
    mm_file = GGUFFile(quant="mmproj-f16", path=str(mmproj), bytes=mmproj.stat().st_size,
                       checks={"passed": all(f.checks.get("passed") for f in files), **files[0].checks.get("mmproj", {})},
                       seconds=steps["convert_mmproj"])
    pick = next((f for q in MODELFILE_PREFERENCE for f in listed if f.quant == q), listed[0])
    modelfile = out_dir / "Modelfile"
    modelfile.write_text(modelfile_text(Path(pick.path).name, mmproj.name, family, fmt, source), encoding="utf-8")
    ollama = family in OLLAMA_VISION
    asked = files[0].checks.get("image") or {}
    for colour, one in (asked.get("images") or {}).items():
        notes.append(f"Asked about a {colour} image through libmtmd ({files[0].quant} + mmproj): {one['answer']!r} "
                     f"(transformers: {one['hf_answer']!r}; logits within {one['max_abs_logit_diff']:.3g}).")
    notes.append(f"Ollama: {'vision from the two FROM lines' if ollama else f'no vision for {family} (text only); use llama-mtmd-cli or llama-server --mmproj for images'}.")
    passed = all(f.checks.get("passed") for f in files)
    for f in files:
        if not f.checks.get("passed"):
            notes.append(f"{f.quant}: verification failed ({f.checks.get('failed_because')}).")
    return GGUFReport(
        files=[*listed, mm_file], modelfile=str(modelfile), seconds=round(time.time() - started, 2), passed=passed,
        out_dir=str(out_dir),
        source={"kind": source.kind, "path": source.path, "base_model": source.base_model, "job_id": source.job_id,
                "architecture": source.architecture, "n_params": source.n_params, "name": source.name,
                "ollama_name": mf.ollama_name(source.name), "vision": family, "ollama_vision": ollama},
        toolchain={"llama_cpp_python": tc.version, "llama_cpp_commit": tc.commit},
        chat_format=fmt.model_dump(exclude={"template"}) | {"system_prompt": source.system_prompt},
        notes=notes, steps=steps,
    )
