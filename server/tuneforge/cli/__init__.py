"""The `tuneforge` command line: a thin face over the core.

Each command lives in its own module here and exposes `register(subparsers)`. A module only parses
arguments, calls the core and renders the result (rich for people, `--json` for machines). Nothing
heavy is imported at start-up: torch and friends load inside the commands that need them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..errors import TuneforgeError

# Order here is the order in `tuneforge --help`.
COMMAND_MODULES = ("demo", "validate", "plan", "train", "jobs", "runs", "sweep", "diagnose", "pipeline", "eval", "gguf", "setup", "mcp")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tuneforge",
        description="Fine-tune open LLMs: validate data, plan hardware and cost, train locally or on "
        "Hugging Face Jobs, export verified GGUF. Every command takes --json.",
    )
    parser.add_argument("--version", action="version", version=f"tuneforge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list == ["mcp"]:  # the MCP server's start path: no argparse tree, no rich
        from .mcp import run as run_mcp

        return run_mcp()
    from . import output

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    if getattr(args, "ray_address", None):  # --ray-address: RAY_ADDRESS for this process and what it starts
        from ..backends.ray.connection import set_address

        set_address(args.ray_address)
    try:
        code = args.handler(args)
    except TuneforgeError as exc:
        output.emit_error(exc, as_json=getattr(args, "json", False))
        return exc.exit_code
    except KeyboardInterrupt:
        output.stderr.print("[yellow]Interrupted.[/yellow]")
        return 130
    return int(code or 0)
