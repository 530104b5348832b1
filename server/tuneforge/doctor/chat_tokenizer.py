"""The model's tokenizer and chat template, loaded once, and what the other doctor modules need of them.

Loading goes through transformers' AutoTokenizer (the reference for special tokens, BOS handling and
the chat template). transformers imports torch, which costs ~250 MB and seconds, so what measuring
needs is kept as a `TokenizerSpec` (plain data plus the fast tokenizer serialised, rebuilt with the
`tokenizers` library alone): cached on disk under $TUNEFORGE_HOME/cache/tokenizers, keyed by the
tokenizer files' paths, sizes and times and the library versions, so the next validation of the same
model starts in a second. For large inputs with no cached spec, validate runs `load_portable_spec` in a
helper process (worker_pool.py) while the main pass reads the data.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import MissingDependency, TuneforgeError
from ..paths import home
from ..templates._shared.roles import END_OF_TURN_TOKENS


@dataclass
class TokenizerSpec:
    """Everything measuring needs, as plain (picklable) data."""

    name: str
    template: str | None
    special_tokens: dict[str, str]  # bos_token, eos_token... as the chat template sees them
    bos_id: int | None
    bos: str | None
    eos: str | None
    stop_ids: set[int]  # EOS and end-of-turn ids: what generation stops on
    stop_strings: list[str]
    adds_bos: bool  # tokenizing plain text adds BOS
    generation_markers: bool  # the template has {% generation %} blocks
    tokenizer_json: str | None = None  # the fast tokenizer, serialised (filled for worker processes)


@dataclass
class Tok:
    """A spec with its live objects: the fast tokenizer (`tokenizers.Tokenizer`) and, when loaded in this
    process, the transformers tokenizer."""

    spec: TokenizerSpec
    backend: Any
    tokenizer: Any = None

    def __getattr__(self, name: str) -> Any:  # tok.template, tok.stop_ids... come from the spec
        if name == "spec":
            raise AttributeError(name)
        return getattr(self.spec, name)

    def portable(self) -> TokenizerSpec:
        """The spec with the fast tokenizer serialised, for another process."""
        if self.backend is None:
            raise TuneforgeError(f"The tokenizer of {self.spec.name!r} has no fast version to share between processes.",
                                 "Use a model with a tokenizer.json (a fast tokenizer), or validate a smaller file.",
                                 code="model.no_fast_tokenizer")
        return replace(self.spec, tokenizer_json=self.spec.tokenizer_json or self.backend.to_str())


def tok_from_spec(spec: TokenizerSpec) -> Tok:
    """Rebuild a Tok in a process that never imported transformers."""
    from tokenizers import Tokenizer

    return Tok(spec, Tokenizer.from_str(spec.tokenizer_json) if spec.tokenizer_json else None, None)


def load_tokenizer(model: str) -> Tok:
    """The model's tokenizer: from the disk cache when its files have not changed, else through transformers
    (then cached). Kept per process too: a long-lived MCP server loads each model once."""
    key = tokenizer_key(model)
    if key is not None:
        cached = _tok_from_cache(key)
        if cached is not None:
            return cached
    path = Path(model).expanduser()
    stamp = 0.0
    if path.exists():
        stamp = max((p.stat().st_mtime for p in path.iterdir() if p.is_file()), default=0.0) if path.is_dir() else path.stat().st_mtime
    tok = _load_tokenizer(model, stamp)
    if key is not None and tok.backend is not None:
        _write_cache(key, tok.portable())
    return tok


def load_portable_spec(model: str) -> TokenizerSpec:
    """The helper-process task: load the tokenizer (transformers and torch in that process only) and
    return what measuring needs as plain data."""
    return load_tokenizer(model).portable()


def cached_spec(model: str) -> TokenizerSpec | None:
    """The spec from the disk cache, if the tokenizer files are unchanged since it was written."""
    key = tokenizer_key(model)
    return _read_cache(key) if key is not None else None


CACHE_FORMAT = 1
_TOKENIZER_FILES = (".json", ".jinja", ".model", ".txt", ".tiktoken")


def tokenizer_key(model: str) -> str | None:
    """Pins the tokenizer files' exact state (and the libraries' versions); None when they cannot be found
    (then nothing is cached). The report cache keys on it too."""
    import hashlib
    from importlib import metadata

    path = Path(model).expanduser()
    try:
        if not path.is_dir():
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(model, "tokenizer_config.json")
            if not isinstance(found, str):
                return None
            path = Path(found).parent  # the snapshot folder: its name is the commit
        files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in path.iterdir()
                       if p.is_file() and p.suffix in _TOKENIZER_FILES)
        versions = [metadata.version(name) for name in ("transformers", "tokenizers", "jinja2")]
    except Exception:
        return None
    blob = json.dumps([CACHE_FORMAT, str(path.resolve()), files, versions])
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _cache_file(key: str) -> Path:
    folder = home() / "cache" / "tokenizers"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{key}.json"


@lru_cache(maxsize=4)
def _tok_from_cache(key: str) -> Tok | None:
    spec = _read_cache(key)
    return tok_from_spec(spec) if spec is not None else None


def _read_cache(key: str) -> TokenizerSpec | None:
    try:
        data = json.loads(_cache_file(key).read_text(encoding="utf-8"))
        data["stop_ids"] = set(data["stop_ids"])
        return TokenizerSpec(**data)
    except Exception:  # missing, unreadable or from another version: load again
        return None


def _write_cache(key: str, spec: TokenizerSpec) -> None:
    from dataclasses import asdict

    try:
        data = asdict(spec)
        data["stop_ids"] = sorted(spec.stop_ids)
        target = _cache_file(key)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(target)
    except OSError:  # a read-only home: work without the cache
        pass


@lru_cache(maxsize=4)
def _load_tokenizer(model: str, _stamp: float) -> Tok:
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise MissingDependency("transformers", "train") from None

    path = Path(model).expanduser()
    ref = str(path) if path.exists() else model
    if not path.exists() and model.startswith(("/", "./", "../", "~")):
        raise TuneforgeError(f"Model directory {model!r} does not exist.", "Pass an existing model directory or a Hub id.",
                             code="model.not_found")
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref)
    except Exception as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        raise TuneforgeError(
            f"Cannot load the tokenizer of {model!r} ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}).",
            "Pass a local model directory, or a Hub id that is cached"
            + (" (Hub access is off: HF_HUB_OFFLINE is set)" if offline else "")
            + "; `hf download MODEL --include '*.json' '*.jinja' '*.model'` fetches just the tokenizer.",
            code="model.tokenizer_unavailable",
        ) from None
    try:
        template = tokenizer.get_chat_template()
    except Exception:
        template = None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    bos, eos = tokenizer.bos_token, tokenizer.eos_token
    bos_id = tokenizer.bos_token_id
    stop_ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        stop_ids.add(int(tokenizer.eos_token_id))
    for extra in _generation_eos(ref, path.exists()):
        stop_ids.add(extra)
    vocab_added = {str(t): i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items()}
    for name in END_OF_TURN_TOKENS:
        if name in vocab_added and template and name in template:
            stop_ids.add(vocab_added[name])
    stop_strings = [s for s in tokenizer.convert_ids_to_tokens(sorted(stop_ids)) if s]
    try:
        plain = tokenizer("a", add_special_tokens=True)["input_ids"]
        adds_bos = bool(plain) and bos_id is not None and plain[0] == bos_id
    except Exception:
        adds_bos = False
    markers = bool(template and re.search(r"\{%-?\s*generation\s*-?%\}", template))
    spec = TokenizerSpec(model, template, dict(tokenizer.special_tokens_map), bos_id, bos, eos, stop_ids, stop_strings,
                         adds_bos, markers)
    return Tok(spec, backend, tokenizer)


def _generation_eos(ref: str, local: bool) -> list[int]:
    """eos_token_id(s) from generation_config.json: what generation actually stops on."""
    try:
        if local:
            file = Path(ref) / "generation_config.json"
        else:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(ref, "generation_config.json")
            file = Path(cached) if isinstance(cached, str) else None
        if file is None or not file.is_file():
            return []
        value = json.loads(file.read_text(encoding="utf-8")).get("eos_token_id")
        values = value if isinstance(value, list) else [value]
        return [int(v) for v in values if isinstance(v, int)]
    except Exception:
        return []
