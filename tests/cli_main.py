"""Run the `tuneforge` command in this process, as `tuneforge.cli.main(argv)`, and capture what it prints.

For CLI tests where a subprocess is not the point: the same parser, handlers and rendering, without
a fresh interpreter per call. Returns what subprocess.run would (returncode, stdout, stderr).
"""

from __future__ import annotations

import subprocess

import pytest
from tuneforge.cli import main


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> subprocess.CompletedProcess:
    """main(argv) with stdout and stderr captured; argparse's exit (bad flags, --help) becomes the return code."""
    capsys.readouterr()  # start from empty buffers
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["tuneforge", *argv], code, out, err)
