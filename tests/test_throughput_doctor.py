"""The dataset doctor's cold start: a model folder's tokenizer read with `tokenizers` alone gives the spec
transformers gives, and a cold validation never imports torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict

from tuneforge.doctor.chat_tokenizer import _load_tokenizer, tok_from_files


def test_the_files_alone_give_the_spec_transformers_gives(smollm2_dir, tiny_llama_dir):
    for model in (smollm2_dir, tiny_llama_dir):
        fast, reference = tok_from_files(str(model)), _load_tokenizer(str(model), 0.0)
        assert fast is not None and fast.tokenizer is None
        assert asdict(fast.spec) == asdict(reference.spec)
        text = "<|im_start|>user\nHello there<|im_end|>\n"
        assert fast.backend.encode(text).ids == reference.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_tokenizers_with_class_code_or_bos_rewriting_go_through_transformers(smollm2_dir, tmp_path):
    for extra in ({"add_bos_token": True}, {"tokenizer_class": "LlamaTokenizer"}, {"auto_map": {"AutoTokenizer": "x.Y"}}):
        folder = tmp_path / f"m{len(list(tmp_path.iterdir()))}"
        shutil.copytree(smollm2_dir, folder, ignore=shutil.ignore_patterns("*.safetensors"))
        cfg = json.loads((folder / "tokenizer_config.json").read_text())
        (folder / "tokenizer_config.json").write_text(json.dumps({**cfg, **extra}))
        assert tok_from_files(str(folder)) is None, extra
    assert tok_from_files(str(tmp_path / "missing")) is None


def test_a_cold_validation_with_a_model_never_imports_torch(smollm2_dir, tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}]}
            for i in range(50)]
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    probe = ("import json, sys\nfrom tuneforge.doctor import validate\n"
             f"r = validate({str(data)!r}, model={str(smollm2_dir)!r}, cache=False)\n"
             "print(json.dumps({'torch': 'torch' in sys.modules, 'rows': r.rows, 'p50': r.token_stats.p50, "
             "'estimated': r.token_stats.estimated}))\n")
    home = tmp_path / "home"  # an empty tokenizer cache: the cold start
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=False,
                          env=dict(os.environ, TUNEFORGE_HOME=str(home), HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"torch": False, "rows": 50, "p50": out["p50"], "estimated": False} and out["p50"] > 10
    assert list((home / "cache" / "tokenizers").glob("*.json"))  # cached for the next (warm) start
