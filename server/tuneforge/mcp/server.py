"""The MCP server: registers the tools (each a function in `tools/`) and serves them on stdio.

Start-up stays light: this module and the tool modules import the MCP SDK, pydantic and tuneforge's
model modules only; capabilities (dataset doctor, planner, training, GGUF export) load inside the
tools that use them, so nothing here imports torch, transformers, trl, peft or datasets.
"""

from __future__ import annotations

import inspect
import json
import re
from typing import Any, Callable

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import ValidationError

from .. import __version__
from .annotations import CANCEL, EXPORT, READ_ONLY, SUBMIT
from .errors import argument_error, tool_error_text
from .tools.datasets import validate_dataset
from .tools.diagnosis import diagnose_log
from .tools.evaluation import evaluate_models
from .tools.gguf import export_gguf
from .tools.jobs import cancel_job, job_logs, job_status, list_jobs
from .tools.pipelines import cancel_pipeline, list_pipelines, pipeline_status, plan_pipeline, resume_pipeline, run_pipeline
from .tools.planning import plan_training
from .tools.recovery import resume_job, retry_job
from .tools.runs import NOTE, compare_runs, list_runs, note_run, search_runs, show_run
from .tools.sweeps import cancel_sweep, run_sweep, sweep_status
from .tools.setup import check_setup
from .tools.training import submit_training
from .tools.waiting import wait_for_job
from .wording import agent_answer

SERVER_NAME = "tuneforge"

INSTRUCTIONS = """\
tuneforge fine-tunes open LLMs (SFT, DPO, GRPO, KTO, reward models) locally or on Hugging Face Jobs and
exports verified GGUF files. Workflow: check_setup -> validate_dataset -> plan_training -> show the user
the plan (hardware, time, cost) and ask before any paid run -> submit_training -> report the job id,
URL and how to check -> job_status only when the user asks -> export_gguf when training is COMPLETED.
Every error names its fix; follow it rather than retrying blindly."""

#: (tool function, title, annotations), in the order clients list them; the name is the function's
TOOLS: tuple[tuple[Callable[..., Any], str, ToolAnnotations], ...] = (
    (check_setup, "Check setup", READ_ONLY),
    (validate_dataset, "Validate a dataset", READ_ONLY),
    (plan_training, "Plan a training run", READ_ONLY),
    (submit_training, "Submit a training job", SUBMIT),
    (job_status, "Job status", READ_ONLY),
    (job_logs, "Job logs", READ_ONLY),
    (diagnose_log, "Diagnose a training log", READ_ONLY),
    (list_jobs, "List jobs", READ_ONLY),
    (cancel_job, "Cancel a job", CANCEL),
    (resume_job, "Resume a stopped job from its checkpoint", SUBMIT),
    (retry_job, "Retry a stopped job (with the fix)", SUBMIT),
    (wait_for_job, "Wait for a job", READ_ONLY),
    (export_gguf, "Export GGUF", EXPORT),
    (evaluate_models, "Evaluate models on held-out data", READ_ONLY),
    (plan_pipeline, "Plan a multi-stage pipeline", READ_ONLY),
    (run_pipeline, "Run a multi-stage pipeline (train, preferences, eval, GGUF)", SUBMIT),
    (pipeline_status, "Pipeline status", READ_ONLY),
    (list_pipelines, "List pipelines", READ_ONLY),
    (cancel_pipeline, "Cancel a pipeline", CANCEL),
    (resume_pipeline, "Resume a pipeline", SUBMIT),
    (list_runs, "List recorded runs (the ledger)", READ_ONLY),
    (show_run, "Show a recorded run", READ_ONLY),
    (compare_runs, "Compare two runs", READ_ONLY),
    (note_run, "Note what a run taught", NOTE),
    (search_runs, "Search runs and notes", READ_ONLY),
    (run_sweep, "Plan or start a sweep", SUBMIT),
    (sweep_status, "Sweep status", READ_ONLY),
    (cancel_sweep, "Cancel a sweep", CANCEL),
)


def describe(fn: Callable[..., Any]) -> str:
    """A tool's description from its docstring: dedented, paragraphs joined into single lines."""
    text = inspect.cleandoc(fn.__doc__ or "")
    return re.sub(r"(?<!\n)\n(?!\n)", " ", text)


class TuneforgeServer(MCPServer):
    """The SDK's server, with every answer in the agent's words (mcp/wording.py): arguments pydantic refuses
    come back as `[tool.invalid_arguments]` with the fields and a fix, and advice in results names tools and
    arguments, not CLI flags."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            result = await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError) and not isinstance(exc, UnexpectedToolError):
                raise ToolError(f"Error executing tool {name}: {tool_error_text(argument_error(name, exc.__cause__))}") \
                    from exc.__cause__
            raise
        if isinstance(result, CallToolResult) and result.structured_content is not None and not result.is_error:
            worded = agent_answer(result.structured_content)
            # the text an agent reads leaves out empty fields (null says nothing); structured content keeps them all
            result = result.model_copy(update={
                "structured_content": worded,
                "content": [TextContent(type="text", text=json.dumps(without_nulls(worded), indent=2, ensure_ascii=False))]})
        return result


def without_nulls(value: Any) -> Any:
    """VALUE with every null-valued key left out of its mappings, at every depth."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def build_server() -> MCPServer:
    server = TuneforgeServer(
        name=SERVER_NAME,
        title="tuneforge",
        description="Fine-tune open LLMs: validate data, plan hardware and cost, train, export GGUF.",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )
    for fn, title, hints in TOOLS:
        server.add_tool(fn, name=fn.__name__, title=title, description=describe(fn), annotations=hints)
    return server


def serve() -> None:
    """Run the server on stdin/stdout until the client closes the stream."""
    build_server().run("stdio")


__all__ = ["TuneforgeServer", "build_server", "serve", "describe", "TOOLS", "INSTRUCTIONS", "SERVER_NAME"]
