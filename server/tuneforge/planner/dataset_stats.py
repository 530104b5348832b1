"""Rows and tokens per row of a dataset, for planning: from the dataset doctor, the one reader of data files.

The doctor (`tuneforge.doctor.validate`, its report cached by the files' identity) reads the whole dataset
with the model's tokenizer and reports exact token statistics. When it cannot measure them (no tokenizer
or chat template for the model, or the data does not fit the method yet), the rows the doctor reads are
estimated here: about 4 characters per token plus a few template tokens per message, over a sample; the
plan labels such numbers as estimates.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..errors import TuneforgeError
from ..reports.dataset import DatasetReport
from ..types import Method

CHARS_PER_TOKEN = 4.0
TEMPLATE_TOKENS_PER_MESSAGE = 5
SAMPLE_ROWS = 2000


class DatasetStats(BaseModel):
    rows: int | None
    mean_tokens: float | None = None
    p95_tokens: float | None = None
    max_tokens: float | None = None
    source: str
    estimated: bool = True
    images_per_row: float | None = None  # vision-language data: the most images one row holds
    image_tokens_per_row: float | None = None  # the most image tokens one row holds (the model's processor)
    mean_image_tokens: float | None = None
    notes: list[str] = []


# ---- the doctor ------------------------------------------------------------------------------------
def dataset_rows(dataset: str) -> Iterator[dict[str, Any]]:
    """Every row of a dataset as the doctor reads it; an unreadable line is an error naming it.

    Adapter over the doctor's reader (its package exports only `validate` and the report types)."""
    from ..doctor.row_records import ReadError
    from ..doctor.sources import open_source

    for item in open_source(dataset).records():
        if isinstance(item, ReadError):
            where = f"{item.file}:{item.line}" if item.file else f"{dataset}:{item.line}" if item.line else dataset
            raise TuneforgeError(f"{where}: {item.message}",
                                 "Fix that line, or run `tuneforge validate` on the data for a full report.",
                                 code="dataset.parse_error")
        yield item.value


def from_doctor(dataset: str, method: str, model: str | None, max_length: int | None) -> DatasetStats:
    """The doctor's counts; rows None (with a note saying why) when it could not read the data."""
    from ..doctor import validate

    try:
        report = validate(dataset, method=method, model=model, max_length=max_length)
    except TuneforgeError as exc:
        return DatasetStats(rows=None, source="dataset doctor", notes=[f"The dataset doctor could not read the data: {exc.message}"])
    except Exception as exc:  # noqa: BLE001  (a doctor bug must not block planning: the estimate takes over)
        return DatasetStats(rows=None, source="dataset doctor", notes=[f"The dataset doctor failed ({type(exc).__name__}: {exc})."])
    return stats_from_report(report)


def stats_from_report(report: DatasetReport) -> DatasetStats:
    """Planning numbers from a doctor's report (token means only when it measured some rows)."""
    stats = report.token_stats
    measured = stats is not None and stats.rows > 0
    if not measured:
        source = "dataset doctor (rows only)"
    elif stats.estimated:
        source = "dataset doctor (estimated from characters, no tokenizer)"
    else:
        source = f"dataset doctor (counted with the {stats.tokenizer or 'model'} tokenizer)"
    images = report.images
    counted = images is not None and images.image_tokens is not None and report.rows
    return DatasetStats(
        images_per_row=float(images.max_per_row) if images is not None else None,
        image_tokens_per_row=float(images.max_row_image_tokens or 0) if counted else None,
        mean_image_tokens=images.image_tokens / report.rows if counted else None,
        rows=report.rows,
        mean_tokens=float(stats.mean) if measured and stats.mean else None,
        p95_tokens=float(stats.p95) if measured else None,
        max_tokens=float(stats.max) if measured else None,
        source=source,
        estimated=not measured or stats.estimated,
        notes=[] if measured or stats is None else [f"Dataset doctor: {n}" for n in stats.notes],
    )


# ---- estimating tokens from the rows ---------------------------------------------------------------
def _text_chars(value: Any) -> tuple[int, int]:
    """(characters of text, number of chat messages) in a row, recursively."""
    if isinstance(value, str):
        return len(value), 0
    if isinstance(value, dict):
        chars, msgs = 0, 1 if ("role" in value or "from" in value) else 0
        for k, v in value.items():
            if k in ("role", "from"):
                continue
            c, m = _text_chars(v)
            chars, msgs = chars + c, msgs + m
        return chars, msgs
    if isinstance(value, (list, tuple)):
        chars = msgs = 0
        for v in value:
            c, m = _text_chars(v)
            chars, msgs = chars + c, msgs + m
        return chars, msgs
    return 0, 0


