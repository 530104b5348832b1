"""What to export: a full model folder, a LoRA adapter (+ its base), a Hub id, or a finished training job.

Everything here is cheap and checked before any heavy work starts, so a wrong input fails in a second
with a message that says what to pass instead.
"""

from __future__ import annotations

import ast
import json
import re
import struct
from math import prod
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ..errors import TuneforgeError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]
#: downloaded too only when the user trusts the model's own code (see remote_code.py)
CODE_PATTERNS = ["*.py"]


class Source(BaseModel):
    """A resolved export input: local folders only (Hub ids are downloaded first)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["full", "adapter"]
    path: str  # the model folder, or the adapter folder
    base_path: str | None = None  # adapters: the local base model folder
    base_model: str | None = None  # the name to credit (Hub id or folder)
    name: str  # file-name stem for the GGUF files
    system_prompt: str | None = None
    job_id: str | None = None
    eval_prompts: list[str] = []  # a training job's RunConfig.eval_prompts: what the agreement gate asks
    architecture: str | None = None
    n_params: int | None = None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise TuneforgeError(f"{path} is not valid JSON ({exc}).", "Fix or regenerate that file (save_pretrained writes it).", code="gguf.bad_json") from None
    if not isinstance(data, dict):
        raise TuneforgeError(f"{path} does not hold a JSON object.", "Regenerate it with save_pretrained.", code="gguf.bad_json")
    return data


def model_stem(text: str) -> str:
    """A file-name stem from a model reference: its last path part, unsafe characters as dashes."""
    return re.sub(r"[^\w.-]+", "-", text.rstrip("/").split("/")[-1]).strip("-") or "model"


def download(repo_id: str, what: str, *, with_code: bool = False) -> Path:
    """A Hub model's config, tokenizer and safetensors weights (from the local cache when offline); its
    Python files too when `with_code` (the user trusts them)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS + (CODE_PATTERNS if with_code else [])))
    except GatedRepoError:
        raise TuneforgeError(f"The {what} {repo_id!r} is gated on the Hub.",
                             f"Accept its terms on https://huggingface.co/{repo_id} and log in (`hf auth login`), or pass a local folder.", code="hf.gated") from None
    except RepositoryNotFoundError:
        raise TuneforgeError(f"The {what} {repo_id!r} does not exist on the Hub (or is private).",
                             "Check the id, log in for private repos (`hf auth login`), or pass a local folder.", code="hf.repo_not_found") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise TuneforgeError(f"The {what} {repo_id!r} is not in the local Hugging Face cache and the Hub cannot be reached (offline).",
                             "Pass a local folder that holds it, or run again with network access (unset HF_HUB_OFFLINE).", code="hf.offline") from None
    except (HfHubHTTPError, OSError) as exc:
        raise TuneforgeError(f"Could not download the {what} {repo_id!r}: {exc}.",
                             "Check the network and the id, or pass a local folder.", code="hf.unreachable") from None


def _local_or_hub(ref: str, what: str, with_code: bool = False) -> Path | None:
    """A local folder for `ref` (downloading Hub ids), or None when it names nothing."""
    path = Path(ref).expanduser()
    if path.exists():
        return path.resolve()  # absolute: safe to pass on a command line
    if HUB_ID.match(ref) and not ref.startswith((".", "/", "~")):
        return download(ref, what, with_code=with_code)
    return None


def count_params(model_dir: Path) -> int | None:
    """Parameters in the safetensors files (headers only), or None when there are none."""
    total = 0
    found = False
    for f in sorted(model_dir.glob("*.safetensors")):
        try:
            with open(f, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(n))
        except (OSError, ValueError, struct.error):
            continue
        for key, info in header.items():
            if key != "__metadata__" and isinstance(info, dict):
                total += prod(info.get("shape") or [1])
                found = True
    if found:
        return total
    bins = list(model_dir.glob("pytorch_model*.bin"))
    return sum(b.stat().st_size for b in bins) // 2 if bins else None


