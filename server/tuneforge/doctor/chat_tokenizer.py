"""The model's tokenizer and chat template, loaded once, and what the other doctor modules need of them.

A local model folder whose tokenizer files say it all (a plain fast tokenizer, no class code) is read with
the `tokenizers` library alone (`tok_from_files`: no transformers, no torch on a cold start); any other goes
through transformers' AutoTokenizer (the reference for special tokens, BOS handling and the chat template). transformers imports torch, which costs ~250 MB and seconds, so what measuring
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
    tok = tok_from_files(model)  # most models: read from their files with `tokenizers` alone (no transformers, no torch)
    if tok is not None:
        if key is not None:
            _write_cache(key, tok.portable())
        return tok
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


#: tokenizer classes whose tokenizer.json is the whole truth (no class code rewriting the post-processor)
PLAIN_FAST_CLASSES = {None, "TokenizersBackend", "PreTrainedTokenizerFast", "GPT2Tokenizer", "GPT2TokenizerFast",
                      "Qwen2Tokenizer", "Qwen2TokenizerFast"}
_NAMED_SPECIALS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def tok_from_files(model: str) -> Tok | None:
    """The Tok of a local model folder built from tokenizer.json, tokenizer_config.json and chat_template.jinja with
    the `tokenizers` library alone: what `_load_tokenizer` reads through transformers (~2 s of imports, plus
    torch), for tokenizers whose files say it all -- a plain fast tokenizer class, no remote code, no add_bos /
    add_eos rewriting, one chat template. None otherwise (transformers loads it). tests/test_doctor_cold_start.py
    checks both give the same spec."""
    path = Path(model).expanduser()
    tj, tc = path / "tokenizer.json", path / "tokenizer_config.json"
    if not (path.is_dir() and tj.is_file() and tc.is_file()):
        return None
    try:
        cfg = json.loads(tc.read_text(encoding="utf-8"))
        if (cfg.get("auto_map") or cfg.get("tokenizer_class") not in PLAIN_FAST_CLASSES
                or any(k in cfg for k in ("add_bos_token", "add_eos_token", "add_prefix_space"))):
            return None
        template = cfg.get("chat_template")
        if (path / "chat_template.jinja").is_file():
            template = (path / "chat_template.jinja").read_text(encoding="utf-8")
        elif (path / "chat_template.json").is_file():
            template = json.loads((path / "chat_template.json").read_text(encoding="utf-8")).get("chat_template")
        if template is not None and not isinstance(template, str):  # several named templates: transformers picks
            return None
        from tokenizers import Tokenizer

        backend = Tokenizer.from_file(str(tj))
    except Exception:  # anything unexpected: the transformers path decides
        return None
    special = {k: t for k in _NAMED_SPECIALS if (t := _token_text(cfg.get(k))) is not None}
    bos, eos = special.get("bos_token"), special.get("eos_token")
    bos_id = backend.token_to_id(bos) if bos else None
    eos_id = backend.token_to_id(eos) if eos else None
    if (bos and bos_id is None) or (eos and eos_id is None):
        return None
    stop_ids = {int(eos_id)} if eos_id is not None else set()
    stop_ids.update(_generation_eos(str(path), True))
    added = {str(t.content): int(i) for i, t in backend.get_added_tokens_decoder().items()}
    for name in END_OF_TURN_TOKENS:
        if name in added and template and name in template:
            stop_ids.add(added[name])
    stop_strings = [t for t in (backend.id_to_token(i) for i in sorted(stop_ids)) if t]
    plain = backend.encode("a", add_special_tokens=True).ids
    adds_bos = bool(plain) and bos_id is not None and plain[0] == bos_id
    markers = bool(template and re.search(r"\{%-?\s*generation\s*-?%\}", template))
    spec = TokenizerSpec(model, template, special, bos_id, bos, eos, stop_ids, stop_strings, adds_bos, markers)
    return Tok(spec, backend, None)


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
