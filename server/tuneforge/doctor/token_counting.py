"""Exact token counts for rendered sequences: the tokenizer itself, or a faster route that gives the same
numbers for byte-level BPE tokenizers (GPT-2, Llama 3, Qwen, SmolLM...).

The fast route splits added tokens first, then applies the tokenizer's own pre-tokenizer pattern (the
standard `re` module on ASCII text, the `regex` module otherwise) and sums cached per-piece counts taken
from the real tokenizer. Span edges that fall inside a pre-token, and texts that need normalising, go to
the tokenizer. The caller checks it against the tokenizer on a sample and drops it at the first difference.
"""

from __future__ import annotations

import json
import re
import unicodedata
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any, Callable

from .chat_tokenizer import Tok
from .sequences import Seq

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


@dataclass(slots=True)
class SeqCount:
    tokens: int
    trained: int | None  # tokens inside the spans, within max_length
    eos_trained: bool  # a stop token inside the last span, within max_length
    double_bos: bool



def count_with_tokenizer(tok: Tok, seqs: list[Seq], limit: int) -> list[SeqCount]:
    """The reference: the real tokenizer with offsets."""
    out: list[SeqCount | None] = [None] * len(seqs)
    for special in (False, True):
        idx = [i for i, s in enumerate(seqs) if s.special == special]
        if not idx:
            continue
        texts = [seqs[i].text for i in idx]
        if tok.backend is not None:
            encs = tok.backend.encode_batch(texts, add_special_tokens=special)
            pairs = [(e.ids, e.offsets) for e in encs]
        else:  # a slow tokenizer (rare): offsets from the tokenizer call where it can
            enc = tok.tokenizer(texts, add_special_tokens=special, return_offsets_mapping=True)
            pairs = list(zip(enc["input_ids"], enc["offset_mapping"]))
        for i, (ids, offsets) in zip(idx, pairs):
            out[i] = _count_from_offsets(tok, seqs[i], list(ids), offsets, limit)
    return out  # type: ignore[return-value]


def _count_from_offsets(tok: Tok, seq: Seq, ids: list[int], offsets: list[tuple[int, int]], limit: int) -> SeqCount:
    n = len(ids)
    double_bos = tok.bos_id is not None and n >= 2 and ids[0] == tok.bos_id and ids[1] == tok.bos_id
    if seq.spans is None:
        return SeqCount(n, None, True, double_bos)
    # a token is trained when it starts inside a span (as tuneforge's SFT template masks)
    starts = [o[0] for o in offsets]
    if len(ids) and offsets and offsets[0] == (0, 0) and len(ids) > 1 and seq.special:
        starts = [-1] + starts[1:]  # a BOS added by the tokenizer sits before the text, never inside a span
    trained = 0
    eos = False
    for k, (s, e) in enumerate(seq.spans):
        t0, t1 = bisect_left(starts, s), bisect_left(starts, e)
        t0, t1 = min(t0, limit), min(max(t1, t0), limit)
        trained += t1 - t0
        if k == len(seq.spans) - 1:
            eos = any(ids[t] in tok.stop_ids for t in range(t0, t1))
    return SeqCount(n, trained, eos, double_bos)


class _Fallback(Exception):
    pass


class _PieceCounts(dict):
    """piece -> token count, filled from the real tokenizer on first sight; bounded."""

    def __init__(self, backend: Any, cap: int = 300_000):
        super().__init__()
        self.backend = backend
        self.cap = cap

    def __missing__(self, piece: str) -> int:
        if len(self) >= self.cap:
            self.clear()
        n = self[piece] = len(self.backend.encode(piece, add_special_tokens=False).ids)
        return n


