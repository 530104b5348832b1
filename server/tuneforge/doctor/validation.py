"""`validate(source, method, model, max_length, eval_source, *, cache) -> DatasetReport`: the dataset doctor.

One streaming pass reads every row and keeps only bounded summaries (row_scan.py); from them each method
gets a verdict. With a model, a second pass renders every row with the model's own tokenizer and chat
template (token_measuring.py). The report is cached on disk (report_cache.py), so that planning and
submitting a run after validating read the data no more.
"""

from __future__ import annotations

import os
import time

from ..errors import TuneforgeError
from ..reports.dataset import DatasetReport
from ..types import METHODS, Method
from .chat_tokenizer import cached_spec, load_portable_spec
from .eval_check import check_eval
from .image_tokens import count_image_tokens
from .method_fit import METHOD_FOR_FORMAT
from .report_cache import cache_slot, read_cached, write_cached
from .row_scan import Scan
from .sources import Source, open_source
from .token_measuring import measure
from .worker_pool import Helper, task_name

PARALLEL_BYTES = 32 * 1024 * 1024  # from this size, tokens are measured by several processes
DEFAULT_MAX_LENGTH = 1024  # RunConfig.max_length's default
#: the helper-process task that loads the tokenizer while this process reads the data
LOAD_TASK = task_name(load_portable_spec)


def validate(source: str, method: str = "auto", model: str | None = None, max_length: int | None = None,
             eval_source: str | None = None, *, cache: bool = True) -> DatasetReport:
    """Read the whole dataset and say whether (and how) each training method can use it.

    With `cache` (the default) a report of the same unchanged files with the same arguments comes from
    $TUNEFORGE_HOME/cache/reports instead of reading the data again (see report_cache.py); a Hub dataset
    is always read. Pass cache=False to read the data whatever is cached (the result is then stored).
    """
    started_ns = time.time_ns()
    method = (method or "auto").strip().lower()
    if method not in ("auto", *METHODS):
        raise TuneforgeError(f"Unknown method {method!r}.", f"Use auto or one of: {', '.join(METHODS)}.",
                             code="dataset.unknown_method")
    if max_length is not None and not 16 <= int(max_length) <= 262144:
        raise TuneforgeError(f"max_length {max_length} is out of range.", "Use a value between 16 and 262144 tokens.",
                             code="dataset.max_length_out_of_range")
    src = open_source(source)
    eval_src = open_source(eval_source) if eval_source else None
    length = int(max_length or DEFAULT_MAX_LENGTH)
    slot = cache_slot(src, eval_src, method=method, model=model, max_length=length)
    if cache and slot is not None:
        cached = read_cached(slot)
        if cached is not None:  # the same files and model, perhaps named by other paths
            cached.source = src.label
            if cached.token_stats is not None and cached.token_stats.tokenizer is not None:
                cached.token_stats.tokenizer = model
            return cached
    report = _read_and_judge(src, eval_src, method, model, length)
    if slot is None and model:  # the tokenizer files are cached now: the key can pin them
        slot = cache_slot(src, eval_src, method=method, model=model, max_length=length)
    if slot is not None:
        write_cached(slot, report, started_ns)
    return report


def _read_and_judge(src: Source, eval_src: Source | None, method: str, model: str | None,
                    max_length: int) -> DatasetReport:
    workers = _workers(src) if model else 0
    loading: Helper | None = None
    spec = None
    if workers and model:  # the tokenizer from the disk cache, or loaded by a helper while this process reads the data
        spec = cached_spec(model)
        loading = Helper(LOAD_TASK, model) if spec is None else None
    try:
        scan = Scan(src)
        scan.run()
        report, fits = scan.report(method)
        if eval_src is not None:
            check_eval(report, scan, eval_src)
        primary = report.best_method() or METHOD_FOR_FORMAT.get(report.format, Method.SFT)
        fit = fits.get(primary)
        if model and report.rows and fit is not None and fit.fits:
            if loading is not None:
                spec, loading = loading.result(), None
            measured = measure(src, fit, model, max_length, scan.files, spec=spec, workers=workers)
            report.token_stats = measured.stats
            report.problems.extend(measured.problems(scan.files))
            if measured.blockers:
                verdict = report.methods[primary]
                verdict.status = "incompatible"
                verdict.reasons = measured.blockers + verdict.reasons
        elif model and report.rows:
            report.notes.append(f"Token lengths were not measured: the data does not fit {primary} yet.")
    finally:
        if loading is not None:
            loading.stop()
    if report.token_stats is None and report.rows and fit is not None and fit.fits:
        report.token_stats = scan.estimated_stats(primary, max_length)
    if report.images is not None and model and scan.images.sizes:
        count_image_tokens(report.images, model, dict(scan.images.sizes), dict(scan.images.row_sizes))
    report.ready = _ready(report)
    return report


def _workers(src: Source) -> int:
    """Extra processes for measuring tokens: none for small inputs (starting one costs a few seconds)."""
    size = src.size_bytes()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if size is None or size < PARALLEL_BYTES or cpus < 2:
        return 0
    return min(cpus, 4) - 1


def _ready(report: DatasetReport) -> bool:
    if report.error_count or not report.rows:
        return False
    if report.method == "auto":
        return any(v.status == "ready" for v in report.methods.values())
    return report.methods[report.method].status == "ready"
