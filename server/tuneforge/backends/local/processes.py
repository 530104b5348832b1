"""Processes of local jobs: is a supervisor alive (pid + create time), is a group alive, stop a group."""

from __future__ import annotations

import os
import signal
import subprocess
import time

#: how long processes get between SIGTERM and SIGKILL
KILL_GRACE_SECONDS = 10.0


def process_alive(pid: int | None, started: float | None = None) -> bool:
    """True when pid runs and (if given) was created at `started`: a reused pid is not our process."""
    if not pid:
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - started) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def group_alive(pgid: int | None) -> bool:
    if not pgid:
        return False
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def kill_group(pgid: int | None, grace: float = KILL_GRACE_SECONDS, leader: "subprocess.Popen[bytes] | None" = None) -> None:
    """SIGTERM the whole process group, then SIGKILL whatever is left after `grace` seconds.

    `leader` is the group leader when we are its parent: it is reaped while waiting, since an unreaped
    (zombie) leader keeps the group looking alive."""
    if not pgid:
        return
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()
        if not group_alive(pgid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
