"""What a Ray job gets: its runtime environment (working dir, packages, env) and its entrypoint.

- working_dir: the tuneforge job folder (template, its helpers, config.json), uploaded by Ray's client.
- packages: the template's own PEP 723 header (`# /// script ... dependencies = [...]`), as runtime_env
  `pip` (default) or `uv`. TUNEFORGE_RAY_PACKAGES=cluster installs nothing: the job runs with the
  cluster's own Python environment (a cluster image that already has torch/transformers/trl, or the test
  cluster started from tuneforge's venv).
- env_vars: non-secret settings and, when the run needs them, the secrets (HF_TOKEN, the notification
  URL). Ray has no secret store: these are the only way in, they are never written to the job folder,
  the config or the logs, and tuneforge never shows or records the runtime env. Ray itself returns
  runtime_env (env_vars included) to anyone who can read the cluster's job list: docs/ray.md says so.
- entrypoint: `python <template> --config config.json`, relative to the working dir, under coreutils
  `timeout` (the job's limit, enforced on the cluster even when nobody polls), optionally wrapped in
  `_notify_after.py` like the hf backend; a multi-node plan runs `python _ray_train.py --workers N ...
  -- <template> --config config.json` instead (Ray Train workers, templates/_ray_train.py).
"""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from pathlib import Path

from ...errors import ConfigError
from .resources import TrainShape

PACKAGES_ENV = "TUNEFORGE_RAY_PACKAGES"  # pip | uv | cluster
PYTHON_ENV = "TUNEFORGE_RAY_PYTHON"  # the interpreter the entrypoint names (default: python)
PACKAGE_MODES = ("pip", "uv", "cluster")
#: the job folder's files the cluster never needs (written by tuneforge next to the job)
EXCLUDES = ["job.log", "ray_state.json", "supervisor.log", "spec.json", "outputs/", "cloud/"]
_HEADER = re.compile(r"^# /// script\s*$(.*?)^# ///\s*$", re.MULTILINE | re.DOTALL)
RAY_TRAIN_RUNNER = "_ray_train.py"  # templates/_ray_train.py, copied into every job folder with the other helpers
TIMEOUT_EXIT = 124  # coreutils timeout's exit status when the limit is reached
KILL_AFTER_SECONDS = 60  # SIGTERM first (the template saves a checkpoint), SIGKILL after this


def script_dependencies(script: Path) -> list[str]:
    """The `dependencies` of a script's PEP 723 header ([] without one)."""
    match = _HEADER.search(script.read_text(encoding="utf-8"))
    if not match:
        return []
    body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in match.group(1).splitlines())
    try:
        data = tomllib.loads(body)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{script.name}: its PEP 723 header is not valid TOML ({exc}).",
                          "Fix the `# /// script` block at the top of the template.", code="ray.bad_script_header") from None
    return [str(d) for d in data.get("dependencies", [])]


def package_mode() -> str:
    mode = os.environ.get(PACKAGES_ENV, "pip").strip().lower() or "pip"
    if mode not in PACKAGE_MODES:
        raise ConfigError(f"{PACKAGES_ENV}={mode!r} is not one of {', '.join(PACKAGE_MODES)}.",
                          f"Set {PACKAGES_ENV}=pip (install the template's packages per job), uv, or cluster (use the "
                          "cluster's own Python environment).", code="ray.bad_packages_mode")
    return mode


def runtime_env(job_dir: Path, script: Path, extra: list[str], env_vars: dict[str, str]) -> dict:
    """The runtime_env of one job: the folder, the packages (per package_mode) and the environment."""
    env: dict = {"working_dir": str(job_dir), "excludes": list(EXCLUDES), "env_vars": dict(env_vars)}
    mode = package_mode()
    if mode != "cluster":
        packages = [*script_dependencies(script), *extra]
        if packages:
            env[mode] = packages
    return env


def entrypoint(script: Path, args: list[str], timeout: int | None, notify: bool, shape: TrainShape | None = None,
               strategy: str | None = None) -> str:
    """The shell command Ray runs in the working dir (every piece quoted); a multi-node SHAPE runs the template
    on Ray Train workers through templates/_ray_train.py."""
    python = os.environ.get(PYTHON_ENV, "").strip() or "python"
    command = [python, script.name, *args]
    if shape is not None:
        command = [python, RAY_TRAIN_RUNNER, "--workers", str(shape.workers), "--cpus-per-worker",
                   f"{shape.cpus_per_worker:g}", "--gpus-per-worker", f"{shape.gpus_per_worker:g}",
                   "--strategy", "fsdp" if strategy in ("fsdp", "deepspeed") else "ddp",
                   "--placement", "SPREAD" if not shape.gpus_per_worker else "PACK", "--", script.name, *args]
    if notify:
        command = [python, "_notify_after.py", "--", *command]
    if timeout:
        command = ["timeout", f"--kill-after={KILL_AFTER_SECONDS}", str(int(timeout)), *command]
    return shlex.join(command)


def job_args(args: list[str], job_dir: Path) -> list[str]:
    """The script's arguments as the job sees them: files in the job folder by their path inside it."""
    out = []
    root = job_dir.resolve()
    for arg in args:
        path = Path(arg)
        if path.is_absolute() and path.resolve().is_relative_to(root):
            out.append(path.resolve().relative_to(root).as_posix())
        else:
            out.append(arg)
    return out
