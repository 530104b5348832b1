"""`tuneforge validate`: read the whole dataset and say whether each training method can use it.

Exit codes: 0 the requested method (auto: some method) is ready; 1 readable but not ready; 2 rows
that cannot be parsed, no rows, or a source that cannot be read.
"""

from __future__ import annotations

import argparse
import shlex
from typing import TYPE_CHECKING

from rich.markup import escape

from ..types import METHODS
from . import output

if TYPE_CHECKING:
    from ..reports.dataset import DatasetReport

STATUS_STYLE = {"ready": "green", "needs_mapping": "yellow", "incompatible": "red"}
SHOWN_PROBLEMS = 12
SHOWN_ERRORS = 8


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="Check a dataset before training: format, per-method readiness, row problems, token lengths.",
        description="Read every row of SOURCE (a .jsonl/.json/.csv/.parquet file, a directory of them, or a Hub "
        "dataset id) and report, for each method, whether it is ready, needs a column_map, or cannot use the data. "
        "Exit 0: ready; 1: readable but not ready; 2: unreadable rows or source.",
    )
    p.add_argument("source", help="Dataset file, directory or Hub dataset id.")
    p.add_argument("--method", default="auto", choices=["auto", *METHODS],
                   help="The method you intend to train with (default auto: any ready method passes).")
    p.add_argument("--model", help="Render rows with this model's tokenizer and chat template (local dir or cached Hub id).")
    p.add_argument("--max-length", type=int, help="Token budget per sequence for truncation checks (default 1024).")
    p.add_argument("--eval", dest="eval_source", metavar="EVAL_SOURCE",
                   help="A separate eval set: checked for unreadable rows, layout and overlap with the training data.")
    output.add_json_flag(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..doctor import validate

    report = validate(args.source, method=args.method, model=args.model, max_length=args.max_length,
                      eval_source=args.eval_source)
    output.emit(args, report, lambda r: render(r, args))
    return report.exit_code


def render(report: DatasetReport, args: argparse.Namespace | None = None) -> None:
    out = output.stdout
    from ..doctor.row_shapes import FORMAT_WORDS

    layout = FORMAT_WORDS.get(report.format, report.format)
    out.print(f"[bold]{escape(report.source)}[/bold]: {report.rows:,} row(s), {escape(layout)}"
              + (f", {report.error_count:,} unreadable line(s)" if report.error_count else ""))
    for note in report.notes:
        out.print(f"  [dim]{escape(note)}[/dim]")

    out.print()
    focus = report.best_method() or next(iter(report.methods), None)
    for name, verdict in report.methods.items():
        marker = "*" if name == report.method else " "
        style = STATUS_STYLE.get(verdict.status, "white")
        first = verdict.reasons[0] if verdict.reasons else ""
        out.print(f" {marker}{name:<7} [{style}]{verdict.status:<13}[/{style}] {escape(first)}")
        if name == focus:
            for reason in verdict.reasons[1:6]:
                out.print(f"   {'':<7} {'':<13} {escape(reason)}")

    problems = sorted(report.problems, key=lambda p: (not p.blocking, -p.count))
    if problems:
        out.print()
        out.print(f"[bold]Problems[/bold] ({len(problems)}):")
        for p in problems[:SHOWN_PROBLEMS]:
            where = f"{p.file}:{p.line}" if p.file and p.line else (f"line {p.line}" if p.line else "")
            if len(p.lines) > 1:
                where += f" (lines {', '.join(map(str, p.lines[:6]))}{'...' if p.count > 6 else ''})"
            tag = "[red]blocking[/red]" if p.blocking else "[yellow]warning[/yellow]"
            out.print(f"  {tag} [bold]{p.kind}[/bold]{' ' + escape(where) if where else ''}: {escape(p.message)}")
            if p.fix:
                out.print(f"           fix: {escape(p.fix)}")
        if len(problems) > SHOWN_PROBLEMS:
            out.print(f"  ... and {len(problems) - SHOWN_PROBLEMS} more (see --json).")

    if report.errors:
        out.print()
        out.print(f"[bold red]Unreadable lines[/bold red] ({report.error_count:,}):")
        for e in report.errors[:SHOWN_ERRORS]:
            where = f"{e.file}:{e.line}" if e.file else f"line {e.line}"
            out.print(f"  {escape(where)}: {escape(e.message)}")
        if report.error_count > SHOWN_ERRORS:
            out.print(f"  ... and {report.error_count - SHOWN_ERRORS:,} more (see --json for the first 50).")
        out.print("  fix: Repair or remove these lines; training stops at the first unreadable line.")

    ts = report.token_stats
    if ts is not None and ts.rows:
        out.print()
        who = "estimated, chars/4" if ts.estimated else f"{escape(str(ts.tokenizer))} tokenizer"
        line = (f"[bold]Tokens[/bold] ({who}, {ts.method}): p50 {ts.p50:,}, p95 {ts.p95:,}, max {ts.max:,}, "
                f"mean {ts.mean:,.1f}; {ts.truncated_share:.1%} of rows over max_length={ts.max_length:,}")
        if ts.trainable_tokens is not None:
            line += f"; {ts.trainable_tokens:,} trainable tokens"
        out.print(line)
        for note in ts.notes:
            out.print(f"  [dim]{escape(note)}[/dim]")

    im = report.images
    if im is not None:
        out.print()
        line = (f"[bold]Images[/bold] ({escape(im.column)}): {im.images:,} in {im.rows_with_images:,} row(s), "
                f"{im.decoded:,} decoded, {im.missing:,} missing, {im.corrupt:,} corrupt")
        if im.decoded:
            line += f"; {im.min_width}x{im.min_height} to {im.max_width}x{im.max_height}"
        if im.image_tokens is not None:
            line += (f"; {im.tokens_per_image:g} tokens per image ({escape(str(im.processor))} processor), "
                     f"up to {im.max_row_image_tokens:,} per row")
        out.print(line)
        for note in im.notes:
            out.print(f"  [dim]{escape(note)}[/dim]")

    out.print()
    out.print(_verdict_line(report, args))


def _verdict_line(report: DatasetReport, args: argparse.Namespace | None) -> str:
    if report.exit_code == 2:
        return "[bold red]Not readable:[/bold red] fix the unreadable lines above, then validate again." if report.rows or report.error_count \
            else "[bold red]No rows:[/bold red] the source is empty."
    method = report.best_method() or next(iter(report.methods), None)
    if method is None:
        return "[bold red]Not ready.[/bold red]"
    verdict = report.methods[method]
    train = ["tuneforge", "train", "--method", method, "--dataset", report.source]
    if args is not None and getattr(args, "model", None):
        train += ["--model", args.model]
    else:
        train += ["--model", "MODEL"]
    for target, source in verdict.mapping.items():
        train += ["--column-map", f"{target}={source}"]
    command = escape(shlex.join(train))
    if verdict.status == "ready":
        return f"[bold green]Ready for {method}.[/bold green] Next: {command}"
    if verdict.status == "needs_mapping":
        return (f"[bold yellow]Ready for {method} with a column_map:[/bold yellow] {escape(str(verdict.mapping))}\n"
                f"Next: {command}")
    return f"[bold red]Not ready for {method}:[/bold red] {escape(verdict.reasons[0] if verdict.reasons else '')}"
