"""Rows and tokens per row of a dataset: from the dataset doctor when it is available, else a cheap estimate.

The doctor (`tuneforge.doctor.validate`) reads the whole dataset with the model's tokenizer and reports
exact token statistics. Without it (not installed in this build, or it failed), local files are counted
row by row and tokens are estimated from the text of a sample of rows (about 4 characters per token
plus a few template tokens per message); the plan labels such numbers as estimates.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..errors import TuneforgeError

DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
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
    notes: list[str] = []


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def from_doctor(dataset: str, method: str, model: str | None, max_length: int | None) -> DatasetStats | None:
    """The doctor's exact counts, or None when it is not available or could not read the data."""
    try:
        from ..doctor import validate  # type: ignore[attr-defined]
    except ImportError:
        return None
    try:
        report = validate(dataset, method=method, model=model, max_length=max_length)
    except TuneforgeError as exc:
        return DatasetStats(rows=None, source="dataset doctor", notes=[f"The dataset doctor could not read the data: {exc.message}"])
    except Exception as exc:  # noqa: BLE001  (a doctor bug must not block planning)
        return DatasetStats(rows=None, source="dataset doctor", notes=[f"The dataset doctor failed ({type(exc).__name__}: {exc})."])
    rows = _get(report, "rows")
    stats = _get(report, "token_stats")
    if isinstance(rows, (list, tuple)):
        rows = len(rows)
    mean = _get(stats, "mean")
    if not _get(stats, "rows"):  # the doctor could not measure lengths (e.g. no chat template)
        mean = None
    estimated = mean is None or bool(_get(stats, "estimated"))
    counted_by = _get(stats, "tokenizer")
    if mean is None:
        source = "dataset doctor (rows only)"
    elif estimated:
        source = "dataset doctor (estimated from characters, no tokenizer)"
    else:
        source = f"dataset doctor (counted with the {counted_by or 'model'} tokenizer)"
    return DatasetStats(
        rows=int(rows) if rows is not None else None,
        mean_tokens=float(mean) if mean else None,
        p95_tokens=_float(_get(stats, "p95")),
        max_tokens=_float(_get(stats, "max")),
        source=source,
        estimated=estimated,
        notes=[f"Dataset doctor: {n}" for n in (_get(stats, "notes") or []) if mean is None],
    )


def _float(x: Any) -> float | None:
    return None if x is None else float(x)


# ---- cheap local estimate -------------------------------------------------------------------------
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


def _row_tokens(row: Any, method: str) -> float:
    if method in ("dpo", "reward") and isinstance(row, dict) and "chosen" in row and "rejected" in row:
        # one training sequence is prompt + one answer; the step runs both (counted by the planner)
        prompt = row.get("prompt", "")
        pc, pm = _text_chars(prompt)
        cc, cm = _text_chars(row["chosen"])
        rc, rm = _text_chars(row["rejected"])
        return (pc + max(cc, rc)) / CHARS_PER_TOKEN + TEMPLATE_TOKENS_PER_MESSAGE * max(2, pm + max(cm, rm))
    chars, msgs = _text_chars(row)
    return chars / CHARS_PER_TOKEN + TEMPLATE_TOKENS_PER_MESSAGE * max(2, msgs)


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in DATA_SUFFIXES)


