"""The GGUF export's subprocesses: tuneforge's two worker scripts and llama.cpp's converter.

`hf_worker.py` (transformers/peft: merge, reference logits) runs with this interpreter;
`llama_worker.py` (quantize, verify) and `convert_hf_to_gguf.py` run with the pinned toolchain on
PYTHONPATH. Each one's output goes to the export log; a failure becomes a TuneforgeError that names
the step and the log. Nothing heavy is imported in this process.

Unless the user trusts the model's own code, every one of them runs under
templates/_shared/no_remote_code.py (transformers cannot import a model's code, whatever it is
asked), with no stdin (transformers' "run this code? [y/N]" prompt reads nothing, never the MCP
stream), on the staged model folder the export made (model_files.stage_model_folder).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import TuneforgeError
from ..templates._shared import no_remote_code
from ..templates._shared.gguf_checks import MAX_NEW_TOKENS, PROMPTS, summarise
from . import toolchain as tcm
from .quants import QuantType

HERE = Path(__file__).resolve().parent
HF_WORKER = HERE / "hf_worker.py"
LLAMA_WORKER = HERE / "llama_worker.py"
#: the launcher that keeps transformers from a model's own code
NO_REMOTE_CODE = Path(no_remote_code.__file__).resolve()


def worker_threads() -> int:
    """Threads for llama.cpp and torch: the idle cores, at least one ($TUNEFORGE_GGUF_THREADS overrides).

    llama.cpp's threads spin while they wait for each other: on a busy machine two threads on two
    cores shared with other work ran a 37-token prompt 20x slower than one thread (9 s vs 0.44 s).
    """
    env = os.environ.get("TUNEFORGE_GGUF_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cpus, int(cpus - busy + 0.5)))


def available_memory() -> int | None:
    """MemAvailable in bytes, or None when /proc/meminfo cannot tell."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def run_worker(args: list[str], log: Path, *, what: str, env: dict[str, str] | None = None,
               cwd: str | None = None, code: str = "gguf.step_failed", trust_remote_code: bool = False) -> dict[str, Any]:
    """Run a worker (or the converter) with this interpreter; its output goes to the log; the last stdout line as JSON.

    Under the no-remote-code launcher unless `trust_remote_code`; never with a stdin."""
    cmd = [sys.executable, *([] if trust_remote_code else [str(NO_REMOTE_CODE)]), *args]
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=cwd)
        fh.write(proc.stdout)
        fh.write(proc.stderr)
    if proc.returncode != 0:
        if not trust_remote_code and no_remote_code.REFUSAL in proc.stderr:  # the model needs the code detection missed
            from .remote_code import CLI_FIX

            raise TuneforgeError(f"GGUF export stopped while {what}: the model can only be loaded with its own code, "
                                 f"which was not trusted ({error_line(proc.stderr)}).", f"{CLI_FIX} The full output is in {log}.",
                                 code="gguf.remote_code")
        raise TuneforgeError(f"GGUF export failed while {what}: {error_line(proc.stderr)}",
                             f"The full output is in {log}.", code=code)
    last = (proc.stdout.strip().splitlines() or ["{}"])[-1]
    try:
        return json.loads(last)
    except ValueError:
        return {}


def error_line(stderr: str) -> str:
    """The line of a worker's stderr that says what went wrong."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("ERROR") or "Error" in ln.split(":")[0]:
            return ln.removeprefix("ERROR:").strip()
    return lines[-1] if lines else "no error output"


def convert(tc: tcm.Toolchain, model_dir: Path, out: Path, outtype: str, log: Path, *, trust_remote_code: bool = False) -> None:
    """llama.cpp's convert_hf_to_gguf.py: model_dir -> out in outtype (written as .part, then renamed)."""
    tmp = out.with_name(out.name + ".part")
    try:
        run_worker([tc.convert_script, str(model_dir), "--outtype", outtype, "--outfile", str(tmp)], log,
                   what=f"converting to {outtype} (llama.cpp convert_hf_to_gguf.py)", env=tc.env(), code="gguf.convert_failed",
                   trust_remote_code=trust_remote_code)
    except TuneforgeError as exc:
        tmp.unlink(missing_ok=True)
        if "is not supported" in exc.message or "not supported!" in exc.message:
            raise TuneforgeError(exc.message, "GGUF export needs an architecture llama.cpp supports.",
                                 code="gguf.unsupported_architecture") from None
        raise
    tmp.replace(out)


