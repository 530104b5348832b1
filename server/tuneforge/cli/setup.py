"""`tuneforge setup`: is this machine ready? Token, backends, torch/GPU, training extra, disk, GGUF toolchain."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from . import output

if TYPE_CHECKING:
    from ..reports.setup import SetupReport


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "setup",
        help="Check setup: HF token, backends, torch/GPU, training packages, disk, GGUF toolchain.",
        description="Check what this machine can do. Offline unless --online (which asks the Hub who the token belongs to). "
        "The token itself is never printed.",
    )
    p.add_argument("--online", action="store_true", help="Also check the token with the Hub (whoami).")
    output.add_json_flag(p)
    p.set_defaults(handler=run)


def _mark(ok: bool) -> str:
    return "[green]ok[/green]" if ok else "[red]no[/red]"


def render(r: SetupReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = output.stdout
    out.print(f"[bold]tuneforge {r.tuneforge_version}[/bold]  python {escape(r.python)}  {r.platform}")
    table = Table("check", "", "details", show_header=False, box=None, pad_edge=False)
    tok = r.hf_token
    where = f"from {tok.source}" + (f" ({tok.path})" if tok.path else "") if tok.present else "not found"
    if tok.user:
        where += f", logged in as {tok.user}"
    if tok.whoami_error:
        where += f", whoami failed: {tok.whoami_error}"
    table.add_row("HF token", _mark(tok.present), escape(where))
    for b in r.backends:
        table.add_row(f"backend {b.name}", _mark(b.available), escape(b.reason))
    t = r.torch
    torch_text = f"{t.version} ({t.build} build)" if t.installed else "not installed"
    table.add_row("torch", _mark(t.installed), escape(torch_text))
    gpus = ", ".join(f"{g.name} ({(g.memory_total_mib or 0) / 1024:.0f} GiB)" for g in t.gpus)
    table.add_row("GPU", _mark(bool(t.gpus)), escape(gpus or ("Apple silicon (MPS)" if t.apple_silicon else "none found (nvidia-smi)")))
    extra = r.train_extra
    table.add_row("train extra", _mark(extra.installed), escape("installed" if extra.installed else "missing " + ", ".join(extra.missing)))
    table.add_row("disk", _mark(not r.disk.low), escape(f"{r.disk.free_gb} GB free of {r.disk.total_gb} GB under {r.disk.path}"))
    tc = r.gguf_toolchain
    tc_text = f"llama-cpp-python {tc.version} ({tc.commit}) at {tc.path}" if tc.cached else tc.note
    table.add_row("GGUF toolchain", _mark(tc.cached), escape(tc_text))
    out.print(table)
    ready = [name for name, ok in (("local runs", r.ready_local), ("Hugging Face Jobs", r.ready_hf)) if ok]
    out.print(f"[green]Ready for {' and '.join(ready)}.[/green]" if ready else "[red]Not ready to train yet.[/red]")
    if r.next_steps:
        out.print("[bold]Next steps[/bold]")
        for step in r.next_steps:
            out.print(f"  - {escape(step)}")


def run(args: argparse.Namespace) -> int:
    from ..actions.setup import check_setup

    report = check_setup(online=args.online)
    output.emit(args, report, render)
    return 0