class FastCounter:
    """Exact token counts for byte-level BPE tokenizers without building full encodings."""

    def __init__(self, tok: Tok, stages: list[Callable[[str], list[str]]], added: Any, added_ids: dict[str, int],
                 nfc: bool, prefix_ids: list[int]):
        self.tok = tok
        self.stages = stages
        self.added = added
        self.added_ids = added_ids
        self.nfc = nfc
        self.prefix_ids = prefix_ids
        self.suffix_count = 0
        self.pieces = _PieceCounts(tok.backend)
        self.part_counts: dict[str, int] = {}
        self._split = stages[0] if len(stages) == 1 else self.split
        # splitting on a capturing pattern gives [text, added token, text, added token, ..., text]
        self._parts = added.split if added is not None else None

    @classmethod
    def build(cls, tok: Tok) -> "FastCounter | None":
        if tok.backend is None:
            return None
        try:
            import regex
        except ImportError:
            return None
        try:
            spec = json.loads(tok.backend.to_str())
            model = spec.get("model") or {}
            if model.get("type") != "BPE" or model.get("dropout") not in (None, 0, 0.0):
                return None
            norm = spec.get("normalizer")
            if norm is not None and norm.get("type") != "NFC":
                return None
            stages = _pre_tokenizer_stages(spec.get("pre_tokenizer"), regex)
            if stages is None:
                return None
            added_ids: dict[str, int] = {}
            for t in spec.get("added_tokens") or []:
                if t.get("lstrip") or t.get("rstrip") or t.get("single_word") or (t.get("normalized") and norm):
                    return None
                added_ids[t["content"]] = t["id"]
            added = re.compile("(" + "|".join(re.escape(a) for a in sorted(added_ids, key=len, reverse=True)) + ")") if added_ids else None
            # what the post-processor puts around plain text (e.g. BOS before it) when it adds special tokens
            prefix, suffix = _split_specials(tok.backend.encode("a", add_special_tokens=True).ids,
                                             tok.backend.encode("a", add_special_tokens=False).ids)
            counter = cls(tok, stages, added, added_ids, norm is not None, prefix)
            counter.suffix_count = len(suffix)
            return counter
        except Exception:
            return None

    def split(self, chunk: str) -> list[str]:
        pieces = [chunk]
        for stage in self.stages:
            pieces = [p for c in pieces for p in stage(c)]
        return pieces

    def count(self, seq: Seq, limit: int) -> SeqCount | None:
        """None when this text needs the real tokenizer (not NFC-normalised, a span edge inside a token)."""
        text = seq.text
        if self.nfc and not unicodedata.is_normalized("NFC", text):
            return None
        spans = seq.spans
        cuts = sorted({c for span in spans for c in span}) if spans else []
        ncuts = len(cuts)
        prefix = self.prefix_ids if seq.special else []
        first_ids = list(prefix[:2])  # enough of the ids to see a double BOS (-1: some plain-text token)
        at: dict[int, int] = {}  # span edge (character) -> tokens before it
        stops: list[int] = []  # token positions of stop tokens
        pos = len(prefix)
        split, counts, part_counts = self._split, self.pieces.__getitem__, self.part_counts
        stop_ids, added_ids = self.tok.stop_ids, self.added_ids
        parts = self._parts(text) if self.added is not None else [text]
        ci = 0
        while ci < ncuts and cuts[ci] == 0:
            at[0] = pos
            ci += 1
        char = 0
        for k, part in enumerate(parts):
            end = char + len(part)
            if k & 1:  # an added token
                if ci < ncuts and cuts[ci] < end:
                    return None  # a span edge inside an added token
                token_id = added_ids[part]
                if len(first_ids) < 2:
                    first_ids.append(token_id)
                if token_id in stop_ids:
                    stops.append(pos)
                pos += 1
            elif part:
                if len(first_ids) < 2:
                    first_ids.append(-1)
                if ci < ncuts and cuts[ci] < end:  # span edges inside this stretch of text
                    a, previous = char, None
                    while ci < ncuts and cuts[ci] < end:
                        c = cuts[ci]
                        pieces = split(text[a:c])
                        if previous and pieces and split(previous + pieces[0]) != [previous, pieces[0]]:
                            return None  # the edge cuts through a pre-token: let the tokenizer decide
                        pos += sum(map(counts, pieces))
                        previous = pieces[-1] if pieces else previous
                        at[c] = pos
                        a = c
                        ci += 1
                    pieces = split(text[a:end])
                    if previous and pieces and split(previous + pieces[0]) != [previous, pieces[0]]:
                        return None
                    pos += sum(map(counts, pieces))
                else:
                    n = part_counts.get(part)
                    if n is None:
                        n = sum(map(counts, split(part)))
                        if len(part) <= 512:  # template boilerplate and repeated system prompts
                            if len(part_counts) >= 50_000:
                                part_counts.clear()
                            part_counts[part] = n
                    pos += n
            char = end
            while ci < ncuts and cuts[ci] == end:
                at[end] = pos
                ci += 1
        total = pos + (self.suffix_count if seq.special else 0)
        bos = self.tok.bos_id
        double_bos = bos is not None and len(first_ids) >= 2 and first_ids[0] == bos and first_ids[1] == bos
        if spans is None:
            return SeqCount(total, None, True, double_bos)
        trained = 0
        eos = False
        for k, (s, e) in enumerate(spans):
            if s not in at or e not in at:
                return None
            t0, t1 = min(at[s], limit), min(at[e], limit)
            trained += max(0, t1 - t0)
            if k == len(spans) - 1:
                eos = any(t0 <= p < t1 for p in stops)
        return SeqCount(total, trained, eos, double_bos)


