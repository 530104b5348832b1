"""GRPO's built-in reward functions (stdlib only): used by templates/grpo.py to train and by the eval block
(`reward:<name>` metrics, templates/_heldout.py) to score held-out answers. The names are rewards.py's."""

from __future__ import annotations

import json
import math
import re

from .rewards import REFERENCE_COLUMNS, REWARD_NAMES

FORMAT_COLUMNS = ("format_regex", "format")
THINK_FORMAT = re.compile(r"\s*<think>(?:(?!<think>).)*?</think>\s*\S.*", re.DOTALL)
NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


# ---- reward functions -------------------------------------------------------------------------------
# TRL calls each as f(prompts=, completions=, completion_ids=, **columns) -> one float (or None: no verdict)
# per completion; columns arrive as lists aligned with the completions.
def completion_text(completion) -> str:
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        return "".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))
    return str(completion or "")


def first_column(kwargs: dict, names: tuple[str, ...]) -> list | None:
    return next((kwargs[n] for n in names if kwargs.get(n) is not None), None)


def format_reward(completions, **kwargs) -> list[float]:
    """1.0 when the whole answer has the expected format, 0.5 when the format only occurs inside it, else 0.0.

    The format comes per row from a `format_regex` (or `format`) column: a regular expression, or "json"
    for an answer that parses as JSON (a ``` fence around it is allowed). Without such a column: a
    <think>...</think> block followed by a non-empty answer (DeepSeek-R1 style)."""
    specs = first_column(kwargs, FORMAT_COLUMNS) or [None] * len(completions)
    scores = []
    for completion, spec in zip(completions, specs):
        text = completion_text(completion).strip()
        if spec and str(spec).strip().lower() == "json":
            fenced = re.fullmatch(r"```[A-Za-z]*\s*(.*?)\s*```", text, re.DOTALL)
            try:
                json.loads(fenced.group(1) if fenced else text)
                scores.append(1.0)
            except ValueError:
                scores.append(0.0)
            continue
        pattern = re.compile(spec, re.DOTALL) if spec else THINK_FORMAT
        scores.append(1.0 if pattern.fullmatch(text) else 0.5 if pattern.search(text) else 0.0)
    return scores


def length_reward(completions, completion_ids=None, default_target: int = 64, **kwargs) -> list[float]:
    """1.0 at the target length in tokens, falling linearly to 0.0 at zero and at twice the target.

    The target comes per row from a `target_length` column, else half of max_completion_length."""
    targets = kwargs.get("target_length") or [None] * len(completions)
    scores = []
    for i, completion in enumerate(completions):
        n = len(completion_ids[i]) if completion_ids is not None else len(completion_text(completion).split())
        t = targets[i]
        t = t if isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 else default_target
        scores.append(max(0.0, 1.0 - abs(n - t) / t))
    return scores


def final_answer(text: str) -> str:
    """The part of a completion that states its answer: <answer>...</answer>, \\boxed{...}, the rest of the
    line after '####' or 'answer is'/'answer:', else everything after the <think> block."""
    text = re.sub(r"<think>.*?</think>", "", text, flags=re.DOTALL)
    for pattern in (r"(?s)<answer>(.*?)</answer>", r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}", r"####\s*([^\n]+)",
                    r"(?i)answer\s*(?:is|:)\s*([^\n]+)"):
        found = re.findall(pattern, text)
        if found:
            return found[-1].strip()
    return text.strip()


def reference_text(reference) -> str:
    text = str(reference)
    return text.rsplit("####", 1)[1].strip() if "####" in text else text.strip()  # GSM8K keeps it after ####


def normalise(text: str) -> str:
    text = re.sub(r"\\text\{([^}]*)\}", r"\1", str(text))
    return re.sub(r"\s+", " ", text).strip().strip(" .,;:!?\"'`$").casefold()


def to_number(text: str) -> float | None:
    t = normalise(text).replace(",", "").replace("$", "").rstrip("%").strip()
    try:
        if "/" in t:
            num, den = t.split("/", 1)
            return float(num) / float(den)
        return float(t) if t and "_" not in t else None
    except (ValueError, ZeroDivisionError):
        return None


def same_answer(answer: str, reference: str) -> bool:
    """Numbers compare by value (1,000 == 1000.0 == 2000/2); other text after normalising case, spaces, punctuation."""
    x, y = to_number(answer), to_number(reference)
    if x is not None and y is not None:
        return math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)
    return normalise(answer) == normalise(reference)


def exact_match_reward(completions, **kwargs) -> list[float | None]:
    """1.0 when the completion's final answer equals the reference answer (numbers by value), else 0.0."""
    refs = first_column(kwargs, REFERENCE_COLUMNS) or [None] * len(completions)
    return [None if ref is None or not normalise(reference_text(ref)) else
            float(same_answer(final_answer(completion_text(c)), reference_text(ref))) for c, ref in zip(completions, refs)]


def accuracy_reward(completions, **kwargs) -> list[float | None]:
    """Like exact_match, but lenient: a numeric reference is compared with the last number of the final
    answer, a text reference may appear as whole words inside it."""
    refs = first_column(kwargs, REFERENCE_COLUMNS) or [None] * len(completions)
    scores: list[float | None] = []
    for completion, ref in zip(completions, refs):
        reference = reference_text(ref) if ref is not None else ""
        if not normalise(reference):
            scores.append(None)
            continue
        answer = final_answer(completion_text(completion))
        if same_answer(answer, reference):
            scores.append(1.0)
        elif to_number(reference) is not None:
            numbers = NUMBER.findall(answer)
            scores.append(float(bool(numbers) and same_answer(numbers[-1], reference)))
        else:
            pattern = r"(?<!\w)" + re.escape(normalise(reference)) + r"(?!\w)"
            scores.append(float(bool(re.search(pattern, normalise(answer)))))
    return scores


REWARDS = {"format": format_reward, "length": length_reward, "accuracy": accuracy_reward, "exact_match": exact_match_reward}
assert set(REWARDS) == set(REWARD_NAMES), "templates/_shared/rewards.py lists the reward names this template implements"
