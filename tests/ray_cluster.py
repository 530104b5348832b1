"""A real Ray head on this machine for the ray backend's tests: `ray start --head --block`, CPU only.

Started from this venv (so a job that runs with the cluster's own Python, TUNEFORGE_RAY_PACKAGES=cluster,
has torch/transformers/trl), with 2 CPUs, a small object store and a fixed memory figure (the planner reads
it). Every port is picked free here, so `restart()` brings the head back at the same address, like a head
machine that rebooted. `stop()` ends exactly the processes this head started (the `ray start` process and
its descendants, found by pid, job drivers included): nothing else on the machine is touched. `RayNode`
adds a second node to a head (for the multi-node run through Ray Train), stopped the same way.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

NUM_CPUS = 2
MEMORY_BYTES = 4 * 1024**3  # the node's "memory" resource the planner reads (4 GiB)
OBJECT_STORE_BYTES = 80 * 1024**2
START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_start(args: list[str], temp_dir: Path, log: Path, env: dict[str, str]) -> subprocess.Popen:
    """`ray start --block ARGS` from this venv: CPU only, this module's memory figures, logs in TEMP_DIR and LOG."""
    cmd = [str(Path(sys.executable).parent / "ray"), "start", "--block", *args, "--num-gpus=0", f"--memory={MEMORY_BYTES}",
           f"--object-store-memory={OBJECT_STORE_BYTES}", f"--temp-dir={temp_dir}", "--disable-usage-stats"]
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a `ray start` process and everything it started (found by pid), and reap them."""
    try:
        root = psutil.Process(proc.pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    for p in tree:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(tree, timeout=20)
    proc.wait(timeout=20)


class RayHead:
    def __init__(self) -> None:
        self.temp_dir = Path(tempfile.mkdtemp(prefix="tfray-", dir="/tmp"))  # short: Ray's socket paths have a limit
        self.gcs_port, self.dashboard_port, self.client_port = free_port(), free_port(), free_port()
        self.proc: subprocess.Popen | None = None
        self.log = self.temp_dir / "ray-start.log"

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `python` = this venv's
        env.update(RAY_USAGE_STATS_ENABLED="0", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                   TOKENIZERS_PARALLELISM="false", TUNEFORGE_NO_TRACKIO="1")
        return env

    def start(self) -> "RayHead":
        self.proc = ray_start(["--head", f"--num-cpus={NUM_CPUS}", f"--port={self.gcs_port}",
                               "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
                               "--include-dashboard=true", f"--ray-client-server-port={self.client_port}"],
                              self.temp_dir, self.log, self.env())
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        from ray.job_submission import JobSubmissionClient

        deadline = time.monotonic() + START_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                from ray.util.state import list_nodes

                JobSubmissionClient(self.address).list_jobs()
                if list_nodes(address=self.address, raise_on_missing_output=False):  # the head node registered
                    return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
                time.sleep(1.0)
        raise RuntimeError(f"the Ray head did not come up in {START_TIMEOUT:.0f} s ({last}):\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Like the head machine going down: the head and everything it started, by pid."""
        if self.proc is not None:
            kill_tree(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


class RayNode:
    """A second node joining HEAD (`ray start --address <head's GCS> --block`) on this same machine: a raylet
    and object store of its own, so the cluster has two nodes as a multi-node run needs."""

    def __init__(self, head: RayHead, num_cpus: int = 1) -> None:
        self.head, self.num_cpus = head, num_cpus
        self.proc: subprocess.Popen | None = None
        self.temp_dir = Path(tempfile.mkdtemp(prefix="tfrayn-", dir="/tmp"))  # its own logs, as on another machine
        self.log = self.temp_dir / "ray-node.log"

    def start(self) -> "RayNode":
        from ray.util.state import list_nodes

        self.proc = ray_start([f"--address=127.0.0.1:{self.head.gcs_port}", f"--num-cpus={self.num_cpus}"],
                              self.temp_dir, self.log, self.head.env())
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start (node) exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            alive = [n for n in list_nodes(address=self.head.address, raise_on_missing_output=False)
                     if str(getattr(n, "state", "")).upper() == "ALIVE"]
            if len(alive) >= 2:
                return self
            time.sleep(1.0)
        raise RuntimeError(f"the second Ray node did not join in {START_TIMEOUT:.0f} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            kill_tree(self.proc)
        self.proc = None
        shutil.rmtree(self.temp_dir, ignore_errors=True)
