"""GGUF export as a Hugging Face job: what to export, on which flavor, with which config.

The export action (tuneforge.actions.export.submit_export) puts these together: `cloud_ref` checks
that the model is reachable from the cloud (a Hub id, or the repo a finished hf training job pushed
to), `inspect_hub_model` reads its small files from the Hub (config, adapter config, tokenizer config,
chat template), `choose_flavor` picks a flavor from the memory the merge and the reference logits
need, `export_config` renders the Ollama Modelfile and the model card here with the same code as the
local export, and `stage_export` writes the job folder: the template with its helpers, its
config.json (an ExportConfig) and tuneforge's two standalone worker scripts, which travel to the job's
/data folder. The token travels only as the HF_TOKEN secret.

A repo that ships its own code (an `auto_map` in the small files read here) is refused before
anything is submitted unless the user trusts it (remote_code.py). Trust travels as the template's
own `--trust-remote-code` argument in the job's command, never in config.json (an ExportConfig has
no such key); without it the template refuses such a model itself, and converts a staged copy without
the model's code under _shared/no_remote_code.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .. import __version__
from ..config.export import ExportConfig, QuantTarget, ToolchainPin, VerifySettings
from ..errors import TuneforgeError
from ..flavors import host_ram_gb, price_for
from ..jobs.service import SubmitResult
from ..records import JobSpec
from ..templates._shared.gguf_checks import LOGIT_TOLERANCE, MAX_NEW_TOKENS
from ..templates._shared.gguf_checks import eval_prompts as eval_prompts_for
from ..templates._shared.model_files import remote_code_findings
from . import modelfile as mf
from . import toolchain as tcm
from .quants import MODELFILE_PREFERENCE, QuantType
from .source import HUB_ID, model_stem
from .workers import HF_WORKER, LLAMA_WORKER

TEMPLATE = "gguf_export.py"
DEFAULT_FLAVOR = "cpu-upgrade"
#: flavors an export may run on (one process: CPU or single-GPU), smallest first. The merge and the
#: reference logits run in host RAM, so RAM is what decides; RAM and price come from tuneforge.flavors.
EXPORT_FLAVOR_NAMES = ("cpu-upgrade", "a10g-large", "l40sx1", "a100-large")
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


class HubModel(BaseModel):
    """What the Hub says about the model to export, from its small files only (no weights)."""

    repo: str
    adapter: bool
    base_model: str | None = None  # adapters: the base's Hub id
    tokenizer_dir: str  # where its tokenizer config and chat template were saved
    n_params: int
    remote_code: dict[str, list[str]] = Field(default_factory=dict)  # repo -> its own code found in its small files


# ---- what to export --------------------------------------------------------------------------------------
def cloud_ref(model: str | None, job_id: str | None, base: str | None,
              system_prompt: str | None) -> tuple[str, str | None, str | None, str | None, list[str]]:
    """(model repo, base override, system prompt, source job id, the job's eval prompts), refusing anything the cloud
    cannot reach."""
    if job_id:
        if model:
            raise TuneforgeError("Pass either MODEL or --job, not both.", "Use --job ID to export a finished training job's model.",
                                 code="gguf.model_and_job")
        from ..jobs.service import JobService

        job = JobService().refresh(job_id)
        if job.kind != "train":
            raise TuneforgeError(f"Job {job_id} is a {job.kind} job, not a training job.", "Pass the id of a training job.",
                                 code="gguf.not_a_training_job")
        if job.backend != "hf":
            raise TuneforgeError(
                f"Job {job_id} ran on the {job.backend} backend: its model is on this machine, not on the Hub, so a Hugging Face job cannot reach it.",
                f"Export it here with `tuneforge gguf --job {job_id} --backend local --push-to REPO`, or push the model to the Hub first and pass its repo id.",
                code="gguf.not_on_hub")
        if job.stage != "COMPLETED":
            raise TuneforgeError(f"Job {job_id} is {job.stage}, so it has no finished model to export.",
                                 f"Wait for it with `tuneforge jobs wait {job_id}`" if not job.terminal else "Export a job that COMPLETED.",
                                 code="gguf.job_not_finished")
        repo = job.push_target
        if not repo:
            raise TuneforgeError(f"Job {job_id} pushed nothing to the Hub (no push_to_hub in its config).", "Pass the model's Hub id instead.",
                                 code="gguf.not_on_hub")
        trained_on = job.config.model if job.config else None
        if base is None and isinstance(trained_on, str) and HUB_ID.match(trained_on):
            base = trained_on
        if system_prompt is None:
            system_prompt = job.config.system_prompt if job.config else None
        return repo, base, system_prompt, job_id, list(job.config.eval_prompts) if job.config else []
    if not model:
        raise TuneforgeError("Nothing to export.", "Pass a Hub model id (owner/name) or --job ID of a finished hf training job.",
                             code="gguf.nothing_to_export")
    local = Path(model).expanduser()
    if local.exists() or model.startswith((".", "/", "~")) or not HUB_ID.match(model):
        raise TuneforgeError(
            f"{model!r} is {'a local path' if local.exists() or model.startswith(('.', '/', '~')) else 'not a Hub id'}: "
            "a Hugging Face job can only export a model it can download from the Hub.",
            f"Push it first (`hf upload your-name/{model_stem(model)} {model}`) and pass that repo id, or export it here with --backend local.",
            code="gguf.not_on_hub")
    if base is not None and not HUB_ID.match(base):
        raise TuneforgeError(f"--base {base!r} is not a Hub id, so a Hugging Face job cannot download it.",
                             "Pass the base model's Hub id (owner/name), or export here with --backend local.", code="gguf.not_on_hub")
    return model, base, system_prompt, None, []


def fetch_small_files(repo_id: str, dest: Path, what: str) -> Path:
    """config / adapter config / tokenizer config / chat template of a Hub repo (no weights)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
    )

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
                                 f"Accept its terms on https://huggingface.co/{repo_id} with the account whose token you use.",
                                 code="hf.gated") from None
        except RepositoryNotFoundError:
            raise TuneforgeError(f"The {what} {repo_id!r} does not exist on the Hub (or the token cannot see it).",
                                 "Check the repo id and that your token can read it; a local model needs --backend local or a push first.",
                                 code="hf.repo_not_found") from None
        except (HfHubHTTPError, OSError) as exc:
            raise TuneforgeError(f"Could not read the {what} {repo_id!r} from the Hub: {type(exc).__name__}.",
                                 "Check the network and the repo id, then run again (or export here with --backend local).",
                                 code="hf.unreachable") from None
    if not found or not ((dest / "config.json").is_file() or (dest / "adapter_config.json").is_file()):
        raise TuneforgeError(f"The Hub repo {repo_id!r} holds no model: neither config.json nor adapter_config.json.",
                             "Pass the repo of a Hugging Face model or LoRA adapter (what save_pretrained / push_to_hub write).",
                             code="gguf.not_a_model")
    return dest


