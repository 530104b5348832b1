"""GGUF export as a Hugging Face job: the same pipeline, run by `templates/gguf_export.py` in the cloud.

`submit_export(...)` checks that the model is reachable from the cloud (a Hub id, or the repo a
finished hf training job pushed to), reads its small files from the Hub (config, adapter config,
tokenizer config, chat template), renders the Ollama Modelfile and the model card here with the same
code as the local export, picks a flavor from the memory the merge and the reference logits need, and
submits through the job service (kind "gguf"): the template, its JSON config and tuneforge's two
standalone worker scripts travel to the job's /data folder; the token only as the HF_TOKEN secret.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ..errors import TuneforgeError
from ..jobs.service import SubmitResult
from . import modelfile as mf
from . import toolchain as tcm
from .export import HF_WORKER, LLAMA_WORKER, LOGIT_TOLERANCE, MAX_NEW_TOKENS, PROMPTS
from .quants import MODELFILE_PREFERENCE, parse_quants
from .source import HUB_ID, _stem

TEMPLATE = "gguf_export.py"
DEFAULT_FLAVOR = "cpu-upgrade"
#: flavors an export may run on (one process: CPU or single-GPU), with host RAM in GB and $/hour.
#: The merge and the reference logits run in host RAM, so RAM is what decides.
EXPORT_FLAVORS: list[tuple[str, int, float]] = [
    ("cpu-upgrade", 32, 0.03),
    ("a10g-large", 46, 1.50),
    ("l40sx1", 62, 1.80),
    ("a100-large", 142, 2.50),
]
GB = 1e9
OVERHEAD = 3 * GB  # python, torch, the converter's working set
SMALL_FILES = ["config.json", "adapter_config.json", "tokenizer_config.json", "chat_template.jinja", "chat_template.json",
               "special_tokens_map.json", "generation_config.json"]


class FlavorChoice(BaseModel):
    flavor: str
    reason: str
    ram_gb: int | None = None
    need_gb: float | None = None
    checks: str = "full"  # full (float32 reference) | bf16 (bfloat16 reference) | load (no logit comparison)


class CloudExport(SubmitResult):
    """What `tuneforge gguf --backend hf` answers at once."""

    kind: str = "gguf"
    model: str
    base_model: str | None = None
    push_to: str
    quants: list[str] = Field(default_factory=list)
    flavor_reason: str = ""
    max_cost_usd: float | None = None  # if it runs to its time limit
    files: list[str] = Field(default_factory=list)  # what the job will push


# ---- what to export --------------------------------------------------------------------------------------
def _cloud_ref(model: str | None, job_id: str | None, base: str | None, system_prompt: str | None) -> tuple[str, str | None, str | None, str | None]:
    """(model repo, base override, system prompt, source job id), refusing anything the cloud cannot reach."""
    if job_id:
        if model:
            raise TuneforgeError("Pass either MODEL or --job, not both.", "Use --job ID to export a finished training job's model.")
        from ..jobs.service import JobService

        service = JobService()
        job = service.refresh(job_id)
        if job.kind != "train":
            raise TuneforgeError(f"Job {job_id} is a {job.kind} job, not a training job.", "Pass the id of a training job.")
        if job.backend != "hf":
            raise TuneforgeError(
                f"Job {job_id} ran on the {job.backend} backend: its model is on this machine, not on the Hub, so a Hugging Face job cannot reach it.",
                f"Export it here with `tuneforge gguf --job {job_id} --backend local --push-to REPO`, or push the model to the Hub first and pass its repo id.")
        if job.stage != "COMPLETED":
            raise TuneforgeError(f"Job {job_id} is {job.stage}, so it has no finished model to export.",
                                 f"Wait for it with `tuneforge jobs wait {job_id}`" if not job.terminal else "Export a job that COMPLETED.")
        repo = job.push_target
        if not repo:
            raise TuneforgeError(f"Job {job_id} pushed nothing to the Hub (no push_to_hub in its config).", "Pass the model's Hub id instead.")
        trained_on = (job.config.model if job.config else None)
        if base is None and isinstance(trained_on, str) and HUB_ID.match(trained_on):
            base = trained_on
        if system_prompt is None:
            system_prompt = (job.config.system_prompt if job.config else None)
        return repo, base, system_prompt, job_id
    if not model:
        raise TuneforgeError("Nothing to export.", "Pass a Hub model id (owner/name) or --job ID of a finished hf training job.")
    local = Path(model).expanduser()
    if local.exists() or model.startswith((".", "/", "~")) or not HUB_ID.match(model):
        raise TuneforgeError(
            f"{model!r} is {'a local path' if local.exists() or model.startswith(('.', '/', '~')) else 'not a Hub id'}: "
            "a Hugging Face job can only export a model it can download from the Hub.",
            f"Push it first (`hf upload your-name/{_stem(model)} {model}`) and pass that repo id, or export it here with --backend local.")
    if base is not None and not HUB_ID.match(base):
        raise TuneforgeError(f"--base {base!r} is not a Hub id, so a Hugging Face job cannot download it.",
                             "Pass the base model's Hub id (owner/name), or export here with --backend local.")
    return model, base, system_prompt, None


def _fetch_small_files(repo_id: str, dest: Path, what: str) -> Path:
    """config / adapter config / tokenizer config / chat template of a Hub repo (no weights)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    dest.mkdir(parents=True, exist_ok=True)
    found = 0
    for name in SMALL_FILES:
        try:
            hf_hub_download(repo_id, name, local_dir=str(dest))
            found += 1
        except EntryNotFoundError:
            continue
        except GatedRepoError:
            raise TuneforgeError(f"The {what} {repo_id!r} is gated on the Hub.",
                                 f"Accept its terms on https://huggingface.co/{repo_id} with the account whose token you use.") from None
        except RepositoryNotFoundError:
            raise TuneforgeError(f"The {what} {repo_id!r} does not exist on the Hub (or the token cannot see it).",
                                 "Check the repo id and that your token can read it; a local model needs --backend local or a push first.") from None
        except (HfHubHTTPError, OSError) as exc:
            raise TuneforgeError(f"Could not read the {what} {repo_id!r} from the Hub: {type(exc).__name__}.",
                                 "Check the network and the repo id, then run again (or export here with --backend local).") from None
    if not found or not ((dest / "config.json").is_file() or (dest / "adapter_config.json").is_file()):
        raise TuneforgeError(f"The Hub repo {repo_id!r} holds no model: neither config.json nor adapter_config.json.",
                             "Pass the repo of a Hugging Face model or LoRA adapter (what save_pretrained / push_to_hub write).")
    return dest


