"""General-ability benchmarks with EleutherAI's lm-evaluation-harness, base and tuned side by side.

`run_benchmarks(models, benchmarks)` runs `python -m lm_eval run --model hf --model_args
pretrained=PATH[,peft=ADAPTER]` once per model in a subprocess (this process never imports torch or
lm_eval), reads the harness's results JSON from a temporary folder and returns a `BenchmarkReport`: the
scores per model and the change per benchmark against the first model (the base).

Benchmark names are checked before anything runs, against the task YAML files shipped with lm_eval
and those under `task_dir` (passed to the harness as `--include_path`; the harness runs with
`task_dir` as its working directory, so a task's relative `data_files` are relative to that folder).
"""

from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import MissingDependency, TuneforgeError
from .log_lines import clean_lines, failure_cause
from .reports.benchmarks import BenchmarkChange, BenchmarkModel, BenchmarkReport, BenchmarkScore, ModelBenchmarks

#: a task, group or tag name declared in a harness YAML file
_DECLARED = re.compile(r"^(?:task|group|tag)[ \t]*:[ \t]*['\"]?([A-Za-z0-9_.\-]+)", re.M)
_DECLARED_LIST_ITEM = re.compile(r"^tag[ \t]*:[ \t]*\n((?:[ \t]+-[ \t]*\S+[ \t]*\n?)+)", re.M)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: result keys that are not metrics
_NOT_METRICS = {"alias", "name", "sample_len", " ", ""}

Progress = Callable[[str], None]


def lm_eval_version() -> str | None:
    try:
        return importlib.metadata.version("lm_eval")
    except importlib.metadata.PackageNotFoundError:
        return None


def require_lm_eval(*, peft: bool = False) -> None:
    """The harness and what its `hf` model needs are installed (checked without importing them)."""
    if importlib.util.find_spec("lm_eval") is None:
        raise TuneforgeError(
            "Benchmarks run EleutherAI's lm-evaluation-harness (the Python package 'lm-eval'), which is not installed.",
            "Install the extra: pip install 'tuneforge[eval]' (on CPU-only machines install torch==2.13.0 first).",
            code="eval.lm_eval_missing")
    for package in ("torch", "transformers") + (("peft",) if peft else ()):
        if importlib.util.find_spec(package) is None:
            raise MissingDependency(package, "train")


def _task_roots(task_dir: Path | None) -> list[Path]:
    roots = []
    spec = importlib.util.find_spec("lm_eval")
    if spec is not None and spec.submodule_search_locations:
        roots.append(Path(list(spec.submodule_search_locations)[0]) / "tasks")
    if task_dir is not None:
        roots.append(task_dir)
    return roots


def known_benchmarks(task_dir: Path | None = None) -> set[str]:
    """Every task, group and tag name the harness's YAML files declare (lm_eval's own and task_dir's)."""
    names: set[str] = set()
    for root in _task_roots(task_dir):
        for path in root.rglob("*.yaml"):
            try:
                text = path.read_text(encoding="utf-8", errors="ignore")
            except OSError:
                continue
            names.update(_DECLARED.findall(text))
            for block in _DECLARED_LIST_ITEM.findall(text):
                names.update(item.strip().lstrip("-").strip() for item in block.splitlines() if item.strip())
    return names


def parse_benchmarks(benchmarks: Iterable[str] | str) -> list[str]:
    items = benchmarks.split(",") if isinstance(benchmarks, str) else [x for b in benchmarks for x in str(b).split(",")]
    out = list(dict.fromkeys(x.strip() for x in items if x.strip()))
    if not out:
        raise TuneforgeError("No benchmarks named.", "Pass benchmark names, for example --benchmarks hellaswag,arc_easy,gsm8k.",
                             code="eval.no_benchmarks")
    return out


def check_benchmarks(benchmarks: list[str], task_dir: Path | None = None) -> None:
    """Refuse names the harness does not know, with the nearest known names, before any model loads."""
    if task_dir is not None and not task_dir.is_dir():
        raise TuneforgeError(f"The task folder {task_dir} does not exist.", "Pass a folder of lm-eval task YAML files.",
                             code="eval.task_dir_not_found")
    known = known_benchmarks(task_dir)
    unknown = [b for b in benchmarks if b not in known]
    if unknown:
        hints = {b: difflib.get_close_matches(b, known, n=3) for b in unknown}
        hint = "; ".join(f"{b}: did you mean {', '.join(h)}?" for b, h in hints.items() if h)
        raise TuneforgeError(
            f"lm-evaluation-harness has no benchmark named {', '.join(map(repr, unknown))}.",
            (hint + " " if hint else "") + "List them with `python -m lm_eval ls tasks`; for your own tasks pass a folder of task YAML files (task_dir / --benchmark-tasks).",
            code="eval.unknown_benchmark", details={"unknown": unknown, "suggestions": hints})