def inspect_hub_model(repo: str, base: str | None, job_dir: Path) -> HubModel:
    """The model's small files, saved under job_dir/hub: full model or LoRA adapter (and its base), size, tokenizer."""
    meta_dir = fetch_small_files(repo, job_dir / "hub" / "model", "model")
    tokenizer_dir = meta_dir
    if (meta_dir / "adapter_config.json").is_file():
        acfg = json.loads((meta_dir / "adapter_config.json").read_text(encoding="utf-8"))
        if acfg.get("peft_type") not in (None, "LORA"):
            raise TuneforgeError(f"{repo} holds a {acfg.get('peft_type')} adapter; only LoRA adapters can be merged for GGUF.",
                                 "Export a LoRA adapter or a full model.", code="gguf.not_lora")
        base = base or acfg.get("base_model_name_or_path")
        if not base or not HUB_ID.match(str(base)) or str(base).startswith(("/", ".")):
            raise TuneforgeError(
                f"The adapter {repo} names its base model as {base!r}, which a Hugging Face job cannot download.",
                "Pass --base with the base model's Hub id (owner/name).", code="gguf.base_not_found")
        base_dir = fetch_small_files(str(base), job_dir / "hub" / "base", "base model")
        if not (meta_dir / "tokenizer_config.json").is_file():
            tokenizer_dir = base_dir
        arch_cfg = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
        return HubModel(repo=repo, adapter=True, base_model=str(base), tokenizer_dir=str(tokenizer_dir),
                        n_params=estimate_params(arch_cfg),
                        remote_code={repo: remote_code_findings(meta_dir), str(base): remote_code_findings(base_dir)})
    if base:
        raise TuneforgeError(f"{repo} is a full model, so --base does not apply.", "Drop --base (it is only for LoRA adapters).",
                             code="gguf.base_for_full_model")
    arch_cfg = json.loads((meta_dir / "config.json").read_text(encoding="utf-8"))
    return HubModel(repo=repo, adapter=False, tokenizer_dir=str(tokenizer_dir), n_params=estimate_params(arch_cfg),
                    remote_code={repo: remote_code_findings(meta_dir)})


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


