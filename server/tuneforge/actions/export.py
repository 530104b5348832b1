"""Export a model to verified GGUF files: here (`export_gguf`) or as a Hugging Face job (`submit_export`).

What the faces (CLI `tuneforge gguf`, the MCP tool, the Python API) call. Import-light: the pipeline
and everything heavy (in subprocesses) load only when called.

    from tuneforge.actions.export import export_gguf
    report = export_gguf("outputs/adapter", quants=["f16", "q4_k_m"], out="gguf/")

A model that ships its own code (an `auto_map` in its JSON files, Python files beside the weights) is
refused with `gguf.remote_code` unless `trust_remote_code=True`, which only a face sets, from the user's
own flag or answer (never from a config file): see tuneforge.gguf.remote_code. A cloud export of such a
model needs the same consent; it travels to the job as the template's `--trust-remote-code` argument,
not in its config.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import ConfigError, TuneforgeError
from .targets import require_push_target

if TYPE_CHECKING:
    from ..gguf.cloud import CloudExport
    from ..reports.gguf import GGUFReport

Progress = Callable[[int, int, str], None]


def export_gguf(model: str | None = None, *, quants: list[str] | str | None = None, out: str | None = None,
                base: str | None = None, job_id: str | None = None, push_to: str | None = None,
                system_prompt: str | None = None, progress: Progress | None = None,
                private: bool | None = None, trust_remote_code: bool = False,
                min_agreement: dict[str, float] | list[str] | str | None = None,
                fallback: list[str] | str | None = None) -> "GGUFReport":
    """Merge (LoRA adapters), convert, quantize and verify GGUF files, write an Ollama Modelfile, push if asked.

    MODEL is a model folder, a LoRA adapter folder or a Hub id; or pass job_id for a finished training
    job. `progress(step, total, message)` is called as the export moves on. Every input is checked
    (in a second) before any heavy work starts. `trust_remote_code`: the user has read and trusts the
    model's own code (else such a model is refused, and the export cannot run its code anyway).
    `min_agreement`: the agreement gate's thresholds per type ({"q4_k_m": 0.7} or ["q4_k_m=0.7"]), over the
    defaults in templates/_shared/gguf_checks.py. A file under its threshold raises gguf.verify_failed
    (tuneforge.gguf.export.VerifyFailed, with the report) and nothing is pushed. `fallback`: types tried in order
    when a requested one fails the gate (["q8_0"]: "q4_k_m if it passes, else q8_0"); the report's `rejected`
    lists the files that failed and were replaced.
    """
    from ..gguf import remote_code
    from ..gguf import source as src
    from ..gguf.export import check_training_stack, run_export
    from ..gguf.quants import parse_min_agreement, parse_quants

    quant_types = parse_quants(quants)
    fallback_types = [q for q in parse_quants(fallback) if q not in quant_types] if fallback else []
    thresholds = parse_min_agreement(min_agreement)
    out_dir = checked_out(out)
    check_training_stack()
    if push_to:
        from ..gguf.hub import check_can_push

        check_can_push(push_to)
    source = src.resolve(model, base=base, job_id=job_id, system_prompt=system_prompt, trust_remote_code=trust_remote_code)
    remote_code.check(source, trust_remote_code=trust_remote_code)
    out_dir = out_dir or default_out(source.name, job_id).resolve()
    return run_export(source, quant_types, out_dir, push_to=push_to, progress=progress, private=private,
                      trust_remote_code=trust_remote_code, min_agreement=thresholds, fallback=fallback_types)


def checked_out(out: str | None) -> Path | None:
    """The output folder asked for, resolved; like a training output_dir it must lie under the allowed roots."""
    if not out:
        return None
    from ..paths import outside_allowed_roots

    if why := outside_allowed_roots(out):
        raise ConfigError(f"The GGUF output folder {why}.", "Pass --out inside the current directory or $TUNEFORGE_HOME, "
                          "or add a parent of it to $TUNEFORGE_ALLOWED_ROOTS.", code="config.output_outside_roots",
                          details={"field": "out"})
    return Path(out).expanduser().resolve()


def default_out(name: str, job_id: str | None) -> Path:
    """A training job's outputs/gguf, else $TUNEFORGE_HOME/gguf/NAME."""
    from ..paths import home

    if job_id:
        from ..jobs.service import JobService

        outputs = JobService().store.get(job_id).outputs
        if outputs.get("output_dir"):
            return Path(outputs["output_dir"]) / "gguf"
    return home() / "gguf" / name


