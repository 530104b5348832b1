"""One row at a time: what kind of value each field holds, which dataset layout the row follows, and
what is wrong inside its conversations. Pure functions over plain dicts, written to be cheap: they run
on every row of million-row files.
"""

from __future__ import annotations

from typing import Any, Iterator

from ..templates._shared.roles import (
    CHAT_ROLES,
    FALSE_LABELS,
    ROLE_ALIASES,
    TRUE_LABELS,
)

LABEL_WORDS = TRUE_LABELS | FALSE_LABELS  # what a KTO label may be written as
#: Fields that label a row rather than hold its content; left out of duplicate and PII checks.
METADATA_KEYS = frozenset({"id", "_id", "idx", "index", "uuid", "source", "dataset", "timestamp", "created_at",
                           "date", "url", "meta", "metadata", "__index_level_0__"})

KIND_WORDS = {
    "text": "text",
    "messages": "lists of chat messages (role/content)",
    "sharegpt": "ShareGPT turns (from/value)",
    "bool": "true/false values",
    "number": "numbers",
    "null": "nulls",
    "empty_list": "empty lists",
    "objects": "lists of objects",
    "text_list": "lists of strings",
    "list": "lists",
    "object": "objects",
    "other": "other values",
}


def value_kind(value: Any) -> str:
    """A short name for what a field holds: text, messages, sharegpt, bool, number, null, ..."""
    t = type(value)
    if t is str:
        return "text"
    if value is None:
        return "null"
    if t is bool:
        return "bool"
    if t is int or t is float:
        return "number"
    if t is list:
        if not value:
            return "empty_list"
        first = value[0]
        if type(first) is dict:
            if "role" in first:
                return "messages"
            if "from" in first or "value" in first:
                return "sharegpt"
            return "objects"
        return "text_list" if type(first) is str else "list"
    if t is dict:
        return "object"
    return "other"


def row_format(row: dict[str, Any]) -> str:
    """The dataset layout a row follows, from its field names (TRL's types plus Alpaca and ShareGPT)."""
    if "messages" in row:
        return "messages"
    if "conversations" in row:
        return "messages" if value_kind(row["conversations"]) == "messages" else "sharegpt"
    if "chosen" in row and "rejected" in row:
        return "preference" if "prompt" in row else "preference_implicit"
    if "prompt" in row and "completion" in row:
        return "unpaired_preference" if "label" in row else "prompt_completion"
    if "instruction" in row and "output" in row:
        return "alpaca"
    if "text" in row:
        return "text"
    if "prompt" in row:
        return "prompt_only"
    return "unknown"


FORMAT_WORDS = {
    "messages": "chat messages (role/content)",
    "sharegpt": "ShareGPT conversations (from/value)",
    "alpaca": "Alpaca (instruction/input/output)",
    "prompt_completion": "prompt/completion",
    "text": "plain text",
    "preference": "preference pairs with a prompt (prompt/chosen/rejected)",
    "preference_implicit": "preference pairs with the prompt inside (chosen/rejected)",
    "unpaired_preference": "unpaired preference (prompt/completion/label)",
    "prompt_only": "prompts only",
    "unknown": "an unknown layout",
    "empty": "no rows",
}


def is_label(value: Any) -> bool:
    """A value the KTO template reads as desirable/undesirable: a bool, 0/1, or words like yes/no, good/bad."""
    t = type(value)
    if t is bool:
        return True
    if t is int or t is float:
        return value in (0, 1)
    return t is str and len(value) <= 12 and value.strip().lower() in LABEL_WORDS


def label_value(value: Any) -> bool | None:
    if type(value) is bool:
        return value
    text = str(value).strip().lower()
    return True if text in TRUE_LABELS else False if text in FALSE_LABELS else None


def is_blank(value: Any) -> bool:
    return value is None or (type(value) is str and not value.strip()) or (type(value) is list and not value)


