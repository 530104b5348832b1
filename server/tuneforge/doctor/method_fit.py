"""Which layout of a method the data follows, and under which column names.

Each method accepts a few layouts (TRL's dataset types, plus Alpaca and ShareGPT that tuneforge
converts itself). A layout is a set of target columns with the kinds of value they must hold. A
target is found under its own name or, failing that, under a column whose name means the same
(question -> prompt, good_response -> chosen): that rename is the `mapping`, target -> source, the
direction RunConfig.dataset.column_map uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..types import Method
from .column_stats import ColumnStats, describe_kind

TEXT = frozenset({"text"})
CHAT = frozenset({"messages"})
EITHER = frozenset({"text", "messages"})
LABEL = frozenset({"bool", "number", "text"})  # true/false, 1/0, yes/no, good/bad (checked value by value)
SHAREGPT = frozenset({"sharegpt"})


@dataclass(frozen=True)
class Target:
    name: str
    kinds: frozenset[str]
    required: bool = True
    trained: bool = False  # its tokens are learned (blank values leave nothing to learn)


@dataclass(frozen=True)
class Layout:
    name: str
    targets: tuple[Target, ...]
    converted: str | None = None  # tuneforge converts this layout itself: the sentence saying so
    note: str | None = None


PREFERENCE = Layout("preference", (Target("prompt", EITHER), Target("chosen", EITHER, trained=True),
                                   Target("rejected", EITHER, trained=True)))
PREFERENCE_IMPLICIT = Layout("preference_implicit", (Target("chosen", EITHER, trained=True),
                                                     Target("rejected", EITHER, trained=True)),
                             note="The prompt is the part chosen and rejected share; TRL splits it off.")
UNPAIR_NOTE = "TRL's KTO trainer splits each pair into one desirable and one undesirable example."

#: each method's layouts, in order of preference
LAYOUTS: dict[Method, tuple[Layout, ...]] = {
    Method.SFT: (
        Layout("messages", (Target("messages", CHAT, trained=True),)),
        Layout("sharegpt", (Target("conversations", SHAREGPT, trained=True),),
               converted="tuneforge converts ShareGPT turns (from/value) to chat messages."),
        Layout("prompt_completion", (Target("prompt", EITHER), Target("completion", EITHER, trained=True))),
        Layout("alpaca", (Target("instruction", TEXT), Target("output", TEXT, trained=True), Target("input", TEXT, required=False)),
               converted="tuneforge converts Alpaca rows (instruction/input/output) to chat messages."),
        Layout("text", (Target("text", TEXT, trained=True),)),
    ),
    Method.DPO: (PREFERENCE, PREFERENCE_IMPLICIT),
    Method.KTO: (
        Layout("unpaired_preference", (Target("prompt", EITHER), Target("completion", EITHER, trained=True), Target("label", LABEL))),
        Layout("preference", PREFERENCE.targets, note=UNPAIR_NOTE),
        Layout("preference_implicit", PREFERENCE_IMPLICIT.targets, note=UNPAIR_NOTE),
    ),
    Method.GRPO: (Layout("prompt_only", (Target("prompt", EITHER),),
                    note="Other columns are kept and passed to the reward functions."),),
    Method.REWARD: (PREFERENCE, PREFERENCE_IMPLICIT),
}

#: the method a row layout is usually trained with
METHOD_FOR_FORMAT: dict[str, Method] = {
    "messages": Method.SFT, "sharegpt": Method.SFT, "alpaca": Method.SFT, "prompt_completion": Method.SFT,
    "text": Method.SFT, "preference": Method.DPO, "preference_implicit": Method.DPO,
    "unpaired_preference": Method.KTO, "prompt_only": Method.GRPO,
}

# ---- column names that mean the same thing ------------------------------------------------------------

_SAME_NAMES = {
    "prompt": {"question", "query", "instruction", "input", "problem", "request", "user", "human", "prompt_text",
               "inputs", "user_input", "user_message", "question_text", "task", "source_text"},
    "completion": {"answer", "response", "output", "reply", "solution", "target", "assistant", "gpt",
                   "completion_text", "outputs", "assistant_response", "model_response", "answer_text", "generation"},
    "chosen": {"good_response", "chosen_response", "response_chosen", "preferred", "preferred_response", "better",
               "better_response", "positive", "accepted", "winner", "good", "pos", "response_j", "answer_good",
               "chosen_text", "winning_response", "accepted_response", "good_answer", "preferred_answer"},
    "rejected": {"bad_response", "rejected_response", "response_rejected", "dispreferred", "dispreferred_response",
                 "worse", "worse_response", "negative", "loser", "bad", "neg", "response_k", "answer_bad",
                 "rejected_text", "losing_response", "bad_answer", "dispreferred_answer"},
    "label": {"is_good", "desirable", "is_desirable", "thumbs_up", "good", "kto_label", "liked", "approved",
              "is_preferred", "preferred", "accepted", "is_accepted"},
    "text": {"content", "body", "document", "sentence", "passage", "raw_text", "article", "txt", "data"},
    "messages": {"conversation", "conversations", "dialog", "dialogue", "chat", "turns", "history", "chat_messages"},
    "conversations": {"conversation", "dialog", "dialogue", "chat", "turns", "messages", "sharegpt"},
    "instruction": {"prompt", "question", "task", "query"},
    "output": {"response", "answer", "completion", "target"},
    "input": {"context", "input_text", "additional_input"},
}
_WORDS = {
    "prompt": {"prompt", "question", "query", "instruction", "problem", "request", "input"},
    "completion": {"completion", "answer", "response", "output", "reply", "solution"},
    "chosen": {"chosen", "good", "preferred", "better", "positive", "accepted", "win", "winner", "winning", "pos"},
    "rejected": {"rejected", "bad", "dispreferred", "worse", "negative", "lose", "loser", "losing", "neg"},
    "label": {"label", "desirable", "thumbs", "kto"},
    "text": {"text", "content", "document", "body", "passage"},
    "messages": {"messages", "conversation", "conversations", "dialog", "dialogue", "chat", "turns"},
    "conversations": {"conversation", "conversations", "dialog", "dialogue", "chat", "turns"},
    "instruction": {"instruction", "prompt", "question"},
    "output": {"output", "response", "answer"},
    "input": {"input", "context"},
}
_LEARNED = {"completion", "text", "messages", "output", "conversations"}  # never fill these from a 'rejected' column
_LAST_RESORT = {"completion": {"chosen"}, "messages": {"chosen"}, "text": {"chosen"}}


def name_score(target: str, column: str) -> float:
    """How surely `column` holds `target` (0: not at all)."""
    norm = column.strip().lower()
    words = set(re.split(r"[^a-z0-9]+", norm)) - {""}
    if target in _LEARNED and words & _WORDS["rejected"]:
        return 0.0
    if target == "prompt" and words & (_WORDS["completion"] | _WORDS["chosen"] | _WORDS["rejected"]) - {"input"}:
        return 0.0
    if norm in _SAME_NAMES.get(target, ()):
        return 3.0
    if words & _WORDS.get(target, set()):
        return 2.5 if target in _LEARNED and words & _WORDS["chosen"] else 2.0
    if norm in _LAST_RESORT.get(target, ()):
        return 1.0
    return 0.0


# ---- fitting a layout -------------------------------------------------------------------------------

@dataclass
class Fit:
    method: Method
    layout: Layout
    sources: dict[str, str] = field(default_factory=dict)  # target -> column that holds it
    missing: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    alternatives: dict[str, list[str]] = field(default_factory=dict)
    gaps: int = 0  # rows lacking a value in the worst of its source columns

    @property
    def mapping(self) -> dict[str, str]:
        """Target -> source for the renamed targets, in the layout's order (prompt, chosen, rejected)."""
        return {t.name: self.sources[t.name] for t in self.layout.targets
                if t.name in self.sources and self.sources[t.name] != t.name}

    @property
    def fits(self) -> bool:
        return not self.missing and not self.wrong

    def rank(self) -> tuple[int, int, int, int, int]:
        """Lower is better: fits, then leaves fewer rows without a value, then uses more of the columns,
        then needs fewer renames, then is native rather than converted."""
        return (len(self.missing) + len(self.wrong), self.gaps, -len(self.sources), len(self.mapping),
                0 if self.layout.converted is None else 1)