def row_tokens(row: Any, method: str) -> float:
    """Estimated tokens of one training sequence of a row (a preference pair: prompt + the longer answer)."""
    if method in (Method.DPO, Method.REWARD) and isinstance(row, dict) and "chosen" in row and "rejected" in row:
        # one training sequence is prompt + one answer; the step runs both (counted by the planner)
        pc, pm = _text_chars(row.get("prompt", ""))
        cc, cm = _text_chars(row["chosen"])
        rc, rm = _text_chars(row["rejected"])
        return (pc + max(cc, rc)) / CHARS_PER_TOKEN + TEMPLATE_TOKENS_PER_MESSAGE * max(2, pm + max(cm, rm))
    chars, msgs = _text_chars(row)
    return chars / CHARS_PER_TOKEN + TEMPLATE_TOKENS_PER_MESSAGE * max(2, msgs)


def estimate_local(dataset: str, method: str, *, count_rows: bool = True) -> DatasetStats:
    """Rows counted and tokens estimated over a sample of the rows the doctor reads. Without `count_rows`
    only the sample is read (when the doctor already counted the rows)."""
    sample: list[float] = []
    rows = 0
    for row in dataset_rows(dataset):
        rows += 1
        if len(sample) < SAMPLE_ROWS:
            sample.append(row_tokens(row, method))
        elif not count_rows:
            break
    if rows == 0:
        raise TuneforgeError(f"The dataset {dataset} has no rows.", "Add training examples (one JSON object per line for .jsonl).",
                             code="dataset.empty")
    ordered = sorted(sample)
    mean = sum(ordered) / len(ordered)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return DatasetStats(
        rows=rows if count_rows else None, mean_tokens=round(mean, 1) if mean else None,
        p95_tokens=round(p95, 1) if p95 else None, max_tokens=round(ordered[-1], 1),
        source=f"estimated: rows counted, tokens ≈ characters / {CHARS_PER_TOKEN} + {TEMPLATE_TOKENS_PER_MESSAGE} per message"
               f" over {len(sample)} sampled rows",
        estimated=True,
    )


def dataset_stats(dataset: str | None, *, method: str, model: str | None, max_length: int | None,
                  rows: int | None = None, use_doctor: bool = True, report: DatasetReport | None = None) -> DatasetStats:
    """Rows and token statistics for planning. `rows` overrides the row count; without `use_doctor` the
    doctor's full pass is skipped and a local dataset's rows are estimated directly; `report` is the doctor's
    report on `dataset` when the caller already read it."""
    if rows is not None and rows <= 0:
        raise TuneforgeError(f"rows must be positive (got {rows}).", "Pass --rows with the number of training examples, or omit it.",
                             code="plan.invalid_rows")
    notes: list[str] = []
    stats: DatasetStats | None = None
    if dataset:
        is_local = Path(dataset).expanduser().exists()
        if use_doctor:
            stats = stats_from_report(report) if report is not None else from_doctor(dataset, method, model, max_length)
            if stats.rows is None:
                notes.extend(stats.notes)
                stats = None
        if stats is not None and stats.mean_tokens is None and is_local:
            notes.extend(stats.notes)
            estimate = estimate_local(dataset, method, count_rows=False)
            stats = estimate.model_copy(update={"rows": stats.rows,
                                                "source": f"rows from the dataset doctor; tokens {estimate.source}"})
        if stats is None:
            if is_local:
                stats = estimate_local(dataset, method)
            elif rows is None:
                notes.append(f"{dataset} could not be read here (not a local file, and the Hub was not reachable): "
                             "the row count is unknown.")
                stats = DatasetStats(rows=None, source="unknown")
            else:
                stats = DatasetStats(rows=rows, source="rows given")
    else:
        stats = DatasetStats(rows=rows, source="rows given" if rows else "no dataset given")
    if stats.rows == 0:
        raise TuneforgeError(f"The dataset {dataset} has no rows.", "Add training examples, or fix the column mapping (`tuneforge validate`).",
                             code="dataset.empty")
    if rows is not None and stats.source != "rows given":
        stats = stats.model_copy(update={"rows": rows, "source": stats.source + "; rows given"})
    stats.notes = notes + stats.notes
    return stats
