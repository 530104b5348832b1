"""A training template's data: local files or a Hub dataset, column_map, splits, rows mapped to the method's shape.

`datasets` is imported inside the functions that read data, so a bad config fails before the slow imports.
"""

from __future__ import annotations

from pathlib import Path

from _events import emit, fail
from _shared.data_files import DataFilesError, csv_delimiter, data_files
from _shared.roles import ROLE_ALIASES



def load_rows(ref: str, split: str, subset: str | None):
    from datasets import load_dataset

    p = Path(ref)
    if p.exists():
        try:
            files, kind, _notes = data_files(p)
        except DataFilesError as exc:
            fail(str(exc))
        extra = {"delimiter": csv_delimiter(files)} if kind == "csv" else {}
        return load_dataset(kind, data_files=[str(f) for f in files], split="train", **extra)
    return load_dataset(ref, subset, split=split)


def apply_column_map(ds, column_map: dict):
    """Rename source columns to the names the trainer reads (column_map is target -> source), first of all."""
    missing = sorted(s for s in column_map.values() if s not in ds.column_names)
    if missing:
        fail(f"column_map names columns the data lacks: {missing}; its columns are {ds.column_names}")
    renames = {s: t for t, s in column_map.items() if s != t}
    shadowed = [t for t in renames.values() if t in ds.column_names and t not in renames]
    if shadowed:  # the mapped column wins over a same-named one
        ds = ds.remove_columns(shadowed)
    return ds.rename_columns(renames) if renames else ds


def load_splits(dcfg: dict, seed: int, map_columns: bool = True):
    """(train, eval or None); eval from eval_path, eval_split or eval_fraction. With map_columns, column_map
    is applied first (SFT applies it row by row instead)."""
    column_map = (dcfg.get("column_map") or {}) if map_columns else {}
    train = apply_column_map(load_rows(dcfg["path"], dcfg.get("split") or "train", dcfg.get("subset")), column_map)
    evals = None
    if dcfg.get("eval_path"):
        evals = load_rows(dcfg["eval_path"], dcfg.get("split") or "train", dcfg.get("subset"))
    elif dcfg.get("eval_split"):
        evals = load_rows(dcfg["path"], dcfg["eval_split"], dcfg.get("subset"))
    elif float(dcfg.get("eval_fraction") or 0) > 0 and len(train) >= 10:
        parts = train.train_test_split(test_size=float(dcfg["eval_fraction"]), seed=seed)
        return parts["train"], parts["test"]
    if evals is not None:
        evals = apply_column_map(evals, column_map) if len(evals) else None
    return train, evals


def map_splits(fn, train, evals, tokenizer, cfg: dict, desc: str, remove_columns: bool = True):
    """fn(row, chat, system_prompt) over the train and eval rows; chat: the model has a chat template."""
    kwargs = {"fn_kwargs": {"chat": bool(getattr(tokenizer, "chat_template", None)), "system_prompt": cfg.get("system_prompt")},
              "desc": desc}
    train_ds = train.map(fn, remove_columns=train.column_names if remove_columns else None, **kwargs)
    eval_ds = None
    if evals is not None:
        eval_ds = evals.map(fn, remove_columns=evals.column_names if remove_columns else None, **kwargs)
    return train_ds, eval_ds


def load_method_rows(fn, cfg: dict, tokenizer, seed: int, *, method: str, what: str, needs: str, desc: str,
                noun: str = "rows", remove_columns: bool = True):
    """load_splits, then fn over each row (map_splits); rows that do not fit the method stop the run with what it needs."""
    emit("status", message="loading data")
    train_raw, eval_raw = load_splits(cfg["dataset"], seed)
    try:
        train_ds, eval_ds = map_splits(fn, train_raw, eval_raw, tokenizer, cfg, desc, remove_columns)
    except KeyError as exc:
        fail(f"dataset rows do not fit {what}: {exc.args[0]}. {needs}; "
             f"run `tuneforge validate --method {method}` on the data and use its column_map.")
    if len(train_ds) == 0:
        fail(f"no training {noun}; run `tuneforge validate --method {method}` on the data")
    return train_ds, eval_ds


def norm_messages(msgs: list) -> list[dict]:
    """Chat turns as {role, content}; ShareGPT's from/value and role aliases (human, gpt) accepted."""
    out = []
    for m in msgs:
        role = m.get("role") or m.get("from")
        out.append({"role": ROLE_ALIASES.get(str(role), str(role)), "content": str(m.get("content") or m.get("value") or "")})
    return out


def to_preference(row: dict, chat: bool, system_prompt: str | None) -> dict:
    """One preference row -> prompt/chosen/rejected as TRL reads them (prompt absent: implicit; DPO and KTO
    split off the shared prefix, a reward model scores chosen/rejected whole).

    With an explicit prompt, strings become chat turns when the model has a chat template (or when another
    field already holds turns), so the pairs are trained in the format the model answers in."""
    for key in ("chosen", "rejected"):
        if row.get(key) in (None, "", []):
            raise KeyError(f"a row has no {key!r} (columns: {sorted(row)})")
    out = {k: (norm_messages(v) if isinstance(v, list) else v) for k, v in row.items()
           if k in ("prompt", "chosen", "rejected")}
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    if "prompt" in out:
        if chat or any(isinstance(v, list) for v in out.values()):
            for key, role in (("prompt", "user"), ("chosen", "assistant"), ("rejected", "assistant")):
                if not isinstance(out[key], list):
                    out[key] = [{"role": role, "content": str(out[key] or "")}]
            if not any(m["role"] == "system" for m in out["prompt"]):
                out["prompt"] = system + out["prompt"]
        else:
            out["prompt"] = str(out["prompt"] or "")
    elif isinstance(out["chosen"], list) and isinstance(out["rejected"], list):
        for key in ("chosen", "rejected"):  # the same system turn on both sides stays in the shared prompt
            if not any(m["role"] == "system" for m in out[key]):
                out[key] = system + out[key]
    return out