def fit_layout(method: Method, layout: Layout, columns: dict[str, ColumnStats]) -> Fit:
    fit = Fit(method, layout)
    names = {t.name for t in layout.targets}
    used: set[str] = set()
    # the pair columns first, so that 'good_response' goes to chosen before completion-like targets look
    order = sorted(layout.targets, key=lambda t: (t.name not in ("chosen", "rejected", "label"), t.name != "prompt"))
    for target in order:
        col = columns.get(target.name)
        if target.name == "label" and col is not None and col.kind != "null" and not col.labels:
            fit.wrong.append(f"column 'label' holds {describe_kind(col.kind)} that are not true/false labels")
            continue
        if col is not None and col.kind in target.kinds:
            fit.sources[target.name] = target.name
            used.add(target.name)
            continue
        if col is not None and col.kind != "null":
            fit.wrong.append(f"column {target.name!r} holds {describe_kind(col.kind)}; {method} needs "
                             f"{' or '.join(describe_kind(k) for k in sorted(target.kinds))} there")
            continue
        scored = sorted(
            ((name_score(target.name, c.name), -i, c.name) for i, c in enumerate(columns.values())
             if c.name not in used and c.name not in names and c.kind in target.kinds
             and (target.name != "label" or c.labels > c.non_labels)),
            reverse=True,
        )
        scored = [s for s in scored if s[0] > 0]
        if scored:
            fit.sources[target.name] = scored[0][2]
            used.add(scored[0][2])
            others = [name for score, _, name in scored[1:] if score == scored[0][0]]
            if others:
                fit.alternatives[target.name] = others
        elif target.required:
            fit.missing.append(target.name)
    fit.gaps = max((columns[c].missing + columns[c].nulls for c in fit.sources.values()), default=0)
    return fit


def best_fit(method: Method, columns: dict[str, ColumnStats]) -> Fit:
    fits = [fit_layout(method, layout, columns) for layout in LAYOUTS[method]]
    return min(fits, key=lambda f: f.rank())
