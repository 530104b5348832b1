"""The MCP face's words: where the core says a CLI flag or command, an agent reads the tool argument or the tool.

The core words its fixes, warnings and notes once, for the CLI (the default face). This module is the one
place where they become MCP words, in three ways:

- `AGENT_FIXES`: a whole fix per error code, where the agent's next step differs from the CLI user's;
- `ARGUMENTS` and `COMMANDS`: every CLI flag and command as the tool argument or tool that does the same,
  applied to any text an answer carries (`agent_words`);
- `argument_fix`: the fix of a pydantic argument error, worded from the field names and what each expects
  (the error carries the fields in `details["fields"]`).

Log lines are never reworded: they are what the job printed.
"""

from __future__ import annotations

import re
from typing import Any

#: error code -> the fix an agent follows (the core's own fix names the CLI)
AGENT_FIXES: dict[str, str] = {
    "job.not_found": "call list_jobs and use one of the job ids it returns.",
    "job.ambiguous_id": "give more of the id; list_jobs returns whole ids.",
    "job.already_finished": "nothing to cancel; job_status(job_id) shows how it ended.",
    "recovery.not_confirmed": "Show the user the flavor, hours, cost and changes (the error's details), ask them, "
                              "then call the same tool again with confirmed=true.",
    "recovery.no_checkpoint": "Nothing to resume: offer retry_job(job_id) (apply_fix=true applies the diagnosis).",
    "pipeline.not_found": "call list_pipelines and use one of the pipeline ids it returns.",
    "pipeline.not_confirmed": "Show the user the plan's total cost (plan_pipeline, or the error's details), ask them "
                              "once, then call run_pipeline again with confirmed=true.",
    "job.wait_timeout": "it keeps running: call wait_for_job again, or job_status later.",
    "config.push_target_required": "Ask the user for a model repo they can write to and pass it as "
                                   "push_to_hub='their-name/model-name'.",
    "config.invalid": "Fix or remove the keys named; the tool's input schema lists the arguments and the "
                      "fields of `config`.",
    "config.not_a_mapping": "Point config_path at a YAML or JSON file holding a mapping of RunConfig fields.",
    "config.file_not_found": "Check config_path (a file on the machine the server runs on).",
    "gguf.nothing_to_export": "Pass model (a model folder, a LoRA adapter folder or a Hub id) or job_id of a "
                              "finished training job.",
    "diagnose.log_not_found": "Check path (a file on the machine the server runs on); for a tuneforge job, "
                              "job_status(job_id) already carries its diagnosis.",
    "diagnose.log_is_folder": "Pass the log file itself as path (a job folder's is job.log).",
}

