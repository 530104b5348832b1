"""`tuneforge sweep run|status|wait|cancel`: many runs within a budget (being built)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="Run a search over config fields within a budget.")
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])
