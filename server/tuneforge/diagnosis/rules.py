"""The patterns of each failure kind, in the words torch, transformers, TRL, datasets, huggingface_hub,
safetensors, accelerate, bitsandbytes, llama.cpp, the OS and tuneforge's own runner and templates use.

A rule is a kind, a tag (which variant of the kind: the fix can depend on it, e.g. bf16 vs 4-bit for
unsupported hardware) and one regular expression matched against each cleaned log line. When lines of
several kinds match, the kind earlier in `PRIORITY` wins: the most specific root cause first (a CUDA OOM
that later breaks NCCL is an OOM; a 403 on a gated repo is gated_model, not auth).
"""

from __future__ import annotations

import bisect
import itertools
import re
from typing import NamedTuple


class Rule(NamedTuple):
    kind: str
    tag: str
    pattern: re.Pattern[str]
    confirm: re.Pattern[str] | None = None  # the whole line must also match this (a fast literal pattern first)


#: a line our templates or runner wrote to stop a run: "ERROR: budget: ...", "error: divergence: ...", "budget: ..."
#: (a bracketed prefix before it is allowed: "[rank0]: ", "[2026-12-01 10:00:00] ")
_OURS = r"^(?:\[[^\]\n]*\]:?[ \t]*)?(?:ERROR:[ \t]*|error:[ \t]*)?"


def _ours(kind: str, tag: str, word: str) -> list[Rule]:
    """Our own verdict, `WORD: ...` at the start of a line: found by its literal, confirmed on the line."""
    return [Rule(kind, tag, re.compile(re.escape(word + ":")), re.compile(_OURS + re.escape(word + ":")))]


def _line(kind: str, tag: str, literal: str) -> Rule:
    """A line that is exactly this text (e.g. the shell's `Killed`), found by its literal."""
    return Rule(kind, tag, re.compile(re.escape(literal)), re.compile("^" + re.escape(literal) + "$"))


def _rule(kind: str, tag: str, *patterns: str) -> list[Rule]:
    """Rules of one kind and tag. Patterns are case-sensitive (the libraries' words are fixed; it keeps Python's
    literal-prefix search fast) and never cross a line: `.` stops at newlines, and no `\\s` is used."""
    return [Rule(kind, tag, re.compile(p, re.MULTILINE)) for p in patterns]