#: CLI flag -> (tool argument, kind): "value" takes the word after the flag, "switch" means `=true`,
#: "name" is named without a value
ARGUMENTS: dict[str, tuple[str, str]] = {
    "backend": ("backend", "value"), "method": ("method", "value"), "model": ("model", "value"),
    "dataset": ("dataset", "value"), "eval-dataset": ("eval_dataset", "value"), "split": ("split", "value"),
    "flavor": ("flavor", "value"), "timeout": ("timeout_seconds", "value"), "max-steps": ("max_steps", "value"),
    "epochs": ("epochs", "value"), "learning-rate": ("learning_rate", "value"), "lr": ("learning_rate", "value"),
    "batch-size": ("batch_size", "value"), "grad-accum": ("grad_accum", "value"), "max-length": ("max_length", "value"),
    "peft": ("peft", "value"), "lora-r": ("lora_r", "value"), "lora-alpha": ("lora_alpha", "value"),
    "push-to": ("push_to_hub", "value"), "output": ("output_dir", "value"), "system-prompt": ("system_prompt", "value"),
    "seed": ("seed", "value"), "rows": ("rows", "value"), "budget-usd": ("budget_usd", "value"),
    "reward": ("rewards", "value"), "config": ("config_path", "value"), "job": ("job_id", "value"),
    "quant": ("quants", "value"), "out": ("out", "value"), "base": ("base", "value"), "tail": ("tail", "value"),
    "max-restarts": ("max_restarts", "value"), "apply-fix": ("apply_fix", "switch"), "yes": ("confirmed", "switch"),
    "merge": ("merge", "switch"), "online": ("online", "switch"), "raw": ("raw", "switch"),
    "trust-remote-code": ("trust_remote_code", "switch"), "private": ("private", "switch"),
    "max-cost-usd": ("max_cost_usd", "value"), "no-watchdog": ("watchdog=false", "name"),
    "notify": ("notify", "value"), "column-map": ("column_map", "name"), "wait": ("wait_for_job", "name"), "all": ("skip", "name"), "json": ("the structured result", "name"),
}
#: `tuneforge <command>` -> the tool that does it (jobs commands take the id that follows)
COMMANDS: dict[str, str] = {
    "setup": "check_setup", "validate": "validate_dataset", "plan": "plan_training", "train": "submit_training",
    "gguf": "export_gguf", "jobs list": "list_jobs", "jobs status": "job_status", "jobs logs": "job_logs",
    "jobs cancel": "cancel_job", "jobs wait": "wait_for_job", "jobs resume": "resume_job", "jobs retry": "retry_job",
    "runs list": "list_runs", "runs show": "show_run", "runs compare": "compare_runs", "runs note": "note_run",
    "runs search": "search_runs", "sweep run": "run_sweep", "sweep status": "sweep_status",
    "sweep wait": "sweep_status", "sweep cancel": "cancel_sweep",
    "pipeline run": "run_pipeline", "pipeline plan": "plan_pipeline", "pipeline status": "pipeline_status",
    "pipeline list": "list_pipelines", "pipeline cancel": "cancel_pipeline", "pipeline resume": "resume_pipeline",
}
#: words after a flag that are the sentence going on, not the flag's value
_NOT_VALUES = {"a", "an", "the", "with", "or", "and", "to", "for", "if", "is", "on", "in", "of", "first", "again",
               "instead", "only", "too", "also", "when", "so", "then", "here", "that", "this", "set", "was", "as"}
