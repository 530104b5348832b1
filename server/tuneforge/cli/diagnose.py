"""`tuneforge diagnose LOGFILE [--json] [--config FILE]`: why a training run failed, from its log alone.

Any training log works: a tuneforge job's job.log, or the output of a plain TRL/transformers script.
With --config (the run's YAML/JSON config, e.g. a job folder's config.json), `retry_with` is the config
change to retry with. Exit status: 0 when the failure was classified, 1 when the kind is `unknown`,
2 when the log (or the config) cannot be read.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from . import output

if TYPE_CHECKING:
    from ..reports.diagnosis import Diagnosis

KIND_STYLE = {"unknown": "yellow"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diagnose",
        help="Why a training run failed: kind, evidence, fix and the config change to retry with, from its log.",
        description="Classify a training log (a tuneforge job.log or any TRL/transformers script's output): out of "
        "memory, auth, gated model, not found, payment, disk full, divergence, chat template, dataset format, "
        "hardware, missing dependency, network, rate limit, timeout, budget, or unknown. Reads the last 4 MiB. "
        "Exit status 0 when classified, 1 when unknown, 2 when the file cannot be read.",
    )
    p.add_argument("logfile", help="The log file.")
    p.add_argument("--config", metavar="FILE", help="The run's config (YAML or JSON): retry_with is computed from it.")
    p.add_argument("--json", action="store_true",
                   help='Print one JSON object on stdout: {"kind", "evidence", "fix", "retry_with"}.')
    p.set_defaults(handler=run)


def render(d: Diagnosis) -> None:
    from rich.markup import escape

    out = output.stdout
    out.print(f"[bold]kind:[/bold] [{KIND_STYLE.get(d.kind, 'red')}]{d.kind}[/]")
    if d.evidence:
        out.print("[bold]evidence:[/bold]")
        for line in d.evidence:
            out.print(f"  {escape(line)}", highlight=False)
    out.print(f"[bold]fix:[/bold] {escape(d.fix)}")
    if d.retry_with:
        out.print("[bold]retry with:[/bold] " + ", ".join(f"{k}={v}" for k, v in d.retry_with.items()))


def run(args: argparse.Namespace) -> int:
    from ..diagnosis import diagnose_file, read_run_config

    config = read_run_config(args.config) if args.config else None
    diagnosis = diagnose_file(args.logfile, config)
    if args.json:
        output.print_json({"kind": diagnosis.kind, "evidence": diagnosis.evidence, "fix": diagnosis.fix,
                           "retry_with": diagnosis.retry_with})
    else:
        render(diagnosis)
    return 1 if diagnosis.kind == "unknown" else 0
