"""Which files of a model folder a run or an export reads, and which of them are the model's own code
(stdlib only): one rule for the upload to a cloud job (tuneforge/jobs/inputs.py), the local GGUF export
(tuneforge/gguf/) and the cloud export template (templates/gguf_export.py).

A model folder is read by file name: its config, tokenizer and weight files. Never Python files (a
model's own code), `.git`, `.env` or anything else that happens to sit in the folder.

A model "needs remote code" when transformers would import code that came with it: an `auto_map` in
one of its JSON files (config.json, tokenizer_config.json, ...: the only way transformers finds such
code) or Python files beside the weights. `stage_model_folder` makes the folder an export works on:
without trust, only the model files, the JSON ones with `auto_map` removed, so nothing that runs the
export can find the model's code; with trust, everything in the folder, unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

#: model-folder files a training run or an export loads, by name
MODEL_FILE_NAMES = frozenset({
    "config.json", "generation_config.json", "adapter_config.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.json", "merges.txt", "vocab.txt", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model",
    "chat_template.jinja", "chat_template.json", "preprocessor_config.json", "processor_config.json",
    "video_preprocessor_config.json",
})
#: weight files, by ending (sharded or not; their index files too)
WEIGHT_SUFFIXES = (".safetensors", ".safetensors.index.json", ".bin.index.json")
#: the key through which transformers finds a model's own classes (AutoConfig, AutoTokenizer, AutoModel...)
CODE_KEY = "auto_map"


def is_model_file(path: Path) -> bool:
    name = path.name
    if name.startswith("."):
        return False
    if name in MODEL_FILE_NAMES or name.endswith(WEIGHT_SUFFIXES):
        return True
    return name.endswith(".bin") and name.startswith(("pytorch_model", "adapter_model"))


def _json_object(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remote_code_findings(folder: Path) -> list[str]:
    """What in FOLDER would make transformers run the model's own code: "config.json: auto_map (AutoTokenizer)",
    "tokenization_x.py", ... (empty when there is none)."""
    folder = Path(folder)
    found: list[str] = []
    for path in sorted(folder.iterdir()):
        if path.suffix == ".json" and path.is_file() and is_model_file(path):
            data = _json_object(path)
            if data is not None and CODE_KEY in data:
                value = data[CODE_KEY]
                keys = ", ".join(sorted(map(str, value))) if isinstance(value, dict) else "legacy list"
                found.append(f"{path.name}: {CODE_KEY} ({keys})")
    for path in sorted(folder.rglob("*.py")):
        rel = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            found.append(rel.as_posix())
    return found


def _link(src: Path, dest: Path) -> None:
    """dest -> src's real file (no copy of the weights); a copy where links are not possible."""
    try:
        os.symlink(src.resolve(), dest)
    except OSError:
        if src.is_dir():
            shutil.copytree(src, dest, symlinks=False)
        else:
            shutil.copyfile(src, dest)


def stage_model_folder(src: Path, dest: Path, *, trust_remote_code: bool) -> Path:
    """The folder an export reads instead of SRC, made at DEST (a new folder; files are links, not copies).

    Without trust: only SRC's model files (is_model_file), the JSON ones rewritten without `auto_map`,
    so transformers and llama.cpp's converter cannot find any code of the model's own, whatever they
    are asked. With trust: every entry of SRC but hidden ones, unchanged (its code included)."""
    src, dest = Path(src), Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for path in sorted(src.iterdir()):
        if path.name.startswith("."):
            continue
        if trust_remote_code:
            _link(path, dest / path.name)
            continue
        if not path.is_file() or not is_model_file(path):
            continue
        data = _json_object(path) if path.suffix == ".json" else None
        if data is not None and CODE_KEY in data:
            del data[CODE_KEY]
            (dest / path.name).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        else:
            _link(path, dest / path.name)
    return dest
