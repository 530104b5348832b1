"""The MCP face: tuneforge's capabilities as typed MCP tools over stdio (`tuneforge mcp`).

Thin on purpose: each tool validates its arguments (pydantic, from the type hints), calls the same
core as the CLI and the Python API, and returns a pydantic model (structured content with an output
schema). A TuneforgeError becomes a tool error whose text ends with "Fix: ...", so the agent can act
on it. Long calls (waiting for a job, GGUF export) send MCP progress notifications.

Start-up stays light: this module imports the MCP SDK, pydantic and tuneforge's model modules only.
Capabilities (dataset doctor, planner, training, GGUF export) are imported inside the tools that use
them; nothing here imports torch, transformers, trl, peft or datasets.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from typing import Annotated, Any, Iterator, Literal

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from . import __version__
from .config import METHODS, RunConfig
from .reports.dataset import DatasetReport
from .errors import JobNotFound, TuneforgeError
from .reports.gguf import GGUFReport
from .jobs.service import LOG_TAIL_MAX, JobStatus, JobSummary, SubmitResult
from .types import STAGES
from .reports.plan import Plan
from .setup_check import SetupReport

SERVER_NAME = "tuneforge"

INSTRUCTIONS = """\
tuneforge fine-tunes open LLMs (SFT, DPO, GRPO, KTO, reward models) locally or on Hugging Face Jobs and
exports verified GGUF files. Workflow: check_setup -> validate_dataset -> plan_training -> show the user
the plan (hardware, time, cost) and ask before any paid run -> submit_training -> report the job id,
URL and how to check -> job_status only when the user asks -> export_gguf when training is COMPLETED.
Every error names its fix; follow it rather than retrying blindly."""

#: how much of a log one call returns (lines and characters); older lines come with `skip`
LOG_LINES_DEFAULT = 100
LOG_CHARS_MAX = 24_000
LINE_CHARS_MAX = 600
STATUS_TAIL_MAX = 50

Method = Literal["sft", "dpo", "grpo", "kto", "reward"]
Backend = Literal["local", "hf"]
Stage = Literal["SCHEDULING", "RUNNING", "COMPLETED", "ERROR", "CANCELED"]
assert set(METHODS) == set(Method.__args__) and set(STAGES) == set(Stage.__args__)  # type: ignore[attr-defined]


# ---- result models the tools add on top of the core's ------------------------------------------------


class JobList(BaseModel):
    jobs: list[JobSummary]
    count: int
    next: str = Field(description="How to look closer at one job.")


class JobLogs(BaseModel):
    job_id: str
    lines: list[str] = Field(description="Log lines, oldest first (long lines are cut at 600 characters).")
    first_line: int = Field(description="1-based number of the first returned line in the whole log.")
    total_lines: int
    truncated: bool = Field(description="Older (or newer, with skip) lines exist that were not returned.")
    more: str = Field(description="How to get the lines not returned.")


class JobWait(BaseModel):
    job: JobStatus
    finished: bool = Field(description="The job reached a terminal stage (COMPLETED, ERROR or CANCELED).")
    waited_seconds: float
    next: str


# ---- helpers -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def tool_errors() -> Iterator[None]:
    """TuneforgeError (and a core model's ValidationError) -> a tool error the agent can act on."""
    try:
        yield
    except JobNotFound as exc:  # its own fix names the CLI; an agent has a tool for it
        raise ToolError(f"{exc.message}\nFix: call list_jobs and use one of the job ids it returns.") from exc
    except TuneforgeError as exc:
        raise ToolError(str(exc)) from exc
    except ValidationError as exc:
        from .config import config_error

        raise ToolError(str(config_error(exc, "tool arguments"))) from exc


def _cut(line: str) -> str:
    return line if len(line) <= LINE_CHARS_MAX else line[: LINE_CHARS_MAX - 1] + "…"


def _compact_status(status: JobStatus) -> JobStatus:
    return status.model_copy(update={"log_tail": [_cut(line) for line in status.log_tail]})


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def describe(fn: Any) -> str:
    """A tool's description from its docstring: dedented, paragraphs joined into single lines."""
    text = inspect.cleandoc(fn.__doc__ or "")
    return re.sub(r"(?<!\n)\n(?!\n)", " ", text)


def _service():
    from .jobs.service import JobService

    return JobService()


# ---- annotations -------------------------------------------------------------------------------------

#: reads local state or the Hub (cloud job status, dataset and model metadata); changes nothing
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
#: starts work that uses the machine or (backend hf) costs money
SUBMIT = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True)
#: stops a job: its unsaved progress is lost
CANCEL = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True)
#: writes new files next to a model; never changes the model itself
EXPORT = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)

