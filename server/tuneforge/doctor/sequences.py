"""Rows -> the token sequences tuneforge's training templates build from them, with trained spans.

Spans are computed the way tuneforge's SFT template masks assistant-only loss: render the conversation up
to each assistant turn with the generation prompt, and up to the end of that turn; what lies between is
trained. Strings become chat turns when the model has a chat template, as the DPO/KTO templates do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..templates._shared.roles import CHAT_ROLES, ROLE_ALIASES
from ..types import Method
from .chat_tokenizer import Tok
from .method_fit import Fit
from .row_shapes import content_of

SPAN_LEARN_ROWS = 32  # conversations whose exact spans must agree before spans are located by content
SPAN_CHECK_EVERY = 499  # ... after which one conversation in this many is still checked


class SkipRow(Exception):
    """The row does not have the values the layout needs (already reported by the column checks)."""


@dataclass(slots=True)
class Seq:
    text: str
    spans: list[tuple[int, int]] | None  # trained character spans; None: nothing is trained (GRPO prompts)
    special: bool  # tokenized with add_special_tokens=True (plain text, as TRL does)
    check_eos: bool = True
    unstable: bool = False


class NoChatTemplate(Exception):
    pass


class Renderer:
    """Renders messages with the model's chat template, as transformers' apply_chat_template does."""

    def __init__(self, tok: Tok):
        self.tok = tok
        self.kwargs = dict(tok.special_tokens)
        self._compiled = None
        self._base: dict[str, Any] | None = None
        if tok.template:
            try:  # transformers' own compiled (sandboxed) template, as apply_chat_template uses it
                from transformers.utils.chat_template_utils import (
                    _compile_jinja_template,
                )

                self._compiled = _compile_jinja_template(tok.template)
                self._base = {**dict(self._compiled.globals), **self.kwargs, "tools": None, "documents": None}
                self._compiled.root_render_func  # noqa: B018 - the fast path below needs it
            except Exception:  # an API change: fall back to the public (slower) call
                self._compiled = None
        # learned span offsets: None while learning, a tuple once trusted, False when given up
        self.offsets: tuple[int, int, int] | None | bool = None
        self._candidate: Any = None
        self.agreements = 0
        self.conversations = 0
        self.located = 0

    def render(self, messages: list[dict[str, Any]], gen: bool) -> str:
        if not self.tok.template:
            raise NoChatTemplate()
        # apply_chat_template drops None values (many templates print "None" otherwise)
        msgs = [{k: v for k, v in m.items() if v is not None} if None in m.values() else m for m in messages]
        compiled = self._compiled
        if compiled is not None:
            # Template.render() merges the globals into a fresh dict on every call; doing it once is
            # most of the time saved on million-row files.
            variables = dict(self._base)  # type: ignore[arg-type]
            variables["messages"] = msgs
            variables["add_generation_prompt"] = gen
            return "".join(compiled.root_render_func(compiled.new_context(variables, shared=True)))
        if self.tok.tokenizer is None:
            raise NoChatTemplate()
        return self.tok.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)

    def conversation(self, messages: list[dict[str, Any]]) -> Seq:
        """The whole conversation; trained spans are the assistant turns.

        Exact spans come from rendering each prefix (up to the turn with the generation prompt, and up to
        the end of the turn). That costs two renders per assistant turn, so once the first rows show that
        the template puts each turn at a fixed offset around its content, spans are found by locating the
        contents in the one full render -- still checked against prefix rendering on one row in
        SPAN_CHECK_EVERY, and given up at the first difference."""
        full = self.render(messages, False)
        self.conversations += 1
        if self.offsets is not None and self.conversations % SPAN_CHECK_EVERY:
            spans = self._spans_by_content(messages, full, self.offsets)
            if spans is not None:
                self.located += 1
                return Seq(full, spans, special=False)
        seq = self._exact(messages, full)
        if not seq.unstable and seq.spans and self.offsets is not False:
            learned = self._learn(messages, full, seq.spans)
            if self.offsets is None and learned is not None:
                self.agreements = self.agreements + 1 if learned == self._candidate else 1
                self._candidate = learned
                if self.agreements >= SPAN_LEARN_ROWS:
                    self.offsets = learned
            elif self.offsets is not None and learned != self.offsets:
                self.offsets = False  # the template is not regular enough: prefix rendering from now on
        return seq

    def _exact(self, messages: list[dict[str, Any]], full: str) -> Seq:
        spans: list[tuple[int, int]] = []
        unstable = False
        last = len(messages) - 1
        for i, message in enumerate(messages):
            if message.get("role") != "assistant":
                continue
            try:
                before = self.render(messages[:i], True)
            except Exception:
                before = None
            upto = full if i == last else self.render(messages[: i + 1], False)
            if before is not None and len(before) <= len(upto) and upto.startswith(before) and full.startswith(upto):
                spans.append((len(before), len(upto)))
                continue
            unstable = True  # the template renders this turn differently once later turns follow
            content = content_of(message, "content") or ""
            start = full.find(content, spans[-1][1] if spans else 0) if content else -1
            if start < 0:
                continue
            end = start + len(content)
            for stop in self.tok.stop_strings:
                if full.startswith(stop, end):
                    end += len(stop)
                    break
            spans.append((start, end))
        return Seq(full, spans, special=False, unstable=unstable)

    @staticmethod
    def _content_positions(messages: list[dict[str, Any]], full: str) -> list[tuple[int, int]] | None:
        """Where each message's content sits in the render, in order; None if one cannot be found."""
        out, cursor = [], 0
        for message in messages:
            content = content_of(message, "content")
            if content is None:
                return None
            pos = full.find(content, cursor)
            if pos < 0:
                return None
            out.append((pos, pos + len(content)))
            cursor = pos + len(content)
        return out

    def _learn(self, messages: list[dict[str, Any]], full: str, spans: list[tuple[int, int]]) -> tuple[int, int, int] | None:
        """(start offset, end offset of a middle turn, end offset of the last turn) around assistant contents."""
        where = self._content_positions(messages, full)
        if where is None:
            return None
        turns = [(i, where[i]) for i, m in enumerate(messages) if m.get("role") == "assistant"]
        if len(turns) != len(spans):
            return None
        starts = {c[0] - s[0] for (_, c), s in zip(turns, spans)}
        middle = {s[1] - c[1] for (i, c), s in zip(turns, spans) if i != len(messages) - 1}
        final = {s[1] - c[1] for (i, c), s in zip(turns, spans) if i == len(messages) - 1}
        if len(starts) != 1 or len(middle) > 1 or len(final) > 1:
            return None
        known = self._candidate if isinstance(self._candidate, tuple) else (None, None, None)
        mid = middle.pop() if middle else known[1]
        end = final.pop() if final else known[2]
        if mid is None or end is None:
            return None
        return (starts.pop(), mid, end)

    def _spans_by_content(self, messages: list[dict[str, Any]], full: str, offsets: tuple[int, int, int]) -> list[tuple[int, int]] | None:
        where = self._content_positions(messages, full)
        if where is None:
            return None
        start, mid, end = offsets
        last = len(messages) - 1
        return [(where[i][0] - start, where[i][1] + (end if i == last else mid))
                for i, m in enumerate(messages) if m.get("role") == "assistant"]

    def pair(self, prompt: Any, completion: Any, *, whole: bool = False, check_eos: bool = True, chat: bool = False) -> Seq:
        """prompt + completion; the completion is trained (or everything, for reward models). With `chat`
        (or when either side is a message list), strings become chat turns, as tuneforge's templates do."""
        if type(prompt) in (str, list) and type(completion) in (str, list) and (chat or list in (type(prompt), type(completion))):
            prompt, completion = _turns(prompt, "user"), _turns(completion, "assistant")
            full = self.render(prompt + completion, False)
            before = self.render(prompt, True)
            start = len(before) if full.startswith(before) else _common_prefix(full, before)
            return Seq(full, [(0 if whole else start, len(full))], special=False, check_eos=check_eos)
        if type(prompt) is str and type(completion) is str:
            text = self.with_eos(prompt + completion)
            return Seq(text, [(0 if whole else len(prompt), len(text))], special=True, check_eos=check_eos)
        raise SkipRow()

    def with_eos(self, text: str) -> str:
        eos = self.tok.eos
        return text if not eos or text.endswith(eos) else text + eos


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _implicit_prompt(chosen: Any, rejected: Any) -> tuple[Any, Any, Any]:
    """Split the shared beginning off chosen/rejected, as TRL's extract_prompt does."""
    if type(chosen) is not type(rejected) or type(chosen) not in (list, str):
        raise SkipRow()
    idx = 0
    for idx in range(min(len(chosen), len(rejected))):
        if chosen[idx] != rejected[idx]:
            if idx and chosen[idx - 1] == " ":
                idx -= 1
            break
    return chosen[:idx], chosen[idx:], rejected[idx:]