def quantize(tc: tcm.Toolchain, f16_path: Path, out: Path, q: QuantType, log: Path) -> None:
    """llama.cpp's quantizer: the f16 file -> out at q (written as .part, then renamed)."""
    part = out.with_name(out.name + ".part")
    try:
        run_worker([str(LLAMA_WORKER), "--threads", str(worker_threads()), "quantize", "--in", str(f16_path),
                    "--out", str(part), "--ftype", q.ftype], log, what=f"quantizing to {q.name}", env=tc.env(),
                   code="gguf.quantize_failed")
    except TuneforgeError:
        part.unlink(missing_ok=True)
        raise
    if not part.is_file():
        raise TuneforgeError(f"llama.cpp's quantizer wrote no {q.name} file.", f"The full output is in {log}.",
                             code="gguf.quantize_failed")
    part.replace(out)


def reference_dtype(n_params: int, notes: list[str]) -> str:
    """float32 when it fits in memory, else bfloat16, else "none" (no logit comparison); notes say why."""
    avail = available_memory()
    if avail is None or n_params * 4 <= 0.6 * avail:
        return "float32"
    if n_params * 2 > 0.6 * avail:
        notes.append("Model too large to load in memory with transformers here: files were checked by tokenizing, "
                     "loading and generating with llama.cpp, without a logit comparison.")
        return "none"
    notes.append("Reference logits computed in bfloat16 (float32 does not fit in memory): expect larger differences.")
    return "bfloat16"


def reference(model_dir: Path, work: Path, n_params: int, system_prompt: str | None, log: Path, notes: list[str], *,
              trust_remote_code: bool = False, prompts_list: list[str] | None = None) -> Path:
    """Reference logits and greedy answers from transformers on the eval prompts (default PROMPTS; float32 when
    it fits in memory)."""
    prompts = work / "prompts.json"
    prompts.write_text(json.dumps(prompts_list or PROMPTS), encoding="utf-8")
    out = work / "reference.npz"
    args = [str(HF_WORKER), "reference", "--threads", str(worker_threads()), "--model", str(model_dir), "--prompts", str(prompts),
            "--out", str(out), "--max-new", str(MAX_NEW_TOKENS), "--dtype", reference_dtype(n_params, notes)]
    if system_prompt:
        args.append(f"--system={system_prompt}")  # one token, even when the text starts with "-"
    if trust_remote_code:
        args.append("--trust-remote-code")
    run_worker(args, log, what="computing reference logits with transformers", code="gguf.reference_failed",
               trust_remote_code=trust_remote_code)
    return out


def verify(tc: tcm.Toolchain, gguf: Path, reference_path: Path, f16_verify: Path | None, work: Path, log: Path,
           q: QuantType, *, min_agreement: dict[str, float] | None = None,
           prompt_source: str | None = None) -> tuple[dict[str, Any], Path]:
    """Load the file with llama.cpp, compare with transformers (and the f16 file): (checks, the raw verify output);
    the agreement gate's thresholds are gguf_checks.MIN_AGREEMENT with `min_agreement` over them."""
    result = work / f"verify-{q.name}.json"
    args = [str(LLAMA_WORKER), "--threads", str(worker_threads()), "verify", "--gguf", str(gguf), "--reference", str(reference_path),
            "--out", str(result)]
    if f16_verify is not None:
        args += ["--f16", str(f16_verify)]
    t = time.time()
    run_worker(args, log, what=f"loading and checking {gguf.name} with llama.cpp", env=tc.env(), code="gguf.load_failed")
    seconds = time.time() - t
    data = json.loads(result.read_text(encoding="utf-8"))
    meta = json.loads(reference_path.with_suffix(".json").read_text(encoding="utf-8"))
    return summarise(data, meta, quant=q.name, converted=q.converted, seconds=seconds, min_agreement=min_agreement,
                     prompt_source=prompt_source), result