def model_of(ref: str | Path | BenchmarkModel, label: str | None = None) -> BenchmarkModel:
    """A model folder, a LoRA adapter folder (its base from adapter_config.json) or a Hub id, as the harness loads it."""
    if isinstance(ref, BenchmarkModel):
        return ref
    text = str(ref)
    path = Path(text).expanduser()
    if path.is_dir():
        path = path.resolve()
        if (path / "adapter_config.json").is_file():
            try:
                base = json.loads((path / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
            except (OSError, ValueError):
                base = None
            if not base:
                raise TuneforgeError(f"The adapter in {path} does not name its base model (adapter_config.json has no base_model_name_or_path).",
                                     "Pass the base model and the adapter as a BenchmarkModel(pretrained=BASE, peft=ADAPTER).",
                                     code="eval.base_not_found")
            base_path = Path(base).expanduser()
            pretrained = str(base_path.resolve()) if base_path.is_dir() else str(base)
            return BenchmarkModel(label=label or path.name, pretrained=pretrained, peft=str(path))
        if (path / "config.json").is_file():
            return BenchmarkModel(label=label or path.name, pretrained=str(path))
        raise TuneforgeError(f"{path} is not a model folder: it has neither config.json (a model) nor adapter_config.json (a LoRA adapter).",
                             "Point at the folder save_pretrained wrote, or pass a finished job's id.", code="eval.not_a_model")
    if _HUB_ID.match(text):
        return BenchmarkModel(label=label or text, pretrained=text)
    raise TuneforgeError(f"{text!r} is not a model folder here and not a Hub id.",
                         "Pass a model folder, a LoRA adapter folder, a Hub id (owner/name) or a finished training job's id.",
                         code="eval.model_not_found")


def harness_command(model: BenchmarkModel, benchmarks: list[str], out_dir: Path, *, limit: int | None,
                    task_dir: Path | None, num_fewshot: int | None = None, batch_size: int | str = 8,
                    device: str | None = None) -> list[str]:
    for value in (model.pretrained, model.peft or ""):
        if "," in value or "=" in Path(value).name:
            raise TuneforgeError(f"{value!r} has a comma or '=' in it, which lm-eval's --model_args cannot carry.",
                                 "Copy or link the model to a folder whose path has no ',' or '='.", code="eval.bad_model_path")
    model_args = f"pretrained={model.pretrained}" + (f",peft={model.peft}" if model.peft else "")
    cmd = [sys.executable, "-m", "lm_eval", "run", "--model", "hf", "--model_args", model_args,
           "--tasks", ",".join(benchmarks), "--batch_size", str(batch_size), "--output_path", str(out_dir)]
    if limit is not None:
        cmd += ["--limit", str(int(limit))]
    if task_dir is not None:
        cmd += ["--include_path", str(task_dir)]
    if num_fewshot is not None:
        cmd += ["--num_fewshot", str(int(num_fewshot))]
    if device:
        cmd += ["--device", device]
    return cmd


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def parse_results(data: dict, benchmarks: list[str]) -> list[BenchmarkScore]:
    """The scores in one harness results JSON: the benchmarks asked for (a tag's tasks when the tag has no row)."""
    results: dict = data.get("results") or {}
    keys = [b for b in benchmarks if b in results]
    for b in benchmarks:
        if b not in results:
            members = (data.get("group_subtasks") or {}).get(b) or [k for k in results if k not in keys]
            keys += [k for k in members if k in results and k not in keys]
    higher = data.get("higher_is_better") or {}
    samples = data.get("n-samples") or {}
    scores = []
    for key in keys:
        row = results[key]
        n = (samples.get(key) or {}).get("effective") if isinstance(samples.get(key), dict) else row.get("sample_len")
        for name, value in row.items():
            if name in _NOT_METRICS or "_stderr," in name or name.endswith("_stderr"):
                continue
            metric, _, filt = name.partition(",")
            if _number(value) is None and not isinstance(value, (int, float)):
                continue
            scores.append(BenchmarkScore(
                benchmark=key, metric=metric, filter=filt or "none", value=_number(value),
                stderr=_number(row.get(f"{metric}_stderr,{filt}" if filt else f"{metric}_stderr")),
                higher_is_better=(higher.get(key) or {}).get(metric), samples=n if isinstance(n, int) else None))
    return scores


def compare(models: list[ModelBenchmarks]) -> list[BenchmarkChange]:
    """The change of every later model against the first, per benchmark and metric both have."""
    if len(models) < 2:
        return []
    base, changes = models[0], []
    for other in models[1:]:
        for s in base.scores:
            t = other.score(s.benchmark, s.metric, s.filter)
            if t is None:
                continue
            change = t.value - s.value if t.value is not None and s.value is not None else None
            stderr = math.sqrt(s.stderr ** 2 + t.stderr ** 2) if s.stderr is not None and t.stderr is not None else None
            hib = s.higher_is_better if s.higher_is_better is not None else t.higher_is_better
            worse = None if change is None or hib is None else (change < 0 if hib else change > 0)
            changes.append(BenchmarkChange(benchmark=s.benchmark, metric=s.metric, filter=s.filter, base_label=base.model.label,
                                           label=other.model.label, base=s.value, tuned=t.value, change=change,
                                           stderr=stderr, higher_is_better=hib, worse=worse))
    return changes


def _harness_error(log: Path) -> str:
    lines = clean_lines(log.read_text(encoding="utf-8", errors="replace").splitlines()) if log.is_file() else []
    cause = failure_cause(lines)
    if cause:
        return cause
    errors = [x for x in lines if " ERROR " in x or x.startswith(("ERROR", "error:"))]
    return (errors or lines or ["(the harness wrote nothing)"])[-1][:500]


def run_one(model: BenchmarkModel, benchmarks: list[str], work: Path, *, limit: int | None, task_dir: Path | None,
            num_fewshot: int | None = None, batch_size: int | str = 8, device: str | None = None,
            timeout_s: float | None = None) -> ModelBenchmarks:
    """One harness run in a subprocess; its results JSON parsed."""
    out_dir = work / re.sub(r"[^\w.-]+", "_", model.label)[:80]
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = harness_command(model, benchmarks, out_dir, limit=limit, task_dir=task_dir, num_fewshot=num_fewshot,
                          batch_size=batch_size, device=device)
    log = out_dir / "lm_eval.log"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as sink:
        try:
            proc = subprocess.run(cmd, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                  cwd=str(task_dir) if task_dir is not None else str(work), timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise TuneforgeError(f"lm-eval on {model.label} ran past {timeout_s:.0f} s and was stopped.",
                                 "Pass a smaller --limit, fewer benchmarks or a longer timeout.", code="eval.benchmark_timeout") from None
    found = sorted(out_dir.rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    if proc.returncode != 0 or not found:
        cause = _harness_error(log)
        raise TuneforgeError(f"lm-eval failed on {model.label} (exit {proc.returncode}): {cause}",
                             "Read the cause above; run the same benchmarks with a small --limit to check quickly.",
                             code="eval.benchmark_failed", details={"model": model.model_dump(), "command": cmd, "cause": cause})
    data = json.loads(found[-1].read_text(encoding="utf-8"))
    return ModelBenchmarks(model=model, scores=parse_results(data, benchmarks), seconds=round(time.monotonic() - started, 2))


def run_benchmarks(models: list[str | Path | BenchmarkModel], benchmarks: list[str] | str, *, limit: int | None = None,
                   task_dir: Path | None = None, num_fewshot: int | None = None, batch_size: int | str = 8,
                   device: str | None = None, timeout_s: float | None = None,
                   progress: Progress | None = None) -> BenchmarkReport:
    """Run lm-evaluation-harness on each model (the first is the base) and report the change per benchmark.

    `models`: model folders, LoRA adapter folders (run as `pretrained=BASE,peft=ADAPTER`), Hub ids or
    `BenchmarkModel`s. `limit`: documents per benchmark (None: all). `task_dir`: a folder of task YAML
    files for benchmarks of your own (lm-eval's `--include_path`).
    """
    names = parse_benchmarks(benchmarks)
    if not models:
        raise TuneforgeError("No models to benchmark.", "Pass the base model and the tuned model (or a finished job).",
                             code="eval.no_models")
    resolved = [model_of(m) for m in models]
    require_lm_eval(peft=any(m.peft for m in resolved))
    task_dir = Path(task_dir).expanduser().resolve() if task_dir is not None else None
    check_benchmarks(names, task_dir)
    started = time.monotonic()
    rows = []
    with tempfile.TemporaryDirectory(prefix="tuneforge-lm-eval-") as tmp:
        for i, model in enumerate(resolved):
            if progress:
                progress(f"lm-eval {i + 1}/{len(resolved)}: {model.label} on {', '.join(names)}")
            rows.append(run_one(model, names, Path(tmp) / str(i), limit=limit, task_dir=task_dir, num_fewshot=num_fewshot,
                                batch_size=batch_size, device=device, timeout_s=timeout_s))
    notes = [f"limit {limit}: a quick look, not the benchmark's published figure"] if limit is not None else []
    return BenchmarkReport(benchmarks=names, limit=limit, num_fewshot=num_fewshot, models=rows, changes=compare(rows),
                           lm_eval_version=lm_eval_version(), seconds=round(time.monotonic() - started, 2), notes=notes)