def _check_full_model(d: Path) -> tuple[str | None, int | None]:
    cfg = _read_json(d / "config.json")
    archs = cfg.get("architectures") or []
    if not any(d.glob("*.safetensors")) and not any(d.glob("pytorch_model*.bin")):
        raise TuneforgeError(
            f"{d} has a config.json but no weights (*.safetensors or pytorch_model*.bin).",
            "Point at the folder save_pretrained wrote, with its weight files.", code="gguf.no_weights")
    return (archs[0] if archs else None), count_params(d)


def _open_model_dir(ref: str, what: str, with_code: bool = False) -> Path:
    d = _local_or_hub(ref, what, with_code)
    if d is None:
        raise TuneforgeError(f"No {what} at {ref!r}: it is neither a folder here nor a Hub id (owner/name).",
                             "Pass a model folder (with config.json), a LoRA adapter folder (with adapter_config.json) or a Hub id.", code="gguf.not_found")
    if not d.is_dir():
        raise TuneforgeError(f"{d} is a file, not a model folder.",
                             "Pass the folder that holds config.json (a model) or adapter_config.json (a LoRA adapter).", code="gguf.not_a_model")
    return d


def resolve(model: str | None, *, base: str | None = None, job_id: str | None = None,
            system_prompt: str | None = None, trust_remote_code: bool = False) -> Source:
    """The export's input, checked; Hub ids downloaded (with their Python files only when trusted)."""
    if job_id:
        if model:
            raise TuneforgeError("Pass either MODEL or --job, not both.", "Use --job ID to export a finished training job's model.", code="gguf.model_and_job")
        return _from_job(job_id, base=base, system_prompt=system_prompt, with_code=trust_remote_code)
    if not model:
        raise TuneforgeError("Nothing to export.", "Pass a model folder, a LoRA adapter folder, a Hub id, or --job ID.", code="gguf.nothing_to_export")
    d = _open_model_dir(model, "model", trust_remote_code)
    return _from_dir(d, base=base, name=model_stem(model), system_prompt=system_prompt, with_code=trust_remote_code)


def _from_dir(d: Path, *, base: str | None, name: str, system_prompt: str | None, job_id: str | None = None,
              base_model: str | None = None, with_code: bool = False, eval_prompts: list[str] | None = None) -> Source:
    if (d / "adapter_config.json").is_file():
        acfg = _read_json(d / "adapter_config.json")
        if acfg.get("peft_type") not in (None, "LORA"):
            raise TuneforgeError(f"{d} holds a {acfg.get('peft_type')} adapter; only LoRA adapters can be merged for GGUF.",
                                 "Export a LoRA adapter or a full model.", code="gguf.not_lora")
        base_ref = base or acfg.get("base_model_name_or_path") or base_model
        if not base_ref:
            raise TuneforgeError(f"The adapter in {d} does not name its base model (adapter_config.json has no base_model_name_or_path).",
                                 "Pass the base model with --base (a folder or a Hub id).", code="gguf.base_not_found")
        base_dir = _local_or_hub(str(base_ref), "base model", with_code)
        if base_dir is None or not (base_dir / "config.json").is_file():
            raise TuneforgeError(
                f"The adapter's base model {base_ref!r} cannot be found: it is not a model folder here and not a Hub id.",
                "Pass --base with the folder (or Hub id) of the model the adapter was trained on.", code="gguf.base_not_found")
        arch, n_params = _check_full_model(base_dir)
        return Source(kind="adapter", path=str(d), base_path=str(base_dir), base_model=base_model or str(base_ref),
                      name=name, system_prompt=system_prompt, job_id=job_id, architecture=arch, n_params=n_params,
                      eval_prompts=list(eval_prompts or []))
    if (d / "config.json").is_file():
        arch, n_params = _check_full_model(d)
        if base:
            raise TuneforgeError(f"{d} is a full model, so --base does not apply.", "Drop --base (it is only for LoRA adapters).", code="gguf.base_for_full_model")
        return Source(kind="full", path=str(d), base_model=base_model, name=name, system_prompt=system_prompt,
                      job_id=job_id, architecture=arch, n_params=n_params, eval_prompts=list(eval_prompts or []))
    if any(d.glob("*.gguf")):
        raise TuneforgeError(f"{d} holds GGUF files already, not a Hugging Face model.", "Pass the Hugging Face model folder the GGUF came from.", code="gguf.already_gguf")
    raise TuneforgeError(
        f"{d} is not a model folder: it has neither config.json (a model) nor adapter_config.json (a LoRA adapter).",
        "Point at the folder save_pretrained wrote (for a training job, use --job ID).", code="gguf.not_a_model")