def content_of(message: dict[str, Any], key: str) -> str | None:
    """A message's text: a string, or the text parts of a multimodal content list."""
    content = message.get(key)
    if type(content) is str:
        return content
    if type(content) is list:
        return "".join(p.get("text", "") if type(p) is dict and type(p.get("text")) is str else "" for p in content)
    return None


def conversation_ok(messages: list[Any], trained: bool) -> bool:
    """The common case, checked fast: role/content turns with known roles and text, alternating user and
    assistant after an optional system turn, an assistant answer when trained."""
    previous = None
    answered = False
    for i, m in enumerate(messages):
        if type(m) is not dict:
            return False
        role, content = m.get("role"), m.get("content")
        if type(content) is not str or not content or content.isspace() or role == previous:
            return False
        if role == "assistant":
            answered = True
        elif role == "system":
            if i:
                return False
        elif role != "user" and role != "tool":
            return False
        previous = role
    return answered or not trained


def message_issues(messages: list[Any], sharegpt: bool, trained: bool) -> Iterator[tuple[str, str]]:
    """(kind, detail) for everything wrong in one conversation; `trained` when its assistant turns are learned."""
    if not sharegpt and conversation_ok(messages, trained):
        return
    role_key, content_key = ("from", "value") if sharegpt else ("role", "content")
    previous = None
    assistant_turns = 0
    assistant_text = False
    for i, message in enumerate(messages):
        if type(message) is not dict:
            yield "type", "a turn that is not an object"
            continue
        raw_role = message.get(role_key)
        if type(raw_role) is not str:
            yield "missing", f"a turn without {role_key!r}"
            continue
        if sharegpt:
            role = ROLE_ALIASES.get(raw_role.lower())
            if role is None:
                yield "role", f"unknown ShareGPT speaker {raw_role[:30]!r} (known: human, gpt, system, tool)"
                continue
        else:
            role = ROLE_ALIASES.get(raw_role, raw_role)
            if role not in CHAT_ROLES:
                yield "role", f"unknown role {raw_role[:30]!r} (known: system, user, assistant, tool)"
        content = message.get(content_key)
        if content is None and not (role == "assistant" and message.get("tool_calls")):
            yield "missing", f"a turn without {content_key!r}"
        elif content is not None and type(content) not in (str, list):
            yield "type", f"a turn whose {content_key!r} is not text"
        elif content is not None and _blank(content_of(message, content_key)) and not message.get("tool_calls"):
            yield "empty", f"an empty {role} turn"
        if role == "assistant":
            assistant_turns += 1
            if not _blank(content_of(message, content_key)) or message.get("tool_calls"):
                assistant_text = True
        if role == "system" and i > 0:
            yield "alternation", "a system message after the first turn"
        elif role == previous and role in ("user", "assistant"):
            yield "alternation", f"two {role} turns in a row"
        previous = role
    if trained:
        if assistant_turns == 0:
            yield "no_assistant", "no assistant turn (nothing to learn)"
        elif not assistant_text:
            yield "no_assistant", "only empty assistant turns (nothing to learn)"


def _blank(text: str | None) -> bool:
    return not text or text.isspace()


def content_text(row: dict[str, Any]) -> str:
    """The row's content as one string (roles included, metadata left out): for duplicates and PII."""
    parts: list[str] = []
    for key in sorted(row) if len(row) > 1 else row:
        if key in METADATA_KEYS:
            continue
        value = row[key]
        t = type(value)
        if t is str:
            parts.append(value)
        elif t is list:
            for item in value:
                if type(item) is dict:
                    role = item.get("role", item.get("from"))
                    text = content_of(item, "content" if "content" in item else "value")
                    parts.append(f"{role}: {text}")
                elif type(item) is str:
                    parts.append(item)
        elif t is bool or t is int or t is float:
            parts.append(f"{key}={value}")
    return "\x1f".join(parts)