def _turns(value: Any, role: str) -> list[dict[str, Any]]:
    """Message lists as they are (roles through the same aliases as the templates), strings as one turn."""
    if type(value) is list:
        if all(type(m) is dict and m.get("role") in CHAT_ROLES for m in value):
            return value
        return [{**m, "role": ROLE_ALIASES.get(str(m.get("role")), m.get("role"))} if type(m) is dict else m for m in value]
    if type(value) is str:
        return [{"role": role, "content": value}]
    raise SkipRow()


def row_sequences(row: dict[str, Any], fit: Fit, r: Renderer) -> list[Seq]:
    """The sequences tuneforge's training template builds from one row (after the column_map)."""
    src = fit.sources

    def get(target: str) -> Any:
        return row.get(src[target]) if target in src else None

    layout, method = fit.layout.name, fit.method
    chat = bool(r.tok.template)  # templates turn strings into chat turns when the model has a chat template
    if layout == "messages":
        msgs = get("messages")
        if type(msgs) is not list or not msgs or not all(type(m) is dict for m in msgs):
            raise SkipRow()
        return [r.conversation(_turns(msgs, "user"))]
    if layout == "sharegpt":
        turns = get("conversations")
        if type(turns) is not list or not turns:
            raise SkipRow()
        msgs = []
        for t in turns:
            role = ROLE_ALIASES.get(str(t.get("from", "")).lower()) if type(t) is dict else None
            if role is None:
                raise SkipRow()
            msgs.append({"role": role, "content": t.get("value")})
        return [r.conversation(msgs)]
    if layout == "alpaca":
        instruction, extra, output = get("instruction"), get("input"), get("output")
        if type(instruction) is not str or type(output) is not str:
            raise SkipRow()
        user = instruction + (f"\n\n{extra}" if type(extra) is str and extra else "")
        return [r.conversation([{"role": "user", "content": user}, {"role": "assistant", "content": output}])]
    if layout == "text":
        text = get("text")
        if type(text) is not str:
            raise SkipRow()
        text = r.with_eos(text)
        return [Seq(text, [(0, len(text))], special=True)]
    if layout == "prompt_only":
        prompt = get("prompt")
        if type(prompt) is list and prompt or type(prompt) is str and chat:
            return [Seq(r.render(_turns(prompt, "user"), True), None, special=False, check_eos=False)]
        if type(prompt) is str:
            return [Seq(prompt, None, special=True, check_eos=False)]
        raise SkipRow()
    if layout == "prompt_completion" and method == Method.SFT:  # tuneforge's SFT template: always chat turns
        return [r.conversation(_turns(get("prompt"), "user") + _turns(get("completion"), "assistant"))]
    if layout in ("prompt_completion", "unpaired_preference"):
        return [r.pair(get("prompt"), get("completion"), chat=chat)]
    if layout in ("preference", "preference_implicit"):
        if layout == "preference":
            prompt, chosen, rejected = get("prompt"), get("chosen"), get("rejected")
        else:
            prompt, chosen, rejected = _implicit_prompt(get("chosen"), get("rejected"))
            chat = False  # the shared prefix is split off as it is
        whole = method == Method.REWARD
        return [r.pair(prompt, chosen, whole=whole, check_eos=not whole, chat=chat),
                r.pair(prompt, rejected, whole=whole, check_eos=not whole, chat=chat)]
    raise SkipRow()


def needs_template(fit: Fit, sample: dict[str, Any] | None) -> bool:
    if fit.layout.name in ("messages", "sharegpt", "alpaca") or (fit.layout.name == "prompt_completion" and fit.method == Method.SFT):
        return True
    if sample is None:
        return False
    return any(type(sample.get(col)) is list for col in fit.sources.values())


