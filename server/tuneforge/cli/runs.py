"""`tuneforge runs list|show|compare|note|search|export|import`: the ledger of every run and what was learned."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from rich.markup import escape
from rich.table import Table

from . import output

#: metrics shown in the list, in this order when present
LIST_METRICS = ("eval_loss", "train_loss")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="The ledger: every run's config, data hash, metrics, cost, and notes.")
    rsub = p.add_subparsers(dest="runs_command", metavar="ACTION")

    ls = rsub.add_parser("list", help="Recorded runs, newest first (ended jobs not yet recorded are added).")
    ls.add_argument("--limit", type=int, default=20)
    ls.add_argument("--model", help="Only runs of this base model.")
    ls.add_argument("--dataset", help="Only runs on this dataset path or id.")
    ls.add_argument("--sweep", dest="sweep_id", help="Only the trials of this sweep.")
    output.add_json_flag(ls)
    ls.set_defaults(handler=cmd_list)

    sh = rsub.add_parser("show", help="One run: config, hashes, metrics, cost, artifacts and notes.")
    sh.add_argument("run_id")
    output.add_json_flag(sh)
    sh.set_defaults(handler=cmd_show)

    cp = rsub.add_parser("compare", help="Two runs: the config fields that differ and every metric's change.")
    cp.add_argument("a")
    cp.add_argument("b")
    output.add_json_flag(cp)
    cp.set_defaults(handler=cmd_compare)

    nt = rsub.add_parser("note", help='Store what was learned: failures first, with exact values.')
    nt.add_argument("run_id")
    nt.add_argument("text")
    output.add_json_flag(nt)
    nt.set_defaults(handler=cmd_note)

    se = rsub.add_parser("search", help="Find runs and notes by model, dataset, config value or words.")
    se.add_argument("text", nargs="+")
    se.add_argument("--limit", type=int, default=20)
    output.add_json_flag(se)
    se.set_defaults(handler=cmd_search)

    ex = rsub.add_parser("export", help="Write the ledger as JSON Lines (share it through git).")
    ex.add_argument("file")
    output.add_json_flag(ex)
    ex.set_defaults(handler=cmd_export)

    im = rsub.add_parser("import", help="Read a JSON Lines ledger (idempotent; bad lines are named, nothing written).")
    im.add_argument("file")
    output.add_json_flag(im)
    im.set_defaults(handler=cmd_import)

    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


def _when(ts: float | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def runs_table(runs: list) -> str:
    """One line per run (the whole id first: what every other command takes), the model and data under it."""
    header = ("run id", "stage", "lr", *LIST_METRICS, "cost $", "min", "notes")
    cells = []
    for r in runs:
        lr = ((r.config or {}).get("train") or {}).get("learning_rate")
        cells.append((r.run_id, r.stage, _num(lr), *(_num(r.metrics.get(m)) for m in LIST_METRICS), _num(r.cost_usd),
                      _num(None if r.duration_seconds is None else round(r.duration_seconds / 60, 1)), str(len(r.notes))))
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    out = ["[bold]" + escape("  ".join(c.ljust(w) for c, w in zip(header, widths)).rstrip()) + "[/bold]"]
    for r, row in zip(runs, cells):
        out.append(escape("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()))
        out.append(f"[dim]  {escape(str(r.model))} on {escape(str(r.dataset))}, ended {_when(r.finished_at)}[/dim]")
    return "\n".join(out)


def render_list(data: Any) -> None:
    if not data.runs:
        output.stdout.print("No runs recorded yet: a job is recorded when it ends (`tuneforge train`, `tuneforge demo`).")
        return
    output.stdout.print(runs_table(data.runs), highlight=False)


def render_run(r: Any) -> None:
    out = output.stdout
    out.print(f"[bold]{r.run_id}[/bold]  {r.stage}  {escape(r.message)}")
    for label, value in (("model", r.model), ("base revision", r.base_revision), ("dataset", r.dataset),
                         ("dataset sha256", r.dataset_sha256), ("config hash", r.config_hash),
                         ("backend", f"{r.backend}" + (f" ({r.flavor})" if r.flavor else "")),
                         ("cost", None if r.cost_usd is None else f"${r.cost_usd:.4f}"),
                         ("duration", None if r.duration_seconds is None else f"{r.duration_seconds:.0f} s"),
                         ("sweep", r.sweep_id), ("pipeline", r.pipeline_id), ("diagnosis", r.diagnosis)):
        if value:
            out.print(f"{label}: {escape(str(value))}")
    if r.metrics:
        out.print("metrics: " + ", ".join(f"{k} {_num(v)}" for k, v in sorted(r.metrics.items())))
    for name, path in r.artifacts.items():
        out.print(f"{name}: {escape(path)}")
    for n in r.notes:
        out.print(f"[bold]note[/bold] ({_when(n.created_at)}): {escape(n.text)}")


def render_diff(d: Any) -> None:
    out = output.stdout
    out.print(f"[bold]{d.a}[/bold] vs [bold]{d.b}[/bold]: "
              f"{'same config' if d.same_config else 'configs differ'}, "
              f"{'same data' if d.same_dataset else 'data differs or unknown'}")
    if d.config:
        table = Table("config field", d.a, d.b, show_edge=False, pad_edge=False)
        for f in d.config:
            table.add_row(f.field, escape(str(f.a)), escape(str(f.b)))
        out.print(table)
    if d.metrics:
        table = Table("metric", d.a, d.b, "change (b - a)", show_edge=False, pad_edge=False)
        for m in d.metrics:
            table.add_row(m.metric, _num(m.a), _num(m.b), _num(m.change))
        out.print(table)
    for f in d.other:
        out.print(f"{f.field}: {escape(str(f.a))} -> {escape(str(f.b))}")


def cmd_list(args: argparse.Namespace) -> int:
    from ..actions.runs import list_runs

    output.emit(args, list_runs(limit=args.limit, model=args.model, dataset=args.dataset, sweep_id=args.sweep_id),
                render_list)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from ..actions.runs import show_run

    output.emit(args, show_run(args.run_id), render_run)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from ..actions.runs import compare_runs

    output.emit(args, compare_runs(args.a, args.b), render_diff)
    return 0


def cmd_note(args: argparse.Namespace) -> int:
    from ..actions.runs import note_run

    output.emit(args, note_run(args.run_id, args.text),
                lambda r: output.stdout.print(f"Noted on {r.run_id} ({len(r.notes)} note(s))."))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from ..actions.runs import search_runs

    output.emit(args, search_runs(" ".join(args.text), limit=args.limit), render_list)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..actions.runs import export_ledger

    output.emit(args, export_ledger(args.file), lambda r: output.stdout.print(f"Wrote {r.runs} run(s) to {escape(r.path)}."))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from ..actions.runs import import_ledger

    output.emit(args, import_ledger(args.file), lambda r: output.stdout.print(
        f"Read {r.runs} run(s) from {escape(r.path)}: {r.added} added, {r.updated} updated, {r.unchanged} unchanged."))
    return 0
