"""Ollama Modelfile and GGUF model card: the chat template and stop tokens must survive the export.

A Hugging Face chat template is Jinja; Ollama's TEMPLATE is a Go template. tuneforge recognises the
common chat formats (ChatML as used by SmolLM2 and Qwen, Llama 3 headers, Gemma turns, Phi-3 tags) from
the template's special tokens, writes the matching Go template, and then checks the translation: it
renders the Hugging Face template and the Go template for the same system + user turn and compares
the text the model would see. When the format is unknown (or the check fails), the Modelfile gets no
TEMPLATE line and says why: Ollama then uses the template the converter stored inside the GGUF.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import TuneforgeError

SENT_SYSTEM = "\x01SYSTEM\x01"
SENT_PROMPT = "\x01PROMPT\x01"
SENT_RESPONSE = "\x01RESPONSE\x01"

FAMILIES: dict[str, dict[str, Any]] = {
    "chatml": {
        "markers": ["<|im_start|>", "<|im_end|>"],
        "template": (
            "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
            "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
            "<|im_start|>assistant\n{{ .Response }}<|im_end|>\n"
        ),
        "stop": ["<|im_start|>", "<|im_end|>"],
    },
    "llama3": {
        "markers": ["<|start_header_id|>", "<|eot_id|>"],
        "template": (
            "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
            "{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>{{ end }}"
            "<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>"
        ),
        "stop": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
    },
    "gemma": {
        "markers": ["<start_of_turn>", "<end_of_turn>"],
        "template": (
            "<start_of_turn>user\n{{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}<end_of_turn>\n"
            "<start_of_turn>model\n{{ .Response }}<end_of_turn>\n"
        ),
        "stop": ["<start_of_turn>", "<end_of_turn>"],
    },
    "phi3": {
        "markers": ["<|user|>", "<|assistant|>", "<|end|>"],
        "template": (
            "{{ if .System }}<|system|>\n{{ .System }}<|end|>\n{{ end }}"
            "{{ if .Prompt }}<|user|>\n{{ .Prompt }}<|end|>\n{{ end }}"
            "<|assistant|>\n{{ .Response }}<|end|>\n"
        ),
        "stop": ["<|end|>", "<|user|>", "<|assistant|>"],
    },
}


class ChatFormat(BaseModel):
    """What the Modelfile needs from a model's chat template."""

    model_config = ConfigDict(extra="forbid")

    family: str | None  # chatml | llama3 | gemma | phi3 | None (unknown)
    template: str | None  # the Go template for Ollama, None when unknown
    stop: list[str] = Field(default_factory=list)
    default_system: str | None = None  # a system prompt the chat template inserts when none is given
    checked: bool = False  # the Go template renders the same text as the Jinja template
    note: str | None = None


