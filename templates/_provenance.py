"""Where a trained model came from, for its model card and result.json: the base model and its revision,
the data files and their sha256 (or the Hub revision), row counts, versions, hardware, runtime, the config."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "transformers", "trl", "peft", "tuneforge")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def model_revision(ref: str, model=None) -> str:
    """The Hub commit sha of the base model, or "local folder <path>"."""
    if Path(ref).expanduser().exists():
        return f"local folder {Path(ref).expanduser().resolve()}"
    sha = None
    cfg = getattr(getattr(model, "base_model", model), "config", None) or getattr(model, "config", None)
    sha = getattr(cfg, "_commit_hash", None)
    if not sha:
        try:
            from huggingface_hub import model_info

            sha = model_info(ref).sha
        except Exception:  # noqa: BLE001 - offline or private: say unknown
            sha = None
    return sha or "unknown (Hub revision not available)"


def data_files(path: str) -> list[dict] | dict:
    """Each local data file with its sha256, or the Hub dataset's revision."""
    p = Path(path).expanduser()
    if p.is_file():
        return [{"file": str(p), "sha256": sha256(p)}]
    if p.is_dir():
        return [{"file": str(f), "sha256": sha256(f)} for f in sorted(p.rglob("*")) if f.is_file() and not f.name.startswith(".")][:200]
    try:
        from huggingface_hub import dataset_info

        return {"hub_dataset": path, "revision": dataset_info(path).sha}
    except Exception:  # noqa: BLE001
        return {"hub_dataset": path, "revision": None}


def hardware() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    except Exception:  # noqa: BLE001
        pass
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def collect(cfg: dict, result: dict, model=None) -> dict:
    ds = cfg.get("dataset") or {}
    prov = {"base_model": cfg.get("model"), "base_revision": model_revision(str(cfg.get("model")), model),
            "dataset": ds.get("path"), "dataset_files": data_files(str(ds.get("path"))) if ds.get("path") else [],
            "rows_after_filtering": {"train": result.get("train_rows"), "eval": result.get("eval_rows")},
            "versions": versions(), "hardware": hardware(), "runtime_seconds": result.get("runtime_seconds"),
            "cost_usd": (cfg.get("launch") or {}).get("price_usd")}
    if (cfg.get("eval") or {}).get("path") and Path(str(cfg["eval"]["path"])).expanduser().is_file():
        prov["eval_files"] = data_files(str(cfg["eval"]["path"]))
    return prov


def provenance_lines(cfg: dict, result: dict) -> list[str]:
    prov = result.get("provenance") or {}
    if not prov:
        return []
    files = prov.get("dataset_files")
    if isinstance(files, list):
        data = [f"- `{f['file']}` sha256 `{f['sha256']}`" for f in files]
    else:
        data = [f"- Hub dataset `{files.get('hub_dataset')}` revision `{files.get('revision')}`"]
    rows = prov.get("rows_after_filtering") or {}
    vers = ", ".join(f"{k} {v}" for k, v in (prov.get("versions") or {}).items())
    cost = prov.get("cost_usd")
    return ["## Provenance", "",
            f"- base model: `{prov.get('base_model')}` at {prov.get('base_revision')}",
            f"- dataset: `{prov.get('dataset')}` ({rows.get('train')} training rows, {rows.get('eval')} eval rows after filtering)",
            *data,
            f"- versions: {vers}",
            f"- hardware: {prov.get('hardware')}",
            f"- runtime: {result.get('runtime_seconds')} s",
            f"- cost: {'$' + format(cost, '.2f') if isinstance(cost, (int, float)) else 'not known inside the job (see `tuneforge jobs status`)'}",
            "", "### Config", "", "```json", json.dumps(cfg, indent=2, default=str), "```", ""]