def estimate_params(config: dict[str, Any]) -> int:
    """Parameters of a decoder model from its config.json (attention, MLP or experts, embeddings)."""
    cfg = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    h = int(cfg.get("hidden_size") or cfg.get("n_embd") or cfg.get("d_model") or 0)
    layers = int(cfg.get("num_hidden_layers") or cfg.get("n_layer") or 0)
    vocab = int(cfg.get("vocab_size") or 0)
    heads = int(cfg.get("num_attention_heads") or 1)
    kv = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or (h // heads if heads else 0))
    inter = int(cfg.get("intermediate_size") or cfg.get("moe_intermediate_size") or 4 * h)
    experts = int(cfg.get("num_local_experts") or cfg.get("num_experts") or 1)
    if experts > 1 and cfg.get("moe_intermediate_size"):
        inter = int(cfg["moe_intermediate_size"])
    attn = h * heads * head_dim * 2 + h * kv * head_dim * 2
    mlp = 3 * h * inter * experts
    emb = vocab * h * (1 if cfg.get("tie_word_embeddings", config.get("tie_word_embeddings", False)) else 2)
    return layers * (attn + mlp) + emb


def choose_flavor(n_params: int, *, adapter: bool, flavor: str | None = None) -> FlavorChoice:
    """The cheapest flavor whose RAM holds the merge and float32 reference logits (full checks); else bf16; else
    load-only checks. An explicit flavor is kept, with what it allows."""
    full = n_params * 4 / 0.6 + OVERHEAD  # export.py computes the reference in float32 when n*4 < 0.6 RAM
    bf16 = n_params * 2 / 0.6 + OVERHEAD
    # without reference logits: the merge in the base dtype (adapters); llama.cpp runs the f16 file (mmap)
    load = n_params * 2 * (1.2 if adapter else 1.1) + OVERHEAD
    size = f"{n_params / 1e9:.2f}B parameters"
    if flavor:
        ram = next((r for name, r, _ in EXPORT_FLAVORS if name == flavor), None)
        if ram is None:
            return FlavorChoice(flavor=flavor, reason=f"{flavor} was asked for ({size}).")
        for need, checks in ((full, "full"), (bf16, "bf16"), (load, "load")):
            if ram * GB >= need:
                return FlavorChoice(flavor=flavor, ram_gb=ram, need_gb=round(need / GB, 1), checks=checks,
                                    reason=f"{flavor} was asked for ({ram} GB RAM, {size}): {_checks_text(checks)}.")
        raise TuneforgeError(
            f"{flavor} has {ram} GB RAM, but exporting {size} needs about {load / GB:.0f} GB even without the logit comparison.",
            f"Drop --flavor and let tuneforge pick one, or choose a flavor with more memory ({', '.join(n for n, r, _ in EXPORT_FLAVORS if r * GB >= load) or 'none is large enough'}).")
    for need, checks in ((full, "full"), (bf16, "bf16"), (load, "load")):
        for name, ram, price in EXPORT_FLAVORS:
            if ram * GB >= need:
                what = "merging the adapter and computing" if adapter else "computing"
                if name == DEFAULT_FLAVOR:
                    reason = f"{name} ({ram} GB RAM, ${price}/h) holds {size} for {what} float32 reference logits (~{need / GB:.0f} GB)."
                else:
                    reason = (f"{DEFAULT_FLAVOR} ({EXPORT_FLAVORS[0][1]} GB RAM) is too small for {what} the reference logits of {size} "
                              f"(~{need / GB:.0f} GB needed): {name} has {ram} GB RAM (${price}/h); the export runs on its CPUs, "
                              f"its memory is what it is chosen for. {_checks_text(checks).capitalize()}.")
                return FlavorChoice(flavor=name, reason=reason, ram_gb=ram, need_gb=round(need / GB, 1), checks=checks)
    biggest = EXPORT_FLAVORS[-1]
    raise TuneforgeError(
        f"Exporting {size} needs about {load / GB:.0f} GB of RAM; the largest single-machine export flavor ({biggest[0]}) has {biggest[1]} GB.",
        "Export it with --backend local on a machine with enough memory.")


def _checks_text(checks: str) -> str:
    return {"full": "every file is checked against float32 transformers logits",
            "bf16": "the reference logits are computed in bfloat16 (float32 does not fit), so differences read larger",
            "load": "too little memory for transformers reference logits: files are checked by loading and generating with llama.cpp"}[checks]


def _default_timeout(n_params: int) -> int:
    """Build llama.cpp (~10 min), install torch, download, convert, verify: 1 h plus 10 min per billion parameters."""
    return int(3600 + 600 * n_params / 1e9)


# ---- submit -------------------------------------------------------------------------------------------------
def submit_export(model: str | None = None, *, job_id: str | None = None, base: str | None = None,
                  quants: list[str] | str | None = None, push_to: str | None = None, flavor: str | None = None,
                  timeout_seconds: int | None = None, system_prompt: str | None = None,
                  private: bool | None = None) -> CloudExport:
    """Submit the export of a Hub model (or a finished hf job's pushed model) as a Hugging Face job."""
    from .. import __version__
    from ..jobs.service import JobService
    from ..config.export import ExportConfig
    from ..records import new_job_id
    from ..paths import jobs_dir, templates_dir
    from ..records import JobSpec
    from .hub import REPO_ID

    quant_types = parse_quants(quants)
    if not push_to:
        raise TuneforgeError("A Hugging Face export job needs somewhere to push: the cloud machine is deleted when the job ends.",
                             "Add --push-to your-name/model-name-GGUF (a model repo you can write to), or export here with --backend local.")
    if not REPO_ID.match(push_to):
        raise TuneforgeError(f"--push-to {push_to!r} is not a Hub repo id.", "Write it as owner/name, e.g. me/my-model-GGUF.")
    repo, base, system_prompt, source_job = _cloud_ref(model, job_id, base, system_prompt)

    new_id = new_job_id()
    job_dir = jobs_dir() / new_id
    job_dir.mkdir(parents=True, exist_ok=True)
    meta_dir = _fetch_small_files(repo, job_dir / "hub" / "model", "model")
    adapter = (meta_dir / "adapter_config.json").is_file()
    tokenizer_dir = meta_dir
    if adapter:
        acfg = json.loads((meta_dir / "adapter_config.json").read_text(encoding="utf-8"))
        if acfg.get("peft_type") not in (None, "LORA"):
            raise TuneforgeError(f"{repo} holds a {acfg.get('peft_type')} adapter; only LoRA adapters can be merged for GGUF.",
                                 "Export a LoRA adapter or a full model.")
        base = base or acfg.get("base_model_name_or_path")
        if not base or not HUB_ID.match(str(base)) or str(base).startswith(("/", ".")):
            raise TuneforgeError(
                f"The adapter {repo} names its base model as {base!r}, which a Hugging Face job cannot download.",
                "Pass --base with the base model's Hub id (owner/name).")
        base_dir = _fetch_small_files(str(base), job_dir / "hub" / "base", "base model")
        if not (meta_dir / "tokenizer_config.json").is_file():
            tokenizer_dir = base_dir
        arch_cfg = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    else:
        if base:
            raise TuneforgeError(f"{repo} is a full model, so --base does not apply.", "Drop --base (it is only for LoRA adapters).")
        arch_cfg = json.loads((meta_dir / "config.json").read_text(encoding="utf-8"))
    n_params = estimate_params(arch_cfg)
    choice = choose_flavor(n_params, adapter=adapter, flavor=flavor)
    timeout = timeout_seconds or _default_timeout(n_params)

    fmt = mf.chat_format(tokenizer_dir)
    name = _stem(repo)
    names = {q.name: f"{name}-{q.tag}.gguf" for q in quant_types}
    pick = next((q for q in MODELFILE_PREFERENCE if q in names), quant_types[0].name)
    modelfile = mf.modelfile_text(names[pick], fmt, system_prompt=system_prompt,
                                  others=[n for q, n in names.items() if q != pick], model_name=name.lower(),
                                  header=f"Ollama Modelfile written by tuneforge {__version__} for {repo}")
    toolchain_text = f"llama-cpp-python {tcm.LLAMA_CPP_PYTHON_VERSION}, llama.cpp {tcm.LLAMA_CPP_COMMIT[:7]}"
    readme = mf.model_card(repo_id=push_to, base_model=str(base) if adapter else repo,
                           files=[{"quant": q.name, "path": names[q.name], "bytes": 0, "checks": {}} for q in quant_types],
                           fmt=fmt, toolchain=toolchain_text, system_prompt=system_prompt)
    config: dict[str, Any] = {
        "model": repo,
        "adapter": adapter,
        "base_model": str(base) if adapter else None,
        "push_to_hub": push_to,
        "hub_private": private,
        "name": name,
        "quants": [{"name": q.name, "tag": q.tag, "ftype": q.ftype, "converted": q.converted} for q in quant_types],
        "system_prompt": system_prompt,
        "modelfile": modelfile,
        "readme": readme,
        "toolchain": {"llama_cpp_python": tcm.LLAMA_CPP_PYTHON_VERSION, "llama_cpp_commit": tcm.LLAMA_CPP_COMMIT,
                      "cmake_args": tcm.CMAKE_ARGS},
        "verify": {"prompts": PROMPTS, "max_new_tokens": MAX_NEW_TOKENS, "logit_tolerance": LOGIT_TOLERANCE},
        "timeout_seconds": timeout,
        "source_job": source_job,
        "n_params_estimate": n_params,
        "flavor_reason": choice.reason,
    }
    config_path = job_dir / "config.json"
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    # what ran is on record: the template and the workers travel as copies from the job folder
    script = job_dir / TEMPLATE
    shutil.copyfile(templates_dir() / TEMPLATE, script)
    workers = []
    for worker in (HF_WORKER, LLAMA_WORKER):
        shutil.copyfile(worker, job_dir / worker.name)
        workers.append(job_dir / worker.name)
    spec = JobSpec(
        script=script,
        args=["--config", str(config_path), "--hf-worker", str(workers[0]), "--llama-worker", str(workers[1])],
        files=[config_path, *workers],
        flavor=choice.flavor,
        timeout_seconds=timeout,
        labels={"tuneforge-job": new_id, "tuneforge-kind": "gguf"},
    )
    from ..backends.hf_flavors import price_for

    price = price_for(choice.flavor)
    job = JobService().submit(spec, backend="hf", kind="gguf", export=ExportConfig.model_validate(config), price_per_hour=price,
                              job_id=new_id, job_dir=job_dir)
    hours = timeout / 3600
    return CloudExport(
        job_id=job.job_id, backend="hf", stage=job.stage, url=job.url, backend_job_id=job.backend_job_id, job_dir=job.job_dir,
        flavor=job.flavor, timeout_seconds=timeout,
        max_cost_usd=None if job.price_per_hour is None else round(hours * job.price_per_hour, 2),
        warnings=[] if choice.checks == "full" else [_checks_text(choice.checks)],
        next=f"tuneforge jobs wait {job.job_id}",
        model=repo, base_model=str(base) if adapter else None, push_to=push_to, quants=[q.name for q in quant_types],
        flavor_reason=choice.reason, files=[*names.values(), "Modelfile", "README.md"],
    )
