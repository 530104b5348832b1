"""Helper processes for large inputs: one loads the tokenizer (transformers and torch stay out of the
main process), others measure their share of the rows.

A helper runs a *named task*: a module-qualified function name ("package.module:function") that the
child resolves with importlib, so this module imports none of its callers. Each helper is a plain
`python -m tuneforge.doctor.worker_pool` subprocess that reads one pickled (task, args) on stdin and
writes one pickled result on stdout. Unlike multiprocessing's spawn, this never re-imports the caller's
main module, so `validate()` works the same from an unguarded script, a notebook or the MCP server.
"""

from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from ..errors import TuneforgeError


def task_name(fn: Callable[..., Any]) -> str:
    """The name a helper runs `fn` by: "module:function" (fn must be a module-level function)."""
    return f"{fn.__module__}:{fn.__qualname__}"


def resolve_task(task: str) -> Callable[..., Any]:
    """The function a task name stands for, imported in this (the helper's) process."""
    module, _, name = task.partition(":")
    if not module.startswith("tuneforge.") or not name or "." in name:
        raise ValueError(f"not a task name: {task!r} (expected 'tuneforge.module:function')")
    return getattr(importlib.import_module(module), name)


class Helper:
    """One task running in a fresh Python process."""

    def __init__(self, task: str, *args: Any):
        import tuneforge

        env = dict(os.environ)
        root = str(Path(tuneforge.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.task = task
        self.done = False
        self.errors = tempfile.TemporaryFile()  # a file, not a pipe: a chatty library can never block it
        self.proc = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.errors, env=env)
        assert self.proc.stdin is not None
        self.proc.stdin.write(pickle.dumps((task, args), protocol=pickle.HIGHEST_PROTOCOL))
        self.proc.stdin.close()
        self.proc.stdin = None

    def result(self) -> Any:
        """Wait for the task's return value; the helper has exited (and freed its memory) when this returns."""
        out, _ = self.proc.communicate()
        self.done = True
        try:
            status, value = pickle.loads(out)
        except Exception:
            self.errors.seek(0)
            tail = self.errors.read().decode("utf-8", "replace").strip().splitlines()[-3:]
            raise TuneforgeError(f"A helper process of the dataset doctor failed (exit {self.proc.returncode}): "
                                 f"{' | '.join(tail) or 'no output'}.",
                                 "Run again; if it keeps failing, report it with this message.",
                                 code="doctor.helper_failed") from None
        finally:
            self.errors.close()
        if status == "error":
            message, fix, code = value
            raise TuneforgeError(message, fix, code=code)
        return value

    def stop(self) -> None:
        """End the helper if it still runs (an error elsewhere, or its result is not needed)."""
        if self.done:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()
        self.done = True
        self.errors.close()


def main() -> None:
    task, args = pickle.loads(sys.stdin.buffer.read())
    try:
        result: tuple[str, Any] = ("ok", resolve_task(task)(*args))
    except TuneforgeError as exc:
        result = ("error", (exc.message, exc.fix, exc.code))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it as a TuneforgeError
        result = ("error", (f"{type(exc).__name__}: {exc}", None, "doctor.helper_error"))
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