def _from_job(job_id: str, *, base: str | None, system_prompt: str | None, with_code: bool = False) -> Source:
    from ..jobs.service import JobService

    job = JobService().store.get(job_id)
    if job.kind != "train":
        raise TuneforgeError(f"Job {job_id} is a {job.kind} job, not a training job.", "Pass the id of a training job.", code="gguf.not_a_training_job")
    if job.stage != "COMPLETED":
        raise TuneforgeError(f"Job {job_id} is {job.stage}, so it has no finished model to export.",
                             f"Wait for it with `tuneforge jobs wait {job_id}`" if not job.terminal else "Export a job that COMPLETED.", code="gguf.job_not_finished")
    result = job.outputs.get("result") or {}
    out_dir = job.outputs.get("output_dir") or (job.config.output_dir if job.config else None)
    candidates = [result.get("merged_dir"), result.get("model_dir"), result.get("adapter_dir")]
    if out_dir:
        candidates += [str(Path(out_dir) / sub) for sub in ("merged", "model", "adapter")]
    folder = next((Path(c).resolve() for c in candidates if c and Path(c).is_dir()), None)
    if folder is None:
        raise TuneforgeError(f"Job {job_id} finished but its model folder is missing (looked in {out_dir}).",
                             "The job's outputs may have been moved or deleted; pass the model folder directly.", code="gguf.job_model_missing")
    base_model = result.get("base_model") or (job.config.model if job.config else None)
    if system_prompt is None:
        system_prompt = (job.config.system_prompt if job.config else None)
    name = f"{model_stem(str(base_model or 'model'))}-{job_id.rsplit('-', 1)[-1]}"
    return _from_dir(folder, base=base, name=name, system_prompt=system_prompt, job_id=job_id, base_model=base_model,
                     with_code=with_code, eval_prompts=list(job.config.eval_prompts) if job.config else None)


def supported_architectures(llama_cpp_dir: Path) -> set[str] | None:
    """Architectures the pinned converter knows, read from its source (no import), or None if unreadable."""
    init = llama_cpp_dir / "conversion" / "__init__.py"
    try:
        tree = ast.parse(init.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "TEXT_MODEL_MAP" and node.value is not None:
            try:
                return set(ast.literal_eval(node.value))
            except ValueError:
                return None
    return None


def check_architecture(arch: str | None, where: str, llama_cpp_dir: Path, commit: str) -> None:
    if arch is None:
        raise TuneforgeError(f"{where}/config.json names no architecture (no \"architectures\" list).",
                             "Save the model with save_pretrained so config.json records its architecture.", code="gguf.no_architecture")
    known = supported_architectures(llama_cpp_dir)
    if known is not None and arch not in known:
        import difflib

        close = difflib.get_close_matches(arch, sorted(known), n=3, cutoff=0.6)
        hint = f" Close names it knows: {', '.join(close)}." if close else ""
        raise TuneforgeError(
            f"llama.cpp's converter (commit {commit[:7]}) does not support the architecture {arch!r} in {where}/config.json.{hint}",
            "GGUF export needs an architecture llama.cpp can run (Llama, Mistral, Qwen2/3, Gemma, Phi-3, SmolLM, ...).",
            details={"architecture": arch}, code="gguf.unsupported_architecture")
