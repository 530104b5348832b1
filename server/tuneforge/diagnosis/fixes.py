"""What to do about each kind of failure: the fix in words and `retry_with`, the config change a retry
applies (dotted RunConfig field -> value), computed from the run's config.

The out-of-memory ladder: halve the per-device batch and double the accumulation (the same effective batch),
then gradient checkpointing, then QLoRA on a GPU (a smaller max_length on the host); past that, a bigger
machine (`jobs retry` escalates the flavor). Divergence: a learning rate 10 times lower. Timeout: twice the
limit, within the schema's maximum. Kinds a retry alone cannot fix (a token, a license, a missing repo or
file, the data) get no change, and a fix naming the command that helps.
"""

from __future__ import annotations

import re
from typing import Any

from ..config import RunConfig

GRAD_ACCUM_MAX = 4096
MIN_MAX_LENGTH = 16


def _field_max(model: Any, name: str) -> int | None:
    for meta in model.model_fields[name].metadata:
        if getattr(meta, "le", None) is not None:
            return int(meta.le)
    return None


TIMEOUT_MAX = _field_max(RunConfig, "timeout_seconds") or 7 * 24 * 3600


def _smaller_batch(config: RunConfig) -> dict[str, Any]:
    """Half the per-device batch (1 for an odd one), the accumulation raised to keep the effective batch."""
    batch, accum = config.train.per_device_batch_size, config.train.gradient_accumulation_steps
    smaller = batch // 2 if batch % 2 == 0 else 1
    if batch <= 1 or accum * batch // smaller > GRAD_ACCUM_MAX or (config.method == "kto" and smaller < 2):
        return {}
    return {"train.per_device_batch_size": smaller, "train.gradient_accumulation_steps": accum * batch // smaller}


def memory(config: RunConfig | None, gpu: bool) -> tuple[str, dict[str, Any]]:
    where = "GPU" if gpu else "host (RAM)"
    if config is None:
        return (f"The run ran out of {where} memory. Halve the per-device batch and double the accumulation "
                "(e.g. --batch-size 2 --grad-accum 8 for 4 x 4), then turn on gradient checkpointing, then use QLoRA "
                "(--peft qlora) or a machine with more memory."), {}
    if change := _smaller_batch(config):
        return (f"The run ran out of {where} memory: halve the per-device batch to "
                f"{change['train.per_device_batch_size']} and raise the accumulation to "
                f"{change['train.gradient_accumulation_steps']} (the same effective batch)."), change
    # None means on for GPUs and off on CPU (RunConfig)
    checkpointing_on = config.train.gradient_checkpointing or (config.train.gradient_checkpointing is None and gpu)
    if not checkpointing_on:
        return (f"The run ran out of {where} memory at the smallest batch: turn on gradient checkpointing "
                "(less memory for activations, about 30% slower)."), {"train.gradient_checkpointing": True}
    if gpu and config.peft.kind in ("lora", "none", "auto"):
        return ("The run ran out of GPU memory with batch 1 and gradient checkpointing: train a QLoRA adapter on the "
                "4-bit base model (--peft qlora), or use a GPU with more memory."), {"peft.kind": "qlora"}
    if not gpu and config.max_length // 2 >= MIN_MAX_LENGTH:
        half = config.max_length // 2
        return (f"The run ran out of host memory with batch 1 and gradient checkpointing: cut sequences to "
                f"--max-length {half} (longer rows are dropped or truncated), or use a machine with more RAM."), \
            {"max_length": half}
    return (f"The run ran out of {where} memory with every memory saving on: use a machine with more memory "
            "(a bigger flavor on Hugging Face Jobs) or a smaller model."), {}


def divergence(config: RunConfig | None, watchdog: bool) -> tuple[str, dict[str, Any]]:
    what = "The watchdog stopped the run: the loss diverged" if watchdog else "The loss diverged (NaN, inf or exploding)"
    if config is None:
        return f"{what}. Retry with a learning rate 10 times lower (--learning-rate).", {}
    lr = float(f"{config.train.learning_rate * 0.1:.3g}")
    decimal = f"{lr:.12f}".rstrip("0").rstrip(".")
    return (f"{what}. Retry with a learning rate 10 times lower (--learning-rate {decimal}); fp16 runs may also need "
            "bf16 or fp32."), {"train.learning_rate": lr}


def timeout(config: RunConfig | None) -> tuple[str, dict[str, Any]]:
    if config is None:
        return "The run hit its time limit. Give it a longer limit (--timeout), fewer steps (--max-steps) or a faster machine.", {}
    longer = min(config.timeout_seconds * 2, TIMEOUT_MAX)
    if longer <= config.timeout_seconds:
        return ("The run hit its time limit, already the longest allowed: train fewer steps (--max-steps), less data, "
                "or on a faster machine; `tuneforge jobs resume` continues from the last checkpoint."), {}
    return (f"The run hit its time limit of {config.timeout_seconds} s: give it {longer} s (--timeout {longer}), or "
            "resume from its last checkpoint with a longer limit."), {"timeout_seconds": longer}


def hardware(config: RunConfig | None, tags: set[str], evidence: list[str]) -> tuple[str, dict[str, Any]]:
    if "4bit" in tags:
        return ("4-bit quantization (QLoRA, bitsandbytes) needs a CUDA GPU: train a LoRA adapter here (--peft lora) "
                "or run on a GPU (--backend hf)."), ({"peft.kind": "lora"} if config is not None else {})
    if "bf16" in tags:
        return ("This machine cannot train in bf16 (it needs an Ampere or newer GPU; a T4 or a CPU cannot): use fp16 "
                "on an older GPU or fp32 on CPU (train.precision), or a newer GPU."), \
            ({"train.precision": "fp16" if re.search(r"cuda|gpu|compute capability|\bT4\b", " ".join(evidence), re.I)
              and "bf16/gpu" not in " ".join(evidence) else "fp32"} if config is not None else {})
    return ("The run needs a GPU this machine does not have (or a newer one): run on Hugging Face Jobs "
            "(--backend hf --flavor l4x1) or check the driver and torch's CUDA build with `tuneforge setup`."), {}


def _module(lines: list[str]) -> str | None:
    for line in lines:
        if m := re.search(r"No module named '([\w.-]+)'", line):
            return m.group(1).split(".")[0]
        if m := re.search(r"requires the ([\w.-]+) library", line):
            return m.group(1)
    return None


#: where a log names what is gated or missing: (pattern, group) in the libraries' words
_GATED_PAGE = re.compile(r"(?:Visit|access to it at) (https://huggingface\.co/[\w.-]+/[\w.-]+?)\.?(?: |$)")
_GATED_REPO = re.compile(r"Access to (?:model|dataset) ([\w.-]+/[\w.-]+) is restricted")
_MISSING = (re.compile(r"^(?:OSError: )?(\S+) is not a local folder"), re.compile(r"Unable to find '([^']+)'"),
            re.compile(r"(\S+ does not appear to have a file named [\w./-]+)"),
            re.compile(r"Dataset '([^']+)' doesn't exist on the Hub"), re.compile(r"No such file or directory: '([^']+)'"))


def _named(evidence: list[str], patterns: tuple[re.Pattern[str], ...]) -> str | None:
    for line in evidence:
        for pattern in patterns:
            if m := pattern.search(line):
                return m.group(1)
    return None


def fix_for(kind: str, tags: set[str], config: RunConfig | None, evidence: list[str]) -> tuple[str, dict[str, Any]]:
    """The fix and the retry's config change for a kind (the tags say which variant matched)."""
    if kind == "out_of_memory":
        return memory(config, gpu="gpu" in tags)
    if kind == "divergence":
        return divergence(config, watchdog="watchdog" in tags)
    if kind == "timeout":
        return timeout(config)
    if kind == "unsupported_hardware":
        return hardware(config, tags, evidence)
    if kind == "disk_full":
        keep = {"train.save_total_limit": 1} if config is not None and config.train.save_total_limit > 1 else {}
        return ("The disk is full: free space (old job folders under $TUNEFORGE_HOME, the Hugging Face cache) or point "
                "TUNEFORGE_HOME and HF_HOME at a bigger disk; keeping one checkpoint (train.save_total_limit 1) "
                "saves space."), keep
    if kind == "missing_dependency":
        module = _module(evidence)
        what = f"the Python package that provides `{module}`" if module else "the package the error names"
        return (f"Install {what} in the run's environment (pip install, or the training extra: "
                "pip install 'tuneforge[train]'), then retry; `tuneforge setup` lists what is missing."), {}
    if kind == "network" and tags == {"incomplete"}:
        return ("A downloaded file is incomplete or corrupt (a download cut short, or a Git LFS pointer instead of the "
                "weights): delete it from the Hugging Face cache (`hf cache delete`) and retry."), {}
    if kind == "dataset_format" and "assistant_only" in tags:
        return ("Training only on assistant turns needs conversational rows (messages): give the data as chats, or "
                "train on whole rows (assistant_only_loss false)."), \
            ({"assistant_only_loss": False} if config is not None else {})
    if kind == "gated_model" and (page := _named(evidence, (_GATED_PAGE,)) or _named(evidence, (_GATED_REPO,))):
        page = page if page.startswith("https://") else f"https://huggingface.co/{page}"
        return FIXES[kind].replace("open its page on huggingface.co", f"open {page}"), {}
    if kind == "not_found" and (what := _named(evidence, _MISSING)):
        return f"{FIXES[kind]} (Here: {what}.)", {}
    return FIXES[kind], {}


#: the fixed advice of kinds whose fix does not depend on the config
FIXES: dict[str, str] = {
    "auth": ("The Hugging Face token was refused (invalid, expired or read-only, or without rights on that namespace): "
             "run `hf auth login` with a token that has write access (https://huggingface.co/settings/tokens), "
             "then retry."),
    "gated_model": ("The model (or dataset) is gated: open its page on huggingface.co, accept the license or ask for "
                    "access with the account your token belongs to, wait for approval, then retry."),
    "not_found": ("A model, dataset, repo, revision or file was not found: check the id (and that a private repo's "
                  "token can read it) or the local path, e.g. with `tuneforge validate DATA`, then retry."),
    "payment_required": ("Hugging Face Jobs needs a paid plan or credits: add credits or a payment method at "
                         "https://huggingface.co/settings/billing, or train here with --backend local."),
    "rate_limited": "Hugging Face rate-limited the account (429): wait a few minutes and retry as it is.",
    "network": ("The network failed (DNS, connection, or the Hub did not answer): check the connection, proxy and "
                "HF_ENDPOINT (and that HF_HUB_OFFLINE is not set), then retry as it is."),
    "chat_template": ("The tokenizer has no chat template, so conversational rows cannot be formatted: use an instruct "
                      "or chat model, or give the data as prompt/completion or plain text (`tuneforge validate DATA` "
                      "shows the formats)."),
    "dataset_format": ("The data does not fit the method (a parse error, or a column missing): run "
                       "`tuneforge validate DATA --method METHOD` and use the --column-map it proposes, then retry."),
    "budget": ("The run reached its spending limit (max_cost_usd) and was stopped: raise the limit, train fewer steps, "
               "or resume from its last checkpoint with a higher limit."),
    "unknown": ("No known failure pattern in the log: read the whole log (`tuneforge jobs logs ID --raw`, or the file "
                "itself) for the first error."),
}

__all__ = ["fix_for", "FIXES", "TIMEOUT_MAX", "memory", "divergence", "timeout", "hardware"]