# ---- where it runs ---------------------------------------------------------------------------------------
def export_flavors() -> list[tuple[str, int, float]]:
    """(name, host RAM in GB, $/hour) of each export flavor, from the hardware table."""
    return [(name, int(host_ram_gb(name) or 0), price_for(name) or 0.0) for name in EXPORT_FLAVOR_NAMES]


def choose_flavor(n_params: int, *, adapter: bool, flavor: str | None = None) -> FlavorChoice:
    """The cheapest flavor whose RAM holds the merge and float32 reference logits (full checks); else bf16; else
    load-only checks. An explicit flavor is kept, with what it allows."""
    full = n_params * 4 / 0.6 + OVERHEAD  # the export computes the reference in float32 when n*4 < 0.6 RAM
    bf16 = n_params * 2 / 0.6 + OVERHEAD
    # without reference logits: the merge in the base dtype (adapters); llama.cpp runs the f16 file (mmap)
    load = n_params * 2 * (1.2 if adapter else 1.1) + OVERHEAD
    size = f"{n_params / 1e9:.2f}B parameters"
    table = export_flavors()
    if flavor:
        ram = next((r for name, r, _ in table if name == flavor), None)
        if ram is None:
            return FlavorChoice(flavor=flavor, reason=f"{flavor} was asked for ({size}).")
        for need, checks in ((full, "full"), (bf16, "bf16"), (load, "load")):
            if ram * GB >= need:
                return FlavorChoice(flavor=flavor, ram_gb=ram, need_gb=round(need / GB, 1), checks=checks,
                                    reason=f"{flavor} was asked for ({ram} GB RAM, {size}): {checks_text(checks)}.")
        raise TuneforgeError(
            f"{flavor} has {ram} GB RAM, but exporting {size} needs about {load / GB:.0f} GB even without the logit comparison.",
            f"Drop --flavor and let tuneforge pick one, or choose a flavor with more memory ({', '.join(n for n, r, _ in table if r * GB >= load) or 'none is large enough'}).",
            code="gguf.flavor_too_small")
    for need, checks in ((full, "full"), (bf16, "bf16"), (load, "load")):
        for name, ram, price in table:
            if ram * GB >= need:
                what = "merging the adapter and computing" if adapter else "computing"
                if name == DEFAULT_FLAVOR:
                    reason = f"{name} ({ram} GB RAM, ${price}/h) holds {size} for {what} float32 reference logits (~{need / GB:.0f} GB)."
                else:
                    reason = (f"{DEFAULT_FLAVOR} ({table[0][1]} GB RAM) is too small for {what} the reference logits of {size} "
                              f"(~{need / GB:.0f} GB needed): {name} has {ram} GB RAM (${price}/h); the export runs on its CPUs, "
                              f"its memory is what it is chosen for. {checks_text(checks).capitalize()}.")
                return FlavorChoice(flavor=name, reason=reason, ram_gb=ram, need_gb=round(need / GB, 1), checks=checks)
    biggest = table[-1]
    raise TuneforgeError(
        f"Exporting {size} needs about {load / GB:.0f} GB of RAM; the largest single-machine export flavor ({biggest[0]}) has {biggest[1]} GB.",
        "Export it with --backend local on a machine with enough memory.", code="gguf.too_large_for_cloud")


def checks_text(checks: str) -> str:
    """What a flavor's memory allows the verification to do, in words."""
    return {"full": "every file is checked against float32 transformers logits",
            "bf16": "the reference logits are computed in bfloat16 (float32 does not fit), so differences read larger",
            "load": "too little memory for transformers reference logits: files are checked by loading and generating with llama.cpp"}[checks]


def default_timeout(n_params: int) -> int:
    """Build llama.cpp (~10 min), install torch, download, convert, verify: 1 h plus 10 min per billion parameters."""
    return int(3600 + 600 * n_params / 1e9)


