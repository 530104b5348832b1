"""Forgetting, checked: lm-evaluation-harness benchmarks on the base and the tuned model side by side.

    from tuneforge.actions.benchmark import compare_benchmarks
    report = compare_benchmarks(["tf-20261201-..."], "hellaswag,arc_easy,gsm8k", limit=200)
    for c in report.changes: print(c.benchmark, c.metric, c.base, c.tuned, c.change)

Each model is a model folder, a LoRA adapter folder, a Hub id or a finished training job's id (or a
unique prefix of one). When one tuned model is given (an adapter or a job), its base model is put in
front, so the report always reads base -> tuned. Runs locally (the harness in a subprocess).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import TuneforgeError
from ..types import Stage

if TYPE_CHECKING:
    from ..reports.benchmarks import BenchmarkModel, BenchmarkReport


def job_model(job_id: str) -> tuple["BenchmarkModel", "BenchmarkModel"]:
    """A finished training job as (base, tuned): its adapter runs as `pretrained=BASE,peft=ADAPTER`."""
    from ..benchmarks import model_of
    from ..jobs.service import JobService
    from ..reports.benchmarks import BenchmarkModel

    job = JobService().store.get(job_id)
    if job.kind != "train":
        raise TuneforgeError(f"Job {job.job_id} is a {job.kind} job, not a training job.", "Pass the id of a training job.",
                             code="eval.not_a_training_job")
    if job.stage != Stage.COMPLETED:
        raise TuneforgeError(f"Job {job.job_id} is {job.stage}, so it has no finished model to benchmark.",
                             f"Wait for it with `tuneforge jobs wait {job.job_id}`." if not job.terminal else "Benchmark a job that COMPLETED.",
                             code="eval.job_not_finished")
    result = job.outputs.get("result") or {}
    out_dir = job.outputs.get("output_dir") or (job.config.output_dir if job.config else None)
    candidates = [result.get("adapter_dir"), result.get("merged_dir"), result.get("model_dir")]
    if out_dir:
        candidates += [str(Path(out_dir) / sub) for sub in ("adapter", "merged", "model")]
    folder = next((Path(c).resolve() for c in candidates if c and Path(c).is_dir()), None)
    if folder is None:
        raise TuneforgeError(f"Job {job.job_id} finished but its model folder is missing (looked in {out_dir}).",
                             "The job's outputs may have been moved or deleted; pass the model folder directly.",
                             code="eval.job_model_missing")
    base_ref = result.get("base_model") or (job.config.model if job.config else None)
    if not base_ref:
        raise TuneforgeError(f"Job {job.job_id} does not record its base model.", "Pass the base model and the tuned folder directly.",
                             code="eval.base_not_found")
    base = model_of(base_ref, label="base")
    if (folder / "adapter_config.json").is_file():
        tuned = BenchmarkModel(label=job.job_id, pretrained=base.pretrained, peft=str(folder), job_id=job.job_id)
    else:
        tuned = model_of(folder, label=job.job_id).model_copy(update={"job_id": job.job_id})
    return base, tuned


def resolve_models(models: Iterable[str | Path]) -> list["BenchmarkModel"]:
    """Folders, adapter folders, Hub ids and job ids as the harness loads them; a lone tuned model gets its base in front."""
    from ..benchmarks import model_of

    refs = [m for m in models if str(m).strip()]
    if not refs:
        raise TuneforgeError("No models to benchmark.", "Pass a finished job's id, or the base model and the tuned model.",
                             code="eval.no_models")
    resolved, bases = [], []
    for ref in refs:
        text = str(ref).strip()
        if not Path(text).expanduser().exists() and text.startswith("tf-"):
            base, tuned = job_model(text)
            resolved.append(tuned)
            bases.append(base)
        else:
            m = model_of(text)
            resolved.append(m)
            bases.append(model_of(m.pretrained, label="base") if m.peft else None)
    if len(resolved) == 1:
        if bases[0] is None:
            raise TuneforgeError("One full model alone has nothing to be compared with.",
                                 "Pass the base model first and the tuned model after it, or a job id or adapter folder (its base is found).",
                                 code="eval.nothing_to_compare")
        resolved.insert(0, bases[0])
    return resolved


def compare_benchmarks(models: Iterable[str | Path], benchmarks: list[str] | str, *, limit: int | None = None,
                       task_dir: str | Path | None = None, num_fewshot: int | None = None, batch_size: int | str = 8,
                       device: str | None = None, timeout_s: float | None = None, progress=None) -> "BenchmarkReport":
    """lm-evaluation-harness on every model (the first is the base); the change per benchmark in `report.changes`.

    Errors (codes): eval.lm_eval_missing (install tuneforge[eval]), eval.unknown_benchmark,
    eval.benchmark_failed (the harness's last error line), eval.model_not_found, eval.job_not_finished,
    eval.nothing_to_compare, eval.no_benchmarks.
    """
    from ..benchmarks import check_benchmarks, parse_benchmarks, require_lm_eval, run_benchmarks

    names = parse_benchmarks(benchmarks)
    task_path = Path(task_dir).expanduser().resolve() if task_dir is not None else None
    require_lm_eval()
    check_benchmarks(names, task_path)  # refused before any job is looked up or any model loads
    resolved = resolve_models(models)
    return run_benchmarks(resolved, names, limit=limit, task_dir=task_path, num_fewshot=num_fewshot,
                          batch_size=batch_size, device=device, timeout_s=timeout_s, progress=progress)