# ---- reading the model's template ---------------------------------------------------------------
def read_chat_template(model_dir: Path) -> tuple[str | None, dict[str, Any]]:
    """The Jinja chat template (chat_template.jinja or tokenizer_config.json) and tokenizer_config."""
    cfg: dict[str, Any] = {}
    tc = model_dir / "tokenizer_config.json"
    if tc.is_file():
        try:
            cfg = json.loads(tc.read_text(encoding="utf-8"))
        except ValueError:
            cfg = {}
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8"), cfg
    tpl = cfg.get("chat_template")
    if isinstance(tpl, list):  # named templates: use "default"
        named = {t.get("name"): t.get("template") for t in tpl if isinstance(t, dict)}
        tpl = named.get("default") or next(iter(named.values()), None)
    ct = model_dir / "chat_template.json"
    if tpl is None and ct.is_file():
        try:
            tpl = json.loads(ct.read_text(encoding="utf-8")).get("chat_template")
        except ValueError:
            tpl = None
    return (tpl if isinstance(tpl, str) else None), cfg


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def render_jinja(template: str, messages: list[dict[str, str]], tokenizer_config: dict[str, Any]) -> str | None:
    """Render a Hugging Face chat template the way transformers does (sandboxed Jinja), or None."""
    try:
        from jinja2 import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        return None

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, indent=None, ensure_ascii=False: json.dumps(x, indent=indent, ensure_ascii=ensure_ascii)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: __import__("time").strftime(fmt)
    special = {k: _token_text(tokenizer_config.get(k)) or "" for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
    try:
        return env.from_string(template).render(messages=messages, add_generation_prompt=True, tools=None, **special)
    except Exception:  # a template that needs something we do not provide: no check, not a crash
        return None


# ---- the small Go-template subset we write ------------------------------------------------------
_TAG = re.compile(r"\{\{\s*(if\s+\.\w+|else|end|\.\w+)\s*\}\}")


def render_go(template: str, values: dict[str, str]) -> str:
    """Render the Go-template subset used here: {{ .Var }}, {{ if .Var }}...{{ else }}...{{ end }}."""
    out: list[str] = []
    stack: list[tuple[bool, bool]] = []  # (this branch active, parent active)
    active = True
    pos = 0
    for m in _TAG.finditer(template):
        if active:
            out.append(template[pos:m.start()])
        pos = m.end()
        tag = m.group(1)
        if tag.startswith("if"):
            cond = bool(values.get(tag.split(".", 1)[1], ""))
            stack.append((cond, active))
            active = active and cond
        elif tag == "else":
            cond, parent = stack[-1]
            stack[-1] = (not cond, parent)
            active = parent and not cond
        elif tag == "end":
            _, active = stack.pop()
        elif active:
            out.append(values.get(tag[1:], ""))
    if active:
        out.append(template[pos:])
    return "".join(out)


def _go_prefix(template: str, system: str, prompt: str) -> str:
    """The text the model sees before its answer (Ollama cuts the template at .Response)."""
    return render_go(template, {"System": system, "Prompt": prompt, "Response": SENT_RESPONSE}).split(SENT_RESPONSE)[0]


def detect_family(template: str | None) -> str | None:
    if not template:
        return None
    for name, fam in FAMILIES.items():
        if all(marker in template for marker in fam["markers"]):
            return name
    return None


def chat_format(model_dir: Path) -> ChatFormat:
    """The Ollama template, stop tokens and default system prompt for the model in this folder."""
    template, tok_cfg = read_chat_template(model_dir)
    eos = _token_text(tok_cfg.get("eos_token"))
    bos = _token_text(tok_cfg.get("bos_token"))
    family = detect_family(template)
    if family is None:
        stop = [eos] if eos else []
        why = "the model has no chat template" if not template else "its chat template is not one tuneforge knows (ChatML, Llama 3, Gemma, Phi-3)"
        return ChatFormat(
            family=None, template=None, stop=stop,
            note=f"No TEMPLATE written: {why}. Ollama will use the chat template stored in the GGUF file; "
                 "check answers with `ollama run` before sharing.",
        )
    fam = FAMILIES[family]
    stop = list(fam["stop"])
    if eos and eos not in stop and eos.startswith("<") and eos.endswith(">"):
        stop.append(eos)
    go = fam["template"]
    rendered = render_jinja(template or "", [{"role": "system", "content": SENT_SYSTEM}, {"role": "user", "content": SENT_PROMPT}], tok_cfg)
    if rendered is None:
        return ChatFormat(family=family, template=go, stop=stop, checked=False,
                          note=f"Chat template recognised as {family}; it could not be rendered here to double-check the translation.")
    expected = _go_prefix(go, SENT_SYSTEM, SENT_PROMPT)
    rendered = _without_bos(rendered, expected, bos)
    if rendered != expected:
        return ChatFormat(
            family=None, template=None, stop=stop, checked=False,
            note=f"The chat template looks like {family} but renders differently from Ollama's {family} template "
                 f"(Hugging Face: {rendered!r}; Ollama: {expected!r}). No TEMPLATE written: Ollama will use the "
                 "template stored in the GGUF file.",
        )
    default_system = _default_system(template or "", tok_cfg, go, bos)
    return ChatFormat(family=family, template=go, stop=stop, default_system=default_system, checked=True)


def _without_bos(rendered: str, expected: str, bos: str | None) -> str:
    """Drop a leading BOS the Jinja template writes and the Go template leaves to llama.cpp (Llama 3)."""
    if bos and rendered != expected and rendered.startswith(bos) and not expected.startswith(bos):
        return rendered[len(bos):]
    return rendered


def _default_system(template: str, tok_cfg: dict[str, Any], go: str, bos: str | None) -> str | None:
    """The system prompt the Jinja template inserts when the conversation has none (SmolLM2, Qwen2.5)."""
    rendered = render_jinja(template, [{"role": "user", "content": SENT_PROMPT}], tok_cfg)
    if rendered is None:
        return None
    rendered = _without_bos(rendered, _go_prefix(go, "", SENT_PROMPT), bos)
    if rendered == _go_prefix(go, "", SENT_PROMPT):
        return None
    before, _, after = _go_prefix(go, SENT_SYSTEM, SENT_PROMPT).partition(SENT_SYSTEM)
    if rendered.startswith(before) and rendered.endswith(after) and len(rendered) > len(before) + len(after):
        return rendered[len(before):len(rendered) - len(after)]
    return None


# ---- writing --------------------------------------------------------------------------------------
def _triple_quoted(text: str, what: str) -> str:
    if '"""' in text:
        raise TuneforgeError(
            f'The {what} contains """, which an Ollama Modelfile cannot hold.',
            'Remove the triple quotes from it (or pass --system-prompt with the text you want in the Modelfile).',
            code="gguf.modelfile_quotes",
        )
    return f'"""{text}"""'


def ollama_name(stem: str) -> str:
    """The Ollama model name for a GGUF file stem: what the Modelfile's comment and the CLI both say to `ollama create`."""
    return re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-.") or "model"


def modelfile_text(gguf_name: str, fmt: ChatFormat, *, system_prompt: str | None, others: list[str], model_name: str,
                   header: str, trained: bool = False) -> str:
    """The Modelfile. SYSTEM: `system_prompt`; without one, the chat template's default system prompt for a plain
    model, and none for a `trained` model (a training job's export: the job trained with no system prompt)."""
    lines = [f"# {header}", f"# Run it: ollama create {model_name} -f Modelfile && ollama run {model_name}"]
    if others:
        lines.append("# Other files in this folder (point FROM at one to use it): " + ", ".join(others))
    if fmt.note:
        lines += [f"# Note: {line}" for line in fmt.note.splitlines()]
    lines.append(f"FROM ./{gguf_name}")
    if fmt.template is not None:
        lines.append(f"TEMPLATE {_triple_quoted(fmt.template, 'chat template')}")
    for stop in fmt.stop:
        lines.append(f"PARAMETER stop {json.dumps(stop)}")
    system = system_prompt if system_prompt is not None else (None if trained else fmt.default_system)
    if system:
        lines.append(f"SYSTEM {_triple_quoted(system, 'system prompt')}")
    return "\n".join(lines) + "\n"


def model_card(*, repo_id: str, base_model: str | None, files: list[dict[str, Any]], fmt: ChatFormat,
               toolchain: str, system_prompt: str | None) -> str:
    """README.md for a GGUF repo on the Hub: what is in it, how it was checked, how to run it."""
    names = [f["quant"] for f in files]
    pick = next((q for q in ("q4_k_m", "q5_k_m", "q8_0") if q in names), names[0] if names else "f16").upper()
    front = ["---", "library_name: gguf", "tags:", "- gguf", "- llama.cpp", "- ollama", "- tuneforge"]
    if base_model:
        front += [f"base_model: {base_model}"]
    front += ["---", ""]
    body = [
        f"# {repo_id.split('/')[-1]}", "",
        f"GGUF files{f' of a fine-tune of `{base_model}`' if base_model else ''}, made with tuneforge using "
        f"llama.cpp's own converter and quantizer ({toolchain}). Every file was loaded and checked with llama.cpp "
        "before upload.", "",
        "## Run it", "", "```bash",
        f"llama-server -hf {repo_id}:{pick}",
        f"llama-cli -hf {repo_id}:{pick}",
        f"ollama run hf.co/{repo_id}:{pick}",
        "```", "",
        "Or download the folder and `ollama create my-model -f Modelfile` (the Modelfile carries the chat template and stop tokens).", "",
        "## Files", "", "| file | type | size | checks |", "|---|---|---|---|",
    ]
    for f in files:
        c = f.get("checks", {})
        bits = []
        if c.get("max_abs_logit_diff") is not None:
            bits.append(f"max |logit diff| vs transformers {c['max_abs_logit_diff']:.3f}")
        if c.get("top1_agreement") is not None:
            bits.append(f"top-1 agreement {c['top1_agreement']:.1%}")
        if c.get("greedy_match_f16") is not None:
            bits.append(f"greedy answers equal to f16 {c['greedy_match_f16']:.0%}")
        if c.get("agreement") is not None:
            bits.append(f"greedy answers agree with {c['agreement_with']} on {c['agreement']:.0%} of prompts (gate {c['min_agreement']:.0%})")
        body.append(f"| {Path(f['path']).name} | {f['quant'].upper()} | {f['bytes'] / 2**20:.1f} MiB | {'; '.join(bits) or 'loaded'} |")
    body += ["", "## Chat format", ""]
    if fmt.family:
        body.append(f"{fmt.family} template; stop tokens: {', '.join(f'`{s}`' for s in fmt.stop)}.")
    else:
        body.append(fmt.note or "Unknown chat format.")
    if system_prompt:
        body += ["", f"Trained with the system prompt: `{system_prompt}` (set in the Modelfile)."]
    return "\n".join(front + body) + "\n"