RULES: tuple[Rule, ...] = tuple([
    # ---- our own verdicts: the template watchdog, the budget guard, the runners' time limits ----
    *_ours("budget", "budget", "budget"), *_rule("budget", "budget", r"stopped at its budget", r"max_cost_usd .*(reached|exceed)"),
    *_ours("divergence", "watchdog", "divergence"),
    *_ours("timeout", "limit", "timeout"), *_rule("timeout", "limit", r"ran longer than its limit", r"Job (?:has )?timed out\b", r"job (?:has )?timed out\b",
           r"exceeded (?:its|the) (?:time ?limit|timeout)"),
    # ---- the disk ----
    *_rule("disk_full", "disk", r"No space left on device", r"\[Errno 28\]", r"ENOSPC\b", r"Disk quota exceeded",
           r"\[Errno 122\]", r"not enough space on the disk", r"PytorchStreamWriter failed writing file",
           r"file write failed"),
    # ---- memory: GPU (torch CUDA/MPS, cuBLAS, bitsandbytes offload), host (allocator, MemoryError, OOM killer) ----
    *_rule("out_of_memory", "gpu", r"CUDA out of memory", r"OutOfMemoryError", r"CUDA error: out of memory",
           r"MPS backend out of memory", r"CUBLAS_STATUS_ALLOC_FAILED", r"HIP out of memory",
           r"Make sure you have enough GPU RAM", r"ggml_cuda\w*: .*(?:out of memory|failed to allocate)",
           r"cudaMalloc failed: out of memory"),
    *_rule("out_of_memory", "host", r"DefaultCPUAllocator: can't allocate memory", r"MemoryError(?<!OutOfMemoryError)\b",
           r"\[Errno 12\] Cannot allocate memory", r"std::bad_alloc", r"killed by SIGKILL", r"OOMKilled\b",
           r"Out of memory: Kill(?:ed)? process", r"oom-kill", r"exit(?:ed with)? code 137\b", r"exit ?code[ \t]*:[ \t]*-9\b",
           r"exit status -9\b", r"Signal 9 \(SIGKILL\)", r"failed to allocate (?:CPU )?buffer",
           r"unable to allocate (?:\w+ )?backend buffer", r"Unable to allocate [\d.]+ [KMGT]i?B"),
    _line("out_of_memory", "host", "Killed"),
    # ---- the Hub: gated, payment, rate limit, token, missing repos and files ("Invalid username or password" is
    #      what the Hub says for a missing repo asked for without a token: not_found, not auth) ----
    *_rule("gated_model", "gated", r"GatedRepoError", r"Cannot access gated repo", r"is restricted and you are not in the authorized list",
           r"You are trying to access a gated repo", r"Access to (?:model|dataset) \S+ is restricted",
           r"awaiting a review from the repo authors", r"to ask for access"),
    *_rule("payment_required", "payment", r"402\b.*Payment Required", r"Payment Required", r"402 Client Error",
           r"needs a paid plan or credits", r"hf\.payment_required", r"nsufficient credits", r"nsufficient balance"),
    *_rule("rate_limited", "rate", r"429 Too Many Requests", r"Too Many Requests for url", r"429 Client Error",
           r"you have reached your '[^'\n]*' rate limit", r"rate-limiting this account", r"hf\.rate_limited",
           r"You've hit the rate limit"),
    *_rule("auth", "token", r"Invalid user token", r"Invalid credentials in Authorization header",
           r"token is read-only", r"Make sure your token has the correct permissions", r"403 Forbidden",
           r"You don't have the rights to", r"rejected the token", r"hf\.auth_invalid", r"hf\.forbidden",
           r"401\b.*Unauthorized", r"Unauthorized for url", r"Not logged in", r"Token is required",
           r"You must be authenticated", r"LocalTokenNotFoundError"),
    # ---- the network (before not_found: an unreachable Hub makes models and files look missing) ----
    *_rule("network", "network", r"ConnectionError\b", r"Max retries exceeded", r"Temporary failure in name resolution",
           r"Name or service not known", r"nodename nor servname", r"Failed to resolve", r"Connection refused",
           r"Connection reset by peer", r"Network is unreachable", r"ConnectTimeout", r"ReadTimeout", r"Read timed out",
           r"We couldn't connect to", r"outgoing traffic has been disabled", r"hf\.unreachable", r"hf\.timeout",
           r"did not answer in time", r"could not connect to Hugging Face", r"SSLError\b", r"RemoteDisconnected",
           r"IncompleteRead", r"httpx\.(?:ConnectError|RemoteProtocolError)"),
    *_rule("network", "incomplete", r"Error while deserializing header", r"MetadataIncompleteBuffer",
           r"incomplete metadata, file not fully covered", r"PytorchStreamReader failed reading zip archive",
           r"Consistency check failed: file should be of size"),
    *_rule("not_found", "hub", r"RepositoryNotFoundError", r"Repository Not Found for url", r"RevisionNotFoundError",
           r"Revision Not Found for url", r"EntryNotFoundError", r"Entry Not Found for url", r"does not appear to have a file named",
           r"is not a local folder and is not a valid model identifier", r"DatasetNotFoundError",
           r"doesn't exist on the Hub or cannot be accessed", r"DataFilesNotFoundError", r"No \(supported\) data files",
           r"hf\.not_found", r"could not download the (?:model|dataset|adapter)"),
    *_rule("not_found", "file", r"FileNotFoundError", r"No such file or directory", r"Unable to find '", r"\[Errno 2\]"),
    # ---- what the machine cannot do ----
    *_rule("unsupported_hardware", "bf16", r"doesn't support bf16", r"bf16 mixed precision requires", r"Bfloat16 is only supported",
           r"bf16.*(?:requires|not supported)", r"float16\b.*not (?:supported|implemented)"),
    *_rule("unsupported_hardware", "4bit", r"No GPU found\. A GPU is needed for quantization", r"QLoRA needs a CUDA GPU",
           r"compiled without GPU support", r"are supported by the bitsandbytes version you have installed",
           r"bitsandbytes.*(?:requires|needs) a (?:CUDA )?GPU"),
    *_rule("unsupported_hardware", "gpu", r"Torch not compiled with CUDA enabled", r"Found no NVIDIA driver",
           r"No CUDA GPUs are available", r"no kernel image is available for execution on the device",
           r"FlashAttention only supports Ampere GPUs or newer", r"requires Ampere or a newer GPU",
           r"CUDA capability sm_\d+ is not compatible", r"fp16 mixed precision requires a device"),
    # ---- the software and the data ----
    *_rule("chat_template", "none", r"tokenizer\.chat_template is not set", r"Cannot use chat template functions",
           r"does not have a chat template", r"o chat template"),
    *_rule("missing_dependency", "module", r"ModuleNotFoundError", r"No module named", r"ImportError:.*requires",
           r"requires the [\w.-]+ library but it was not found", r"ImportError: cannot import name",
           r"PackageNotFoundError", r"dependency\.missing", r"command not found", r"requires [\w.-]+ to be installed",
           r"pip install [\w.'\"<>=\[\]-]+` ?(?:first|to use)"),
    *_rule("dataset_format", "assistant_only", r"assistant_only_loss=True`, but the dataset is not conversational",
           r"`assistant_only_loss` argument is only supported for conversational"),
    *_rule("dataset_format", "data", r"ArrowInvalid", r"JSON parse error", r"JSONDecodeError", r"DatasetGenerationError",
           r"DatasetGenerationCastError", r"not in the dataset\. Current columns", r"dataset rows do not fit",
           r"column_map names columns the data lacks", r"a row (?:has no|lacks)\b", r"row has none of",
           r"Error tokenizing data", r"ArrowTypeError", r"Couldn't cast", r"CastError", r"no training (?:rows|pairs|examples|prompts)",
           r"KeyError: ['\"](?:messages|conversations|prompt|completion|chosen|rejected|text|label|answer|instruction|output)['\"]"),
])