# ---- the job's config and folder ----------------------------------------------------------------------
def export_config(model: HubModel, quant_types: list[QuantType], *, push_to: str, private: bool | None,
                  system_prompt: str | None, timeout: int, source_job: str | None, choice: FlavorChoice,
                  eval_prompts: list[str] | None = None) -> ExportConfig:
    """The job's config.json: what to download and make, the Modelfile and model card rendered here, the pins;
    the prompts of the agreement gate (a source job's eval prompts, see gguf_checks.eval_prompts)."""
    fmt = mf.chat_format(Path(model.tokenizer_dir))
    name = model_stem(model.repo)
    names = file_names(name, quant_types)
    pick = next((q for q in MODELFILE_PREFERENCE if q in names), quant_types[0].name)
    modelfile = mf.modelfile_text(names[pick], fmt, system_prompt=system_prompt,
                                  others=[n for q, n in names.items() if q != pick], model_name=mf.ollama_name(name),
                                  trained=source_job is not None,
                                  header=f"Ollama Modelfile written by tuneforge {__version__} for {model.repo}")
    toolchain_text = f"llama-cpp-python {tcm.LLAMA_CPP_PYTHON_VERSION}, llama.cpp {tcm.LLAMA_CPP_COMMIT[:7]}"
    readme = mf.model_card(repo_id=push_to, base_model=model.base_model if model.adapter else model.repo,
                           files=[{"quant": q.name, "path": names[q.name], "bytes": 0, "checks": {}} for q in quant_types],
                           fmt=fmt, toolchain=toolchain_text, system_prompt=system_prompt)
    privacy = {} if private is None else {"hub_private": private}
    return ExportConfig(
        model=model.repo, adapter=model.adapter, base_model=model.base_model if model.adapter else None,
        push_to_hub=push_to, **privacy, name=name,
        quants=[QuantTarget(name=q.name, tag=q.tag, ftype=q.ftype, converted=q.converted) for q in quant_types],
        system_prompt=system_prompt, modelfile=modelfile, readme=readme,
        toolchain=ToolchainPin(llama_cpp_python=tcm.LLAMA_CPP_PYTHON_VERSION, llama_cpp_commit=tcm.LLAMA_CPP_COMMIT,
                               cmake_args=tcm.CMAKE_ARGS),
        verify=VerifySettings(prompts=eval_prompts_for(eval_prompts)[0], max_new_tokens=MAX_NEW_TOKENS,
                              logit_tolerance=LOGIT_TOLERANCE),
        timeout_seconds=timeout, source_job=source_job, n_params_estimate=model.n_params, flavor_reason=choice.reason,
    )


def file_names(name: str, quant_types: list[QuantType]) -> dict[str, str]:
    """quant type -> the GGUF file the export writes for it."""
    return {q.name: f"{name}-{q.tag}.gguf" for q in quant_types}


def stage_export(config: ExportConfig, job_dir: Path, job_id: str, flavor: str, *, trust_remote_code: bool = False,
                 min_agreement: dict[str, float] | None = None) -> JobSpec:
    """The job folder (config.json, the template with its helpers, the two workers) and the spec that runs it;
    `trust_remote_code` adds the template's --trust-remote-code (the user's consent, not a config key),
    `min_agreement` one --min-agreement TYPE=SHARE per threshold asked for (the template's defaults: gguf_checks)."""
    from .. import paths
    from ..jobs.workspace import stage_template

    config_path = job_dir / "config.json"
    config_path.write_text(config.model_dump_json(indent=2) + "\n", encoding="utf-8")
    # what ran is on record: the template, its helpers and the workers travel as copies from the job folder
    script, helpers = stage_template(paths.templates_dir() / TEMPLATE, job_dir)
    workers = []
    for worker in (HF_WORKER, LLAMA_WORKER):
        shutil.copyfile(worker, job_dir / worker.name)
        workers.append(job_dir / worker.name)
    return JobSpec(
        script=script,
        args=["--config", str(config_path), "--hf-worker", str(workers[0]), "--llama-worker", str(workers[1]),
              *(["--trust-remote-code"] if trust_remote_code else []),
              *[arg for q, v in (min_agreement or {}).items() for arg in ("--min-agreement", f"{q}={v}")]],
        files=[config_path, *workers, *helpers],
        flavor=flavor,
        timeout_seconds=config.timeout_seconds,
        labels={"tuneforge-job": job_id, "tuneforge-kind": "gguf"},
    )