def submit_export(model: str | None = None, *, job_id: str | None = None, base: str | None = None,
                  quants: list[str] | str | None = None, push_to: str | None = None, flavor: str | None = None,
                  timeout_seconds: int | None = None, system_prompt: str | None = None,
                  private: bool | None = None, trust_remote_code: bool = False,
                  min_agreement: dict[str, float] | list[str] | str | None = None) -> "CloudExport":
    """The same export as a Hugging Face job (`--backend hf`) of a Hub model or a finished hf job's pushed model:
    answers at once with the job id, URL, flavor and what it will push."""
    from ..flavors import price_for
    from ..gguf import cloud, remote_code
    from ..gguf.hub import REPO_ID
    from ..gguf.quants import parse_min_agreement, parse_quants
    from ..jobs.service import JobService
    from ..jobs.workspace import job_folder
    from ..records import new_job_id

    quant_types = parse_quants(quants)
    thresholds = parse_min_agreement(min_agreement)
    require_push_target(push_to, "hf", example="your-name/model-name-GGUF", local_hint=", or export here with --backend local")
    assert push_to is not None
    if not REPO_ID.match(push_to):
        raise TuneforgeError(f"--push-to {push_to!r} is not a Hub repo id.", "Write it as owner/name, e.g. me/my-model-GGUF.",
                             code="gguf.bad_push_target")
    repo, base, system_prompt, source_job, prompts = cloud.cloud_ref(model, job_id, base, system_prompt)

    new_id = new_job_id()
    job_dir = job_folder(new_id)
    hub_model = cloud.inspect_hub_model(repo, base, job_dir)
    remote_code.check_hub(hub_model.remote_code, trust_remote_code=trust_remote_code)
    choice = cloud.choose_flavor(hub_model.n_params, adapter=hub_model.adapter, flavor=flavor)
    timeout = timeout_seconds or cloud.default_timeout(hub_model.n_params)
    config = cloud.export_config(hub_model, quant_types, push_to=push_to, private=private, system_prompt=system_prompt,
                                 timeout=timeout, source_job=source_job, choice=choice, eval_prompts=prompts)
    spec = cloud.stage_export(config, job_dir, new_id, choice.flavor, trust_remote_code=trust_remote_code,
                              min_agreement=thresholds)
    job = JobService().submit(spec, backend="hf", kind="gguf", export=config, price_per_hour=price_for(choice.flavor),
                              job_id=new_id, job_dir=job_dir)
    hours = timeout / 3600
    return cloud.CloudExport(
        job_id=job.job_id, backend="hf", stage=job.stage, url=job.url, backend_job_id=job.backend_job_id, job_dir=job.job_dir,
        flavor=job.flavor, timeout_seconds=timeout,
        max_cost_usd=None if job.price_per_hour is None else round(hours * job.price_per_hour, 2),
        warnings=[] if choice.checks == "full" else [cloud.checks_text(choice.checks)],
        next=f"tuneforge jobs wait {job.job_id}",
        model=repo, base_model=hub_model.base_model, push_to=push_to, quants=[q.name for q in quant_types],
        flavor_reason=choice.reason, files=[*cloud.file_names(config.name, quant_types).values(), "Modelfile", "README.md"],
    )


__all__ = ["export_gguf", "submit_export", "default_out"]
