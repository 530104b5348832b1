"""Helper processes for large inputs: one loads the tokenizer (transformers and torch stay out of the
main process), others measure their share of the rows.

They are plain `python -m tuneforge.doctor.worker` subprocesses that read one pickled task on stdin and
write one pickled result on stdout. Unlike multiprocessing's spawn, this never re-imports the caller's
main module, so `validate()` works the same from an unguarded script, a notebook or the MCP server.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..errors import TuneforgeError


class Helper:
    """One task running in a fresh Python process."""

    def __init__(self, task: str, *args: Any):
        import tuneforge

        env = dict(os.environ)
        root = str(Path(tuneforge.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.done = False
        self.errors = tempfile.TemporaryFile()  # a file, not a pipe: a chatty library can never block it
        self.proc = subprocess.Popen([sys.executable, "-m", "tuneforge.doctor.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.errors, env=env)
        assert self.proc.stdin is not None
        self.proc.stdin.write(pickle.dumps((task, args), protocol=pickle.HIGHEST_PROTOCOL))
        self.proc.stdin.close()
        self.proc.stdin = None

    def result(self) -> Any:
        out, _ = self.proc.communicate()
        self.done = True
        try:
            status, value = pickle.loads(out)
        except Exception:
            self.errors.seek(0)
            tail = self.errors.read().decode("utf-8", "replace").strip().splitlines()[-3:]
            raise TuneforgeError(f"A helper process of the dataset doctor failed (exit {self.proc.returncode}): "
                                 f"{' | '.join(tail) or 'no output'}.",
                                 "Run again; if it keeps failing, report it with this message.") from None
        finally:
            self.errors.close()
        if status == "error":
            raise TuneforgeError(*value)
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


def _run(task: str, args: tuple) -> Any:
    if task == "load":
        from .tokenizer import load_tokenizer

        return load_tokenizer(*args).portable()
    if task == "measure":
        from .tokens import measure_share_from_spec

        return measure_share_from_spec(*args)
    raise ValueError(f"unknown task {task!r}")


def main() -> None:
    task, args = pickle.loads(sys.stdin.buffer.read())
    try:
        result: tuple[str, Any] = ("ok", _run(task, args))
    except TuneforgeError as exc:
        result = ("error", (exc.message, exc.fix))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it as a TuneforgeError
        result = ("error", (f"{type(exc).__name__}: {exc}", None))
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