_COLUMN_MAPS = re.compile(r"--column-map[ =]([\w.-]+)=([\w.-]+)(?:\s+--column-map[ =]([\w.-]+)=([\w.-]+))*")
_COLUMN_MAP = re.compile(r"--column-map[ =]([\w.-]+)=([\w.-]+)")
_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)(?:([ =])([^\s,;:)`'\"]+))?")
_COMMAND = re.compile(r"`?tuneforge (jobs (?:list|status|logs|cancel|wait|resume|retry)|pipeline (?:run|plan|status|list|cancel|resume)|setup|validate|plan|train|gguf)\b([^`\n]*)`?")
_JOB_ID = re.compile(r"^\s*(tf-[\w.-]+|pl-[\w.-]+|ID|JOB_ID)")
#: answer fields that carry advice or descriptions (reworded); every other string (log lines, paths, ids) is kept
ADVICE_KEYS = {"message", "fix", "warnings", "notes", "reasons", "next", "more", "next_steps", "why", "note",
               "hint", "detail", "suggestion", "suggestions", "summary"}


def _value(flag: str, value: str) -> str:
    if re.fullmatch(r"-?\d+(\.\d+)?|[A-Z][A-Z_]*", value):  # a number or a placeholder (N, REPO)
        return value
    return repr(value)


def _command(match: re.Match[str]) -> str:
    tool = COMMANDS[match.group(1)]
    rest = match.group(2)
    job = _JOB_ID.match(rest)
    if tool in ("job_status", "job_logs", "cancel_job", "wait_for_job", "resume_job", "retry_job") and job:
        raw = ", raw=true" if "--raw" in rest else ""
        raw += ", apply_fix=true" if "--apply-fix" in rest else ""
        return f"{tool}(job_id='{job.group(1)}'{raw})"
    if tool in ("pipeline_status", "cancel_pipeline", "resume_pipeline") and job:
        return f"{tool}(pipeline_id='{job.group(1)}')"
    if "--help" in rest:
        return f"{tool}'s input schema"
    return tool


def _flag(match: re.Match[str]) -> str:
    name, sep, value = match.group(1), match.group(2), match.group(3)
    if name not in ARGUMENTS:
        return match.group(0)
    if value and value.endswith(".") and len(value) > 1:  # the sentence's full stop, not the value's
        return _flag(_FLAG.match(match.group(0)[:-1])) + "."
    argument, kind = ARGUMENTS[name]
    if kind == "switch":
        return f"{argument}=true" + (f"{sep}{value}" if value else "")
    if kind == "name" or not value or value.lower() in _NOT_VALUES:
        return argument + (f"{sep}{value}" if value else "")
    return f"{argument}={_value(name, value)}"


def _column_maps(match: re.Match[str]) -> str:
    text = match.group(0)
    stop = "." if text.endswith(".") else ""
    pairs = _COLUMN_MAP.findall(text.rstrip("."))
    return "column_map={" + ", ".join(f"'{t}': '{s}'" for t, s in pairs) + "}" + stop


def agent_words(text: str) -> str:
    """A sentence worded for the CLI, worded for an agent: tools for commands, arguments for flags."""
    if "--" not in text and "tuneforge " not in text:
        return text
    text = _COMMAND.sub(_command, text)
    text = _COLUMN_MAPS.sub(_column_maps, text)
    return _FLAG.sub(_flag, text)


def agent_answer(data: Any, key: str | None = None) -> Any:
    """An answer's advice strings (under ADVICE_KEYS, at any depth) in agent words; everything else as it is."""
    if isinstance(data, dict):
        return {k: agent_answer(v, k) for k, v in data.items()}
    if isinstance(data, list):
        return [agent_answer(v, key) for v in data]
    if isinstance(data, str) and key in ADVICE_KEYS:
        return agent_words(data)
    return data


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """An error's location as the argument path: list indexes and pydantic's union tags (`str-enum[Method]`) left out."""
    return ".".join(str(p) for p in loc if isinstance(p, str) and p.isidentifier()) or "(arguments)"


def argument_fix(errors: list[dict[str, Any]]) -> tuple[list[str], str]:
    """(the argument names, the fix) of a tool call's pydantic errors, worded in argument names."""
    expected: dict[str, list[str]] = {}
    fixes: dict[str, str] = {}
    for err in errors:
        field = field_name(err.get("loc", ()))
        kind, ctx = err.get("type", ""), err.get("ctx") or {}
        if "expected" in ctx:  # an enum or literal (several for a union): one list of the allowed values
            expected.setdefault(field, []).extend(v.strip() for v in re.split(r",| or ", str(ctx["expected"])) if v.strip())
            fixes[field] = ""
        elif kind == "missing":
            parent, _, leaf = field.rpartition(".")
            fixes.setdefault(field, f"pass {field}" + (f" (or {leaf} as its own argument)" if parent == "config" else ""))
        elif kind == "extra_forbidden":
            fixes.setdefault(field, f"remove {field} (not an argument here)")
        else:
            fixes.setdefault(field, f"pass {field} so that it fits ({err.get('msg', 'see the input schema')})")
    for field, values in expected.items():
        values = list(dict.fromkeys(values))
        fixes[field] = f"pass {field} as one of {', '.join(values[:-1])} or {values[-1]}" if len(values) > 1 else \
            f"pass {field} as {values[0]}"
    text = "; ".join(fixes.values())
    return list(fixes), text[:1].upper() + text[1:] + ". The tool's input schema lists every argument with its type and range."


__all__ = ["AGENT_FIXES", "ARGUMENTS", "COMMANDS", "ADVICE_KEYS", "agent_words", "agent_answer", "argument_fix", "field_name"]