JobId = Annotated[
    str,
    Field(min_length=3, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
          description="A tuneforge job id as returned by submit_training or list_jobs, e.g. tf-20260101-120000-abc123."),
]


# ---- the server --------------------------------------------------------------------------------------


def build_server() -> MCPServer:
    server = MCPServer(
        name=SERVER_NAME,
        title="tuneforge",
        description="Fine-tune open LLMs: validate data, plan hardware and cost, train, export GGUF.",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )

    def tool(name: str, title: str, annotations: ToolAnnotations):
        def register(fn):
            server.add_tool(fn, name=name, title=title, description=describe(fn), annotations=annotations)
            return fn

        return register

    @tool("check_setup", "Check setup", READ_ONLY)
    def check_setup(
        online: Annotated[bool, Field(description="Also ask the Hub who the token belongs to (network call).")] = False,
    ) -> SetupReport:
        """Check whether this machine can train and export: Hugging Face token (present, and where it comes
        from; never its value), which backends (local, hf) are usable, torch and GPUs, the training
        packages, free disk under $TUNEFORGE_HOME and the cached GGUF toolchain. Use it first in a session,
        and whenever a submit fails for a setup reason. `next_steps` lists what to fix."""
        from .setup_check import check_setup as _check

        with tool_errors():
            return _check(online=online)

    @tool("validate_dataset", "Validate a dataset", READ_ONLY)
    def validate_dataset(
        source: Annotated[str, Field(min_length=1, description="Local .jsonl/.json/.csv/.parquet file or folder, or a Hub dataset id (owner/name).")],
        method: Annotated[Literal["auto", "sft", "dpo", "grpo", "kto", "reward"], Field(description="Training method to check for; 'auto' says which methods the data fits.")] = "auto",
        model: Annotated[str | None, Field(description="Base model (Hub id or local dir): adds token-length statistics with its tokenizer and chat template.")] = None,
        max_length: Annotated[int | None, Field(ge=16, le=262144, description="Max sequence length to check rows against.")] = None,
        eval_source: Annotated[str | None, Field(description="A separate eval file or Hub id to check as well.")] = None,
    ) -> DatasetReport:
        """Read the WHOLE dataset (every row, not a sample) and report whether each method can train on it:
        format detected, column mapping to propose (pass it to submit_training as dataset.column_map), bad
        rows with their line numbers, duplicates, token lengths. Use before planning or training on any
        data, and after the user edits their data."""
        from .doctor import validate

        with tool_errors():
            return validate(source, method=method, model=model, max_length=max_length, eval_source=eval_source)

    @tool("plan_training", "Plan a training run", READ_ONLY)
    def plan_training(
        model: Annotated[str, Field(min_length=1, description="Base model: Hub id (e.g. Qwen/Qwen3-0.6B) or local model directory.")],
        method: Annotated[Method, Field(description="Training method.")] = "sft",
        dataset: Annotated[str | None, Field(description="Training data (file, folder or Hub id): the plan counts its rows and tokens.")] = None,
        backend: Annotated[Backend, Field(description="'hf' (default): Hugging Face Jobs, priced per hour; 'local': this machine.")] = "hf",
        flavor: Annotated[str | None, Field(description="Plan on this Hugging Face Jobs flavor only (e.g. a10g-large) instead of the cheapest that fits.")] = None,
        peft: Annotated[Literal["auto", "lora", "qlora", "none"], Field(description="LoRA, QLoRA, full fine-tune ('none'), or 'auto' to let the planner choose.")] = "auto",
        max_length: Annotated[int | None, Field(ge=16, le=262144, description="Max tokens per example (default 1024).")] = None,
        epochs: Annotated[float, Field(gt=0, le=100, description="Passes over the training data.")] = 1.0,
        max_steps: Annotated[int | None, Field(ge=1, description="Stop after this many optimizer steps (a short trial run).")] = None,
        batch_size: Annotated[int | None, Field(ge=1, le=4096, description="Per-device batch size (default 4).")] = None,
        budget_usd: Annotated[float | None, Field(gt=0, description="Spending limit: over it, the plan proposes fewer steps or a cheaper setup.")] = None,
    ) -> Plan:
        """Work out the hardware (flavor and GPU count), memory, time, cost and job timeout of a run before
        starting it, from the model's real parameter count and the dataset's real token counts, with the reasons
        and cheaper alternatives. Use after validate_dataset and before submit_training; show the user the
        flavor, hours and cost and ask before any paid (backend='hf') run."""
        from .planner import plan

        options = {k: v for k, v in {"max_length": max_length, "max_steps": max_steps, "batch_size": batch_size,
                                     "budget_usd": budget_usd}.items() if v is not None}
        with tool_errors():
            return plan(model, method=method, dataset=dataset, backend=backend, flavor=flavor, peft=peft,
                        epochs=epochs, **options)

    @tool("submit_training", "Submit a training job", SUBMIT)
    def submit_training(
        model: Annotated[str | None, Field(description="Base model: Hub id or local model directory.")] = None,
        dataset: Annotated[str | None, Field(description="Training data: local file/folder or Hub dataset id.")] = None,
        method: Annotated[Method | None, Field(description="Training method (default sft).")] = None,
        backend: Annotated[Backend, Field(description="'local' runs here as a detached process; 'hf' runs on Hugging Face Jobs and is billed.")] = "local",
        flavor: Annotated[str | None, Field(description="Hugging Face Jobs hardware flavor (default: the plan's).")] = None,
        confirmed: Annotated[bool, Field(description="Set true only after the user saw the plan's cost and agreed; required for backend='hf'.")] = False,
        config: Annotated[RunConfig | None, Field(description="A full training config (all RunConfig fields); the flat arguments override it.")] = None,
        config_path: Annotated[str | None, Field(description="A YAML/JSON training config file on this machine; the flat arguments and `config` override it.")] = None,
        column_map: Annotated[dict[str, str] | None, Field(description="Target column -> source column, as validate_dataset proposes.")] = None,
        eval_dataset: Annotated[str | None, Field(description="A separate eval file or Hub id.")] = None,
        max_steps: Annotated[int | None, Field(ge=1, description="Stop after this many optimizer steps.")] = None,
        epochs: Annotated[float | None, Field(gt=0, le=100, description="Passes over the training data (default 1).")] = None,
        learning_rate: Annotated[float | None, Field(gt=0, lt=1, description="Peak learning rate (default 2e-4, suited to LoRA).")] = None,
        peft: Annotated[Literal["lora", "qlora", "none"] | None, Field(description="LoRA (default), QLoRA or a full fine-tune.")] = None,
        max_length: Annotated[int | None, Field(ge=16, le=262144, description="Max tokens per example; longer ones are truncated (default 1024).")] = None,
        push_to_hub: Annotated[str | None, Field(description="Hub repo id (your-name/model) to push the result to; required for backend='hf'.")] = None,
        merge: Annotated[bool | None, Field(description="Also save the LoRA adapter merged into the base model (needed for GGUF of the full model).")] = None,
        timeout_seconds: Annotated[int | None, Field(ge=60, le=7 * 24 * 3600, description="Job time limit (default: the plan's estimate with a margin).")] = None,
    ) -> SubmitResult:
        """Start a fine-tuning job and return at once with its id, URL, output folder and estimated cost.
        Use only after validate_dataset and plan_training, and - for backend='hf', which costs money - only
        after the user agreed to the plan's cost (then pass confirmed=true). Give either model + dataset,
        a `config`, or a `config_path`. Afterwards tell the user the job id, the URL and how to check it;
        do not poll unless they ask."""
        from .config import load_mapping

        with tool_errors():
            data: dict[str, Any] = load_mapping(config_path) if config_path else {}
            if isinstance(data.get("dataset"), str):
                data["dataset"] = {"path": data["dataset"]}
            if config is not None:
                data = _deep_merge(data, config.model_dump(exclude_unset=True))
            flat: dict[str, Any] = {
                "model": model, "method": method, "max_length": max_length, "push_to_hub": push_to_hub,
                "merge": merge, "timeout_seconds": timeout_seconds,
                "dataset": {k: v for k, v in {"path": dataset, "eval_path": eval_dataset, "column_map": column_map}.items() if v is not None},
                "train": {k: v for k, v in {"max_steps": max_steps, "epochs": epochs, "learning_rate": learning_rate}.items() if v is not None},
                "peft": {"kind": peft} if peft else {},
            }
            data = _deep_merge(data, {k: v for k, v in flat.items() if v not in (None, {})})
            missing = [name for name in ("model", "dataset") if not data.get(name)]
            if missing:
                raise TuneforgeError(
                    f"submit_training needs {' and '.join(missing)}.",
                    "Pass model and dataset, or a full `config`, or a `config_path`.",
                )
            run_config = RunConfig.from_dict(data, source=config_path or "submit_training arguments")
            if backend == "hf" and not run_config.push_to_hub:
                raise TuneforgeError(
                    "A Hugging Face Jobs run needs somewhere to push: the cloud machine is deleted when the job ends.",
                    "Ask the user for a model repo they can write to and pass it as push_to_hub='their-name/model-name'.",
                )
            if backend == "hf" and not confirmed:
                raise TuneforgeError(
                    "A Hugging Face Jobs run is billed to the user's account and needs their go-ahead.",
                    "Call plan_training with backend='hf', show the user the flavor, hours and cost, ask them, "
                    "then call submit_training again with confirmed=true.",
                )
            from .actions.train import start_training

            result = start_training(run_config, backend=backend, flavor=flavor)
        where = f" and the URL {result.url}" if result.url else ""
        return result.model_copy(update={"next": (
            f"Tell the user the job id {result.job_id}{where}; check it with job_status(job_id='{result.job_id}') "
            f"only when they ask (CLI: tuneforge jobs status {result.job_id}).")})

    @tool("job_status", "Job status", READ_ONLY)
    def job_status(
        job_id: JobId,
        log_tail: Annotated[int, Field(ge=0, le=STATUS_TAIL_MAX, description="Log lines to include (0-50).")] = 20,
    ) -> JobStatus:
        """Stage (SCHEDULING, RUNNING, COMPLETED, ERROR, CANCELED), latest progress (step, loss, tokens/s,
        ETA), cost so far, outputs (adapter, merged model, eval loss before/after) and the last log lines of
        one job. Use when the user asks how a job is doing, or to read the outputs of a finished job."""
        with tool_errors():
            return _compact_status(_service().status(job_id, log_tail=log_tail))

    @tool("job_logs", "Job logs", READ_ONLY)
    def job_logs(
        job_id: JobId,
        tail: Annotated[int, Field(ge=1, le=LOG_TAIL_MAX, description="How many lines to return, counting back from the end (after skip).")] = LOG_LINES_DEFAULT,
        skip: Annotated[int, Field(ge=0, description="Leave out this many newest lines first: page back with skip = previous skip + tail.")] = 0,
    ) -> JobLogs:
        """A window of one job's log, newest lines by default, capped at 500 lines and about 24,000
        characters; `more` says how to page back. Use to diagnose a failed or stuck job (job_status already
        shows the last lines)."""
        with tool_errors():
            service = _service()
            job = service.store.get(job_id)
            all_lines = service.logs(job_id, tail=None, job=job)
        total = len(all_lines)
        end = max(0, total - skip)
        start = max(0, end - tail)
        lines = [_cut(line) for line in all_lines[start:end]]
        chars = 0
        keep = len(lines)
        for i in range(len(lines) - 1, -1, -1):  # keep the newest lines within the character budget
            chars += len(lines[i]) + 1
            if chars > LOG_CHARS_MAX:
                keep = len(lines) - 1 - i
                break
        lines = lines[len(lines) - keep:]
        start = end - len(lines)
        older = start > 0
        newer = end < total
        if older:
            more = (f"{start} older lines: call job_logs with skip={total - start} to page back; "
                    f"the whole log is {job.log_path} (`tuneforge jobs logs {job_id} --all`).")
        else:
            more = "This is the start of the log." + (" Newer lines: lower skip." if newer else "")
        return JobLogs(job_id=job_id, lines=lines, first_line=start + 1, total_lines=total,
                       truncated=older or newer, more=more)

    @tool("list_jobs", "List jobs", READ_ONLY)
    def list_jobs(
        limit: Annotated[int, Field(ge=1, le=200, description="At most this many jobs, newest first.")] = 20,
        stage: Annotated[Stage | None, Field(description="Only jobs in this stage.")] = None,
    ) -> JobList:
        """Recent tuneforge jobs on every backend, newest first, with stage and step. Use when the user asks
        about their jobs or has lost a job id."""
        with tool_errors():
            jobs = _service().list(limit=limit, stage=stage)
        return JobList(jobs=jobs, count=len(jobs), next="job_status(job_id) shows one job in detail.")

    @tool("cancel_job", "Cancel a job", CANCEL)
    def cancel_job(job_id: JobId) -> JobStatus:
        """Stop a running or scheduled job (the whole local process group, or the cloud job); a finished job
        is left as it is. Partial checkpoints stay on disk. Use only when the user asks to stop a job."""
        from .jobs.service import to_status

        with tool_errors():
            return to_status(_service().cancel(job_id), [])

    @tool("wait_for_job", "Wait for a job", READ_ONLY)
    async def wait_for_job(
        job_id: JobId,
        ctx: Context,
        timeout_seconds: Annotated[float, Field(gt=0, le=3600, description="Stop waiting after this long; the job keeps running.")] = 600,
        poll_seconds: Annotated[float, Field(ge=0.2, le=60, description="How often to check.")] = 2.0,
    ) -> JobWait:
        """Wait until a job ends (or the timeout passes), sending progress notifications (step of total
        steps, loss) meanwhile. Use only when the user wants to wait for the result now, e.g. before an
        export; otherwise report the job id and let them ask for status later."""
        service = _service()
        started = anyio.current_time()
        deadline = started + timeout_seconds
        last: tuple[Any, ...] | None = None
        while True:
            with tool_errors():
                job = await anyio.to_thread.run_sync(service.refresh, job_id)
            p = job.progress or {}
            step, total = p.get("step"), p.get("total_steps")
            note = f"{job.stage}: {job.message}" if not p else f"{job.stage} step {step}/{total}" + (
                f", loss {p['loss']:.4f}" if isinstance(p.get("loss"), (int, float)) else "")
            if (job.stage, step, note) != last:
                await ctx.report_progress(float(step or 0), float(total) if total else None, note)
                last = (job.stage, step, note)
            waited = anyio.current_time() - started
            if job.terminal or anyio.current_time() >= deadline:
                break
            await anyio.sleep(min(poll_seconds, max(0.0, deadline - anyio.current_time())))
        with tool_errors():
            status = await anyio.to_thread.run_sync(lambda: service.status(job_id, log_tail=20 if job.stage == "ERROR" else 0))
        if job.terminal:
            nxt = (f"Finished: report the outputs (eval loss before/after in outputs.result); "
                   f"export_gguf(job_id='{job_id}') makes verified GGUF files."
                   if job.stage == "COMPLETED" else "Read log_tail (or job_logs) for the cause; the error names the fix.")
        else:
            nxt = f"Still {job.stage} after {waited:.0f} s; it keeps running. Call wait_for_job again or job_status later."
        return JobWait(job=_compact_status(status), finished=job.terminal, waited_seconds=round(waited, 1), next=nxt)

    @tool("export_gguf", "Export GGUF", EXPORT)
    async def export_gguf(
        ctx: Context,
        model: Annotated[str | None, Field(description="A model folder, a LoRA adapter folder (merged into its base first) or a Hub model id.")] = None,
        job_id: Annotated[str | None, Field(description="Export the model of this finished training job instead of naming one.")] = None,
        quants: Annotated[list[str] | None, Field(description="GGUF types, e.g. ['q4_k_m', 'q8_0'] (default f16 and q4_k_m).")] = None,
        out: Annotated[str | None, Field(description="Output folder (default: the job's outputs/gguf, or $TUNEFORGE_HOME/gguf/NAME).")] = None,
        base: Annotated[str | None, Field(description="Base model of a LoRA adapter, when adapter_config.json does not name one that exists.")] = None,
        push_to: Annotated[str | None, Field(description="Hub repo (your-name/name-GGUF) to upload the verified files to; only when the user asked for it.")] = None,
        private: Annotated[bool | None, Field(description="Create the Hub repo as private (with push_to).")] = None,
        system_prompt: Annotated[str | None, Field(description="System prompt for the Ollama Modelfile (default: the training job's).")] = None,
    ) -> GGUFReport:
        """Convert a model to GGUF with llama.cpp's own converter and quantizer at one pinned version (LoRA
        adapters are merged first), load and check every file against the original model, and write an Ollama
        Modelfile. Long (minutes; the first export also builds the toolchain): sends progress notifications.
        Use when the user wants a GGUF (llama.cpp, Ollama, LM Studio) of a finished job or a model folder."""
        from .gguf import export_gguf as export

        def on_progress(step: int, total: int, message: str) -> None:  # runs in the worker thread
            anyio.from_thread.run(ctx.report_progress, float(step), float(total) if total else None, str(message)[:300])

        def run() -> Any:
            return export(model, quants=quants, out=out, base=base, job_id=job_id, push_to=push_to,
                          private=private, system_prompt=system_prompt, progress=on_progress)

        with tool_errors():
            return await anyio.to_thread.run_sync(run)

    return server


def serve() -> None:
    """Run the server on stdin/stdout until the client closes the stream."""
    build_server().run("stdio")


__all__ = ["build_server", "serve", "INSTRUCTIONS", "SERVER_NAME"]
