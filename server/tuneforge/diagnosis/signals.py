"""What a log says, line by line, in the form the rules read: clean text, and the losses it reports.

Event lines (`##tuneforge-event {...}`) become their status message (a template's `error: ...`) or a loss;
every other line is cleaned as a terminal shows it (ANSI codes out, the last carriage-return segment) and
scrubbed of secrets: the saved or exported Hugging Face token and anything shaped like a token. The loss
of a plain TRL/transformers script is read from its logged dicts ({'loss': nan, 'grad_norm': ...}).
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from ..log_lines import visible
from ..progress import parse_event
from ..secrets import MASK, scrub, secret_values

#: a token-shaped word (hf_ followed by 30+ letters and digits), masked even when it is not this machine's
TOKEN_SHAPE = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
#: a URL's user:password@ part
URL_CREDENTIALS = re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+@")
#: a Trainer/TRL log dict's loss: {'loss': 1.23, ...}, {"loss": NaN}, loss=inf
LOSS = re.compile(r"""['"]?\bloss['"]?\s*[:=]\s*['"]?(?P<value>[-+]?(?:nan|inf(?:inity)?|\d+(?:\.\d*)?(?:e[-+]?\d+)?))""",
                  re.IGNORECASE)
#: how long one evidence line may be
LINE_CHARS = 400
#: a loss this many times the first one, for EXPLODE_STEPS reports in a row, is a diverging run
EXPLODE_FACTOR = 10.0
EXPLODE_STEPS = 3


#: a line that only warns: Python's warnings (UserWarning: ...), logging's WARNING, glog's W1201, "warning: ..."
WARNING = re.compile(r"\b[A-Z]\w*Warning: |\bWARNING\b|^W\d{4} |^(?:\S+ )?warning: |\[W[^\]]*\] ")


def is_warning(line: str) -> bool:
    return bool(WARNING.search(line))


class Loss(NamedTuple):
    step: int | None
    value: float
    line: str


class Reading(NamedTuple):
    lines: list[str]
    losses: list[Loss]


def clean(line: str, secrets: list[str]) -> str:
    """The line as a terminal shows it, scrubbed, cut at LINE_CHARS (the regular expressions run only on lines
    that may need them: a log can be millions of lines)."""
    text = visible(line) if ("\x1b" in line or "\r" in line) else line.rstrip()
    text = scrub(text, secrets)
    if "hf_" in text:
        text = TOKEN_SHAPE.sub(MASK, text)
    if "@" in text and "://" in text:
        text = URL_CREDENTIALS.sub("***@", text)
    return text if len(text) <= LINE_CHARS else text[: LINE_CHARS - 1] + "…"


def read(raw_lines: list[str], secrets: list[str] | None = None) -> Reading:
    """The log as clean, scrubbed lines (event lines as their message) and the losses it reports, in order."""
    secrets = secret_values() if secrets is None else secrets
    lines: list[str] = []
    losses: list[Loss] = []
    for raw in raw_lines:
        event = parse_event(raw)
        if event is not None:
            if event.get("type") == "progress" and isinstance(event.get("loss"), (int, float)):
                step = event.get("step") if isinstance(event.get("step"), int) else None
                losses.append(Loss(step, float(event["loss"]), f"step {step}: loss {event['loss']}"))
            elif event.get("type") == "status" and isinstance(event.get("message"), str):
                lines.append(clean(event["message"], secrets))
            continue
        text = clean(raw, secrets)
        if not text.strip():
            continue
        lines.append(text)
        if "loss" in text and (m := LOSS.search(text)):  # `\bloss`: eval_loss and train_loss are not the step's loss
            try:
                losses.append(Loss(None, float(m.group("value")), text))
            except ValueError:
                pass
    return Reading(lines, losses)


def diverged(losses: list[Loss]) -> list[str]:
    """The evidence that the loss diverged: the reports where it is NaN or infinite, or the run of reports
    EXPLODE_FACTOR times above the first loss; empty when it did not."""
    bad = [x.line for x in losses if not math.isfinite(x.value)]
    if bad:
        return bad
    finite = [x for x in losses if math.isfinite(x.value)]
    if len(finite) > EXPLODE_STEPS and finite[0].value > 0:
        tail = finite[-EXPLODE_STEPS:]
        if all(x.value > EXPLODE_FACTOR * finite[0].value for x in tail):
            return [finite[0].line, *(x.line for x in tail)]
    return []


__all__ = ["Loss", "Reading", "clean", "read", "diverged", "is_warning"]
