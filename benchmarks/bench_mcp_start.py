"""Cold start of `tuneforge mcp` to a completed tools/list, against a bare 20-line MCPServer.

    .venv/bin/python benchmarks/bench_mcp_start.py [--repeats 7] [--json]

Both servers run as fresh subprocesses with the same Python, interleaved (bare, tuneforge, bare, ...)
so machine load hits both alike. Each run: spawn -> initialize -> notifications/initialized ->
tools/list answered; the clock stops at the tools/list response. Prints the medians and the ratio
tuneforge / bare (issue 6 target: <= 1.2). Exit code 1 when --max-ratio is given and exceeded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE_SERVER = '''\
from mcp.server.mcpserver import MCPServer

server = MCPServer("bare")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text


if __name__ == "__main__":
    server.run("stdio")
'''

PROTOCOL_VERSION = "2025-06-18"


def tuneforge_command() -> list[str]:
    """`tuneforge mcp` as installed next to this Python (the console script), else on PATH."""
    here = Path(sys.executable).parent / "tuneforge"
    exe = str(here) if here.is_file() else shutil.which("tuneforge")
    if exe is None:
        return [sys.executable, "-m", "tuneforge", "mcp"]
    return [exe, "mcp"]


def _send(proc: subprocess.Popen, message: dict) -> None:
    assert proc.stdin is not None
    proc.stdin.write((json.dumps(message) + "\n").encode())
    proc.stdin.flush()


def _read_response(proc: subprocess.Popen, request_id: int, deadline: float) -> dict:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"server exited before answering request {request_id} (rc={proc.poll()})")
        msg = json.loads(line)
        if msg.get("id") == request_id:
            if "error" in msg:
                raise RuntimeError(f"request {request_id} failed: {msg['error']}")
            return msg["result"]
    raise TimeoutError(f"no answer to request {request_id}")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_to_tools_list(command: list[str], env: dict[str, str], timeout: float = 60.0) -> tuple[float, int, float]:
    """Seconds from spawn to the tools/list response, how many tools it listed, and the CPU seconds the
    server used in all (less sensitive to other load on the machine than the wall clock)."""
    cpu_before = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + timeout
        _send(proc, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": "bench", "version": "0"}}})
        _read_response(proc, 1, deadline)
        _send(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        _send(proc, {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}})
        tools = _read_response(proc, 2, deadline)["tools"]
        elapsed = time.perf_counter() - start
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return elapsed, len(tools), _children_cpu() - cpu_before


def run(repeats: int, warmup: int = 1) -> dict:
    with tempfile.TemporaryDirectory(prefix="tf-bench-") as tmp:
        bare_path = Path(tmp) / "bare_server.py"
        bare_path.write_text(BARE_SERVER)
        env = dict(os.environ, TUNEFORGE_HOME=str(Path(tmp) / "home"), PYTHONUNBUFFERED="1")
        commands = {"bare": [sys.executable, str(bare_path)], "tuneforge": tuneforge_command()}
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        tools: dict[str, int] = {}
        for i in range(warmup + repeats):
            order = list(commands) if i % 2 == 0 else list(reversed(commands))  # alternate who goes first
            for name in order:
                elapsed, n, used = time_to_tools_list(commands[name], env)
                tools[name] = n
                if i >= warmup:
                    times[name].append(elapsed)
                    cpu[name].append(used)
    med = {name: statistics.median(v) for name, v in times.items()}
    med_cpu = {name: statistics.median(v) for name, v in cpu.items()}
    return {
        "repeats": repeats,
        "commands": {name: " ".join(cmd) for name, cmd in commands.items()},
        "tools": tools,
        "seconds": {name: [round(t, 4) for t in v] for name, v in times.items()},
        "median_seconds": {name: round(m, 4) for name, m in med.items()},
        "ratio": round(med["tuneforge"] / med["bare"], 3),
        "median_cpu_seconds": {name: round(m, 4) for name, m in med_cpu.items()},
        "cpu_ratio": round(med_cpu["tuneforge"] / med_cpu["bare"], 3),
        "load_average": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1, help="Untimed rounds first (byte-compile, disk cache).")
    parser.add_argument("--max-ratio", type=float, help="Exit 1 if tuneforge/bare exceeds this.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.repeats, args.warmup)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name in ("bare", "tuneforge"):
            print(f"{name:10s} median {result['median_seconds'][name]:.3f} s  "
                  f"({result['tools'][name]} tools; runs: {', '.join(f'{t:.3f}' for t in result['seconds'][name])})")
            print(f"{'':10s} {result['commands'][name]}")
        print(f"ratio tuneforge/bare: {result['ratio']:.2f}x wall clock (target <= 1.2x); "
              f"{result['cpu_ratio']:.2f}x CPU time (median {result['median_cpu_seconds']['tuneforge']:.3f} s vs "
              f"{result['median_cpu_seconds']['bare']:.3f} s); load average {result['load_average']}")
    if args.max_ratio is not None and result["ratio"] > args.max_ratio:
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