#: kinds from the most specific root cause to the least
PRIORITY: tuple[str, ...] = (
    "budget", "divergence", "timeout", "disk_full", "out_of_memory", "gated_model", "payment_required", "rate_limited",
    "auth", "chat_template", "unsupported_hardware", "missing_dependency", "dataset_format", "network", "not_found",
)

assert set(PRIORITY) == {r.kind for r in RULES}, "every kind with rules has a place in PRIORITY"


#: at most this many matches of one rule are kept (a log repeating one warning a million times)
MATCHES_PER_RULE = 50


def scan(lines: list[str]) -> list[tuple[int, Rule]]:
    """(line index, rule) for each match in the lines, in line order. Each pattern runs once over the whole
    text (C-speed scanning, not one Python call per line and pattern)."""
    text = "\n".join(lines)
    starts = list(itertools.accumulate((len(line) + 1 for line in lines[:-1]), initial=0))
    found: set[tuple[int, str, str]] = set()
    out: list[tuple[int, Rule]] = []
    for rule in RULES:
        for m in itertools.islice(rule.pattern.finditer(text), MATCHES_PER_RULE):
            index = bisect.bisect_right(starts, m.start()) - 1
            if rule.confirm is not None and not rule.confirm.search(lines[index]):
                continue
            if (index, rule.kind, rule.tag) not in found:
                found.add((index, rule.kind, rule.tag))
                out.append((index, rule))
    return sorted(out, key=lambda item: item[0])


__all__ = ["Rule", "RULES", "PRIORITY", "scan"]
