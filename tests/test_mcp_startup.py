"""`tuneforge mcp` starts light: no training library is imported to start, list tools or check setup.

The server runs as a real subprocess under `python -X importtime`, which logs every module it imports
to stderr; the test reads that log after a real client session.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mcp_client import REPO, text_of, with_session

HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "llama_cpp")


def imported_modules(importtime_log: str) -> set[str]:
    """Module names from `-X importtime` lines: 'import time: self | cumulative |   name'."""
    names = set()
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                names.add(name)
    return names


def test_starting_listing_tools_and_checking_setup_imports_no_training_library(tmp_path: Path):
    errlog = tmp_path / "server-stderr.txt"

    async def body(session):
        tools = await session.list_tools()
        setup = await session.call_tool("check_setup", {})
        jobs = await session.call_tool("list_jobs", {})
        return tools, setup, jobs

    # The same path as the console script: python -m tuneforge -> tuneforge.cli.main -> `mcp`.
    tools, setup, jobs = with_session(body, args=["-X", "importtime", "-m", "tuneforge", "mcp"], errlog=errlog)
    assert len(tools.tools) >= 10 and not setup.is_error and not jobs.is_error, text_of(setup)
    modules = imported_modules(errlog.read_text())
    # the log is real: it saw the server itself and the SDK
    assert {"tuneforge.mcp.server", "mcp.server.mcpserver", "tuneforge.actions.setup"} <= modules
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert not heavy, f"imported at start-up: {heavy[:20]}"


def test_the_start_benchmark_compares_with_a_bare_server_and_prints_the_ratio():
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_mcp_start.py"), "--repeats", "1", "--warmup", "0", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["tools"]["bare"] == 2 and result["tools"]["tuneforge"] >= 10
    assert result["commands"]["tuneforge"].endswith("mcp")
    assert 0 < result["median_seconds"]["bare"] < 30
    # not the 1.2x target (one run on a busy machine is noisy) but far below what importing torch costs
    assert result["ratio"] < 2.0, result