def _scan_file(f: Path, method: str, sample: list[float]) -> int:
    suffix = f.suffix.lower()
    rows = 0
    if suffix == ".jsonl":
        with f.open("rb") as fh:
            for line_no, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                rows += 1
                if len(sample) < SAMPLE_ROWS:
                    try:
                        sample.append(_row_tokens(json.loads(raw), method))
                    except json.JSONDecodeError as exc:
                        raise TuneforgeError(f"{f}:{line_no}:{exc.colno}: invalid JSON: {exc.msg}.",
                                             "Fix that line, or run `tuneforge validate` on the file for a full report.") from None
        return rows
    if suffix == ".json":
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise TuneforgeError(f"{f}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}.", "Fix the JSON syntax at that position.") from None
        if isinstance(data, dict):  # {"data": [...]} / {"train": [...]}
            lists = [v for v in data.values() if isinstance(v, list)]
            data = lists[0] if len(lists) == 1 else [data]
        if not isinstance(data, list):
            data = [data]
        sample.extend(_row_tokens(r, method) for r in data[: max(0, SAMPLE_ROWS - len(sample))])
        return len(data)
    if suffix == ".csv":
        with f.open("r", encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                rows += 1
                if len(sample) < SAMPLE_ROWS:
                    sample.append(_row_tokens(dict(row), method))
        return rows
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise TuneforgeError(f"Counting the rows of {f} needs pyarrow, which is not installed.",
                                 "pip install pyarrow (or pass --rows N).") from None
        pf = pq.ParquetFile(str(f))
        rows = pf.metadata.num_rows
        if len(sample) < SAMPLE_ROWS and rows:
            for batch in pf.iter_batches(batch_size=min(SAMPLE_ROWS - len(sample), 512)):
                sample.extend(_row_tokens(r, method) for r in batch.to_pylist())
                break
        return rows
    raise TuneforgeError(f"{f} is not a .jsonl, .json, .csv or .parquet file.", "Convert the data to JSON Lines (.jsonl).")


def estimate_local(dataset: str, method: str) -> DatasetStats:
    path = Path(dataset).expanduser()
    files = _files(path)
    if not files:
        raise TuneforgeError(f"No .jsonl/.json/.csv/.parquet files in {path}.", "Point --dataset at a data file or a folder of them.")
    sample: list[float] = []
    rows = 0
    for f in files:
        try:
            rows += _scan_file(f, method, sample)
        except UnicodeDecodeError as exc:
            raise TuneforgeError(f"{f} is not UTF-8 text (byte {exc.start}).", "Save the data as UTF-8.") from None
    if rows == 0:
        raise TuneforgeError(f"The dataset {dataset} has no rows.", "Add training examples (one JSON object per line for .jsonl).")
    ordered = sorted(sample)
    mean = sum(ordered) / len(ordered) if ordered else None
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else None
    return DatasetStats(
        rows=rows, mean_tokens=round(mean, 1) if mean else None, p95_tokens=round(p95, 1) if p95 else None,
        max_tokens=round(ordered[-1], 1) if ordered else None,
        source=f"estimated: rows counted, tokens ≈ characters / {CHARS_PER_TOKEN} + {TEMPLATE_TOKENS_PER_MESSAGE} per message"
               f" over {len(sample)} sampled rows",
        estimated=True,
    )


def dataset_stats(dataset: str | None, *, method: str, model: str | None, max_length: int | None,
                  rows: int | None = None, use_doctor: bool = True) -> DatasetStats:
    """Rows and token statistics for planning. `rows` overrides the row count."""
    if rows is not None and rows <= 0:
        raise TuneforgeError(f"rows must be positive (got {rows}).", "Pass --rows with the number of training examples, or omit it.")
    notes: list[str] = []
    stats: DatasetStats | None = None
    if dataset:
        if use_doctor:
            stats = from_doctor(dataset, method, model, max_length)
            if stats is not None and stats.rows is None:
                notes.extend(stats.notes)
                stats = None
        if stats is not None and stats.mean_tokens is None and Path(dataset).expanduser().exists():
            notes.extend(stats.notes)
            estimate = estimate_local(dataset, method)
            stats = estimate.model_copy(update={"rows": stats.rows or estimate.rows,
                                                "source": f"rows from the dataset doctor; tokens {estimate.source}"})
        if stats is None:
            path = Path(dataset).expanduser()
            if path.exists():
                stats = estimate_local(dataset, method)
            elif rows is None:
                notes.append(f"{dataset} is not a local file and the dataset doctor is not available to read it from the Hub: "
                             "the row count is unknown (pass --rows N for a time and cost estimate).")
                stats = DatasetStats(rows=None, source="unknown")
            else:
                stats = DatasetStats(rows=rows, source="rows given")
    else:
        stats = DatasetStats(rows=rows, source="rows given" if rows else "no dataset given")
    if stats.rows == 0:
        raise TuneforgeError(f"The dataset {dataset} has no rows.", "Add training examples, or fix the column mapping (`tuneforge validate`).")
    if rows is not None and stats.source != "rows given":
        stats = stats.model_copy(update={"rows": rows, "source": stats.source + "; rows given"})
    stats.notes = notes + stats.notes
    return stats
