"""The ledger as JSON Lines, one run per line with its notes, so a team shares it through git.

Import validates every line (errors name the line and the field) before writing any, and is idempotent:
a run already there is merged (its notes are the union), never duplicated.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from ..errors import TuneforgeError
from .model import LedgerRun
from .store import Ledger


class ExchangeResult(BaseModel):
    path: str
    runs: int = Field(description="Runs written (export) or read (import).")
    added: int = 0
    updated: int = 0
    unchanged: int = 0


def export_runs(ledger: Ledger, path: str | Path, *, limit: int = 1_000_000) -> ExchangeResult:
    runs = sorted(ledger.list(limit=limit), key=lambda r: (r.created_at, r.run_id))
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(r.model_dump_json() + "\n" for r in runs), encoding="utf-8")
    return ExchangeResult(path=str(p), runs=len(runs))


def read_runs(path: str | Path) -> list[LedgerRun]:
    p = Path(path)
    if not p.is_file():
        raise TuneforgeError(f"{p} does not exist.", "Give a .jsonl file written by `tuneforge runs export`.",
                             code="ledger.file_not_found")
    runs, problems = [], []
    for number, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            runs.append(LedgerRun.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append(f"{p}:{number}: not JSON ({exc.msg} at column {exc.colno})")
        except ValidationError as exc:
            fields = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or '(line)'}: "
                               f"{'unknown field' if e['type'] == 'extra_forbidden' else e['msg']}" for e in exc.errors())
            problems.append(f"{p}:{number}: {fields}")
    if problems:
        raise TuneforgeError(f"{len(problems)} line(s) of {p} are not ledger runs: " + " | ".join(problems[:10]),
                             "Fix those lines (each is one run as `tuneforge runs export` writes it); nothing was "
                             "imported.", code="ledger.bad_line", details={"problems": problems[:50]})
    return runs


def import_runs(ledger: Ledger, path: str | Path) -> ExchangeResult:
    runs = read_runs(path)
    out = ExchangeResult(path=str(path), runs=len(runs))
    for run in runs:
        before = ledger.get(run.run_id) if ledger.has(run.run_id) else None
        after = ledger.put(run)
        if before is None:
            out.added += 1
        elif before.model_dump() == after.model_dump():
            out.unchanged += 1
        else:
            out.updated += 1
    return out


__all__ = ["export_runs", "import_runs", "read_runs", "ExchangeResult"]
