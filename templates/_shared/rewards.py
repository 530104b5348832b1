"""GRPO's built-in reward functions by name, and the columns they read (stdlib only).

One list for the GRPO template (which implements each name) and the server (which refuses an unknown
name when the config is validated, and picks `accuracy` when the data has a reference column and no
reward was named).
"""

from __future__ import annotations

#: name -> what it scores (the GRPO template implements each one)
REWARD_FUNCTIONS = {
    "accuracy": "the final answer matches the row's reference answer (numbers by value, text as whole words)",
    "exact_match": "the final answer equals the row's reference answer exactly (after normalising case and spaces)",
    "format": "the answer has the row's format_regex (or 'json'), else a <think>...</think> block then an answer",
    "length": "the completion is near the row's target_length tokens (else half of max_completion_length)",
}
REWARD_NAMES = tuple(sorted(REWARD_FUNCTIONS))
#: columns holding the answer a completion is checked against (the first one present is used)
REFERENCE_COLUMNS = ("answer", "solution", "reference", "ground_truth", "target", "expected")
#: rewards that need a reference column
NEEDS_REFERENCE = ("accuracy", "exact_match")
#: the reward chosen when none is named and the data has a reference column
DEFAULT_WITH_REFERENCE = ("accuracy",)


def unknown_rewards(names: list[str] | tuple[str, ...]) -> list[str]:
    return [n for n in names if n not in REWARD_FUNCTIONS]


def reward_choices() -> str:
    """The names and what each scores, for an error message."""
    return "; ".join(f"{name} ({what})" for name, what in sorted(REWARD_FUNCTIONS.items()))