def _split_specials(with_special: list[int], without: list[int]) -> tuple[list[int], list[int]]:
    for i in range(len(with_special) - len(without) + 1):
        if with_special[i: i + len(without)] == without:
            return with_special[:i], with_special[i + len(without):]
    raise ValueError("post-processor layout not understood")


_ASCII_CLASSES = {"L": "A-Za-z", "N": "0-9"}
_ASCII_SPACE = "\\t\\n\\x0b\\x0c\\r "


def ascii_pattern(pattern: str) -> str | None:
    """The pattern for ASCII-only text, in the standard `re` syntax (about 2x faster than the `regex`
    module): \\p{L} -> A-Za-z, \\p{N} -> 0-9, \\s -> the ASCII spaces. None when it cannot be translated."""
    out: list[str] = []
    i, depth = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if nxt in "pP":
                m = pattern[i + 2: i + 5]
                if nxt == "p" and len(m) == 3 and m[0] == "{" and m[2] == "}" and m[1] in _ASCII_CLASSES:
                    cls = _ASCII_CLASSES[m[1]]
                    out.append(cls if depth else f"[{cls}]")
                    i += 5
                    continue
                return None
            if nxt == "s":
                out.append(_ASCII_SPACE if depth else f"[{_ASCII_SPACE}]")
                i += 2
                continue
            if nxt == "S":
                if depth:
                    return None
                out.append(f"[^{_ASCII_SPACE}]")
                i += 2
                continue
            out.append(pattern[i: i + 2])
            i += 2
            continue
        if ch == "[" and not depth:
            depth = True
            out.append(ch)
            if pattern[i + 1: i + 2] == "^":
                out.append("^")
                i += 1
            if pattern[i + 1: i + 2] == "]":
                out.append("\\]")
                i += 1
        elif ch == "]" and depth:
            depth = False
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _stage(pattern: str, regex: Any) -> Callable[[str], list[str]]:
    """findall with the `regex` module, or with `re` on ASCII text when the pattern translates."""
    full = regex.compile(pattern).findall
    translated = ascii_pattern(pattern)
    if translated is None:
        return full
    try:
        fast = re.compile(translated).findall
    except re.error:
        return full
    return lambda s: fast(s) if s.isascii() else full(s)


def _pre_tokenizer_stages(spec: dict[str, Any] | None, regex: Any) -> list[Callable[[str], list[str]]] | None:
    if spec is None:
        return None
    items = spec.get("pretokenizers") if spec.get("type") == "Sequence" else [spec]
    stages: list[Callable[[str], list[str]]] = []
    byte_level_seen = False
    for item in items or []:
        kind = item.get("type")
        if kind == "ByteLevel":
            if item.get("add_prefix_space"):
                return None
            if item.get("use_regex", True):
                stages.append(_stage(GPT2_PATTERN, regex))
            byte_level_seen = True
        elif kind == "Split":
            pattern = (item.get("pattern") or {}).get("Regex")
            if not pattern or item.get("behavior") != "Isolated" or item.get("invert"):
                return None
            stages.append(_stage(pattern, regex))
        elif kind == "Digits":
            if not item.get("individual_digits"):
                return None
            splitter = regex.compile(r"(\p{N})").split
            stages.append(lambda s, _split=splitter: [p for p in _split(s) if p])
        else:
            return None
    return stages if byte_level_seen and stages else None


