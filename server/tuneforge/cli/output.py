"""Rendering for the CLI: JSON for machines (`--json`), rich for people. Errors never as tracebacks."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape

from ..errors import TuneforgeError

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="Print one JSON object on stdout instead of a report.")


def to_jsonable(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list):
        return [to_jsonable(x) for x in data]
    if isinstance(data, dict):
        return {k: to_jsonable(v) for k, v in data.items()}
    return data


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(data), indent=2, default=str) + "\n")
    sys.stdout.flush()


def emit(args: argparse.Namespace, data: Any, render: Callable[[Any], None]) -> None:
    """--json: the data as JSON on stdout. Otherwise: the human renderer."""
    if getattr(args, "json", False):
        print_json(data)
    else:
        render(data)


def emit_error(exc: TuneforgeError, *, as_json: bool) -> None:
    if as_json:
        print_json(exc.to_dict())
        return
    stderr.print(f"[bold red]Error:[/bold red] {escape(exc.message)}")
    if exc.fix:
        stderr.print(f"[bold]Fix:[/bold] {escape(exc.fix)}")
