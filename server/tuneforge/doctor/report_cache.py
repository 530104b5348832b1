"""Validation reports cached on disk, so that one request path (validate -> plan -> submit) reads the
dataset once.

A report is stored under $TUNEFORGE_HOME/cache/reports/<key>.json. The key is a hash of everything
the report depends on: the resolved path of the source and, for each of its data files, its name,
size, modification time (ns) and inode; the same for the eval set; the method, max_length (None and
the default are one) and the model (by its tokenizer files' own state, chat_tokenizer.tokenizer_key,
so a Hub id and its local snapshot, or a relative and an absolute path, are one); the cache format and
tuneforge's version. Touching or rewriting a file gives a new key. Not cached: Hub sources (no local
identity), a model whose tokenizer files cannot be found yet, and files modified within RACY_SECONDS
of the validation's start (a rewrite inside one timestamp tick could keep size and time: such a report
is not stored, the next validation stores it). Writes are atomic (a temporary file, then os.replace);
a corrupt or unreadable cache file is ignored and the report is computed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..paths import home
from ..reports.dataset import DatasetReport
from .chat_tokenizer import tokenizer_key
from .sources import Source

REPORT_CACHE_FORMAT = 2  # 2: row problems listed with method auto too
RACY_SECONDS = 2.0  # coarse file-system timestamps (FAT: 2 s) can hide a same-size rewrite this long
MAX_REPORTS = 256  # older reports are removed beyond this many


def reports_dir() -> Path:
    return home() / "cache" / "reports"


@dataclass(frozen=True)
class CacheSlot:
    """Where one validation's report is (or will be) cached, and the newest file time it depends on."""

    path: Path
    newest_mtime_ns: int


def _file_identities(src: Source) -> tuple[str, list[tuple[str, int, int, int]], int] | None:
    if src.kind == "hub" or not src.files:
        return None
    base = (src.root or src.files[0]).resolve()
    files = []
    for p in src.files:
        st = p.stat()
        files.append((str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino))
    return str(base), files, max(f[2] for f in files)


def cache_slot(src: Source, eval_src: Source | None, *, method: str, model: str | None,
               max_length: int) -> CacheSlot | None:
    """The slot for this validation, or None when it cannot be cached (a Hub source, an unfound tokenizer)."""
    try:
        data = _file_identities(src)
        evals = _file_identities(eval_src) if eval_src is not None else None
    except OSError:
        return None
    if data is None or (eval_src is not None and evals is None):
        return None
    tokenizer = tokenizer_key(model) if model else None
    if model and tokenizer is None:
        return None
    # the model by its tokenizer files (a Hub id and its local snapshot, ./m and /abs/m are the same model)
    blob = json.dumps([REPORT_CACHE_FORMAT, __version__, data[:2], src.kind, evals[:2] if evals else None,
                       eval_src.label if eval_src else None, method, tokenizer, max_length])
    key = hashlib.sha256(blob.encode()).hexdigest()[:40]
    newest = max(data[2], evals[2] if evals else 0)
    return CacheSlot(reports_dir() / f"{key}.json", newest)


def read_cached(slot: CacheSlot) -> DatasetReport | None:
    """The cached report, or None when there is none or it cannot be read (corrupt, another version)."""
    try:
        return DatasetReport.model_validate_json(slot.path.read_bytes())
    except Exception:  # missing, truncated, or from another schema: compute it again
        return None


def write_cached(slot: CacheSlot, report: DatasetReport, started_ns: int) -> bool:
    """Store the report atomically; False when it was not stored (files too recently modified, read-only home)."""
    if slot.newest_mtime_ns > started_ns - int(RACY_SECONDS * 1e9):
        return False
    try:
        slot.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=slot.path.name, suffix=".tmp", dir=slot.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(report.model_dump_json())
            os.replace(tmp, slot.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _prune(slot.path.parent)
        return True
    except OSError:  # a read-only or full home: work without the cache
        return False


def _prune(folder: Path) -> None:
    try:
        entries = [(p.stat().st_mtime_ns, p) for p in folder.glob("*.json")]
        if len(entries) <= MAX_REPORTS:
            return
        for _, p in sorted(entries)[: len(entries) - MAX_REPORTS]:
            p.unlink(missing_ok=True)
    except OSError:
        pass

