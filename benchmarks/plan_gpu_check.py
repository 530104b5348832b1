"""Planner vs reality on a GPU: predicted peak memory against torch.cuda.max_memory_allocated.

Run on a machine with a CUDA GPU and the training stack (torch, transformers, trl, peft, datasets):

    python benchmarks/plan_gpu_check.py            # all configurations that fit this GPU
    python benchmarks/plan_gpu_check.py --quick    # the two smallest only
    python benchmarks/plan_gpu_check.py --json     # one JSON object per configuration

Nothing is downloaded: each model is built from the published config of a real architecture with random
weights, directly on the GPU in bf16 (memory does not depend on the weights' values), and trained for a
few steps with TRL's SFTTrainer (the trainer and fused LM head the SFT template uses) on random token
rows of a fixed length. The prediction is the planner's memory model for the same run without the CUDA
context and allocator slack (which max_memory_allocated does not see). Target: within ±15%.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "server"))

from tuneforge.planner.architecture import from_config  # noqa: E402
from tuneforge.planner.memory import GiB, Workload, memory_breakdown  # noqa: E402
from tuneforge.planner.throughput import training_throughput  # noqa: E402

QWEN25_05B = {"model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
              "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True}
QWEN3_06B = {"model_type": "qwen3", "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
             "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
             "tie_word_embeddings": True}
SMOLLM2_135M = {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152,
                "tie_word_embeddings": True}
LLAMA3_8B = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
             "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False}

# name, config, peft, batch, seq_len, gradient checkpointing
CASES = [
    ("SmolLM2-135M lora b8 s1024", SMOLLM2_135M, "lora", 8, 1024, True),
    ("Qwen2.5-0.5B lora b4 s1024", QWEN25_05B, "lora", 4, 1024, True),
    ("Qwen2.5-0.5B full b4 s1024", QWEN25_05B, "none", 4, 1024, True),
    ("Qwen3-0.6B lora b4 s2048 no-ckpt", QWEN3_06B, "lora", 4, 2048, False),
    ("Qwen3-0.6B full b8 s2048", QWEN3_06B, "none", 8, 2048, True),
    ("Llama-3-8B lora b2 s2048", LLAMA3_8B, "lora", 2, 2048, True),
    ("Llama-3-8B lora b8 s4096", LLAMA3_8B, "lora", 8, 4096, True),
]
STEPS = 3


def _tokenizer(vocab_size: int):
    """A word-level tokenizer over the model's vocabulary size: the rows are token ids already."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab={f"t{i}": i for i in range(vocab_size)}, unk_token="t0"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="t0", eos_token="t1", unk_token="t0")


def run_case(name: str, cfg: dict, peft: str, batch: int, seq: int, ckpt: bool) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoConfig, AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    arch = from_config(cfg)
    workload = Workload(method="sft", peft=peft, batch_size=batch, seq_len=seq, gradient_checkpointing=ckpt,
                        precision="bf16", device="cuda")
    mem = memory_breakdown(arch, workload)
    predicted = (mem.total - mem.runtime) * GiB
    free, total = torch.cuda.mem_get_info()
    if mem.total * GiB > free * 0.95:
        return {"case": name, "skipped": f"needs {mem.total:.1f} GiB, {free / GiB:.1f} GiB free"}

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    config = AutoConfig.for_model(**cfg)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    rows = STEPS * batch
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg["vocab_size"], (rows, seq), generator=g).tolist()
    data = Dataset.from_dict({"input_ids": ids})
    peft_config = None if peft == "none" else LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05,
                                                         target_modules="all-linear", task_type="CAUSAL_LM")
    args = SFTConfig(output_dir="/tmp/plan_gpu_check", max_steps=STEPS, per_device_train_batch_size=batch,
                     learning_rate=1e-4, bf16=True, gradient_checkpointing=ckpt, max_length=seq, logging_steps=1,
                     save_strategy="no", report_to=[], disable_tqdm=True, dataset_text_field="text",
                     include_num_input_tokens_seen="non_padding")
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=_tokenizer(cfg["vocab_size"]),
                         peft_config=peft_config)
    t0 = time.time()
    out = trainer.train()
    elapsed = time.time() - t0
    measured = torch.cuda.max_memory_allocated()
    reserved = torch.cuda.max_memory_reserved()
    tokens = STEPS * batch * seq
    gpu = torch.cuda.get_device_name(0)
    from tuneforge.flavors import gpu_model

    spec = gpu_model(gpu)
    tp = training_throughput(arch, peft=peft, context=seq / 2, gradient_checkpointing=ckpt, method="sft",
                             peak_tflops=spec.peak_tflops if spec else 989.0, gpus=1, device="cuda",
                             params=sum(p.numel() for p in model.parameters()))
    result = {
        "case": name, "gpu": gpu, "predicted_gib": round(predicted / GiB, 2), "measured_gib": round(measured / GiB, 2),
        "error_pct": round(100 * (predicted - measured) / measured, 1), "reserved_gib": round(reserved / GiB, 2),
        "predicted_total_with_runtime_gib": round(mem.total, 2),
        "breakdown_gib": {k: v for k, v in mem.model_dump().items() if v},
        "measured_tokens_per_second": round(tokens / elapsed, 1),
        "predicted_tokens_per_second": round(tp.tokens_per_second, 1), "train_loss": out.training_loss,
    }
    del trainer, model
    gc.collect()
    torch.cuda.empty_cache()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Only the two smallest configurations.")
    parser.add_argument("--json", action="store_true", help="One JSON object per line.")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("No CUDA GPU here: run this on a GPU machine.", file=sys.stderr)
        return 2
    cases = CASES[:2] if args.quick else CASES
    results = []
    for case in cases:
        try:
            r = run_case(*case)
        except torch.cuda.OutOfMemoryError as exc:
            r = {"case": case[0], "error": f"CUDA out of memory: {str(exc).splitlines()[0]}"}
        results.append(r)
        if args.json:
            print(json.dumps(r), flush=True)
        elif "error_pct" in r:
            print(f"{r['case']:36s} predicted {r['predicted_gib']:7.2f} GiB  measured {r['measured_gib']:7.2f} GiB  "
                  f"error {r['error_pct']:+6.1f}%  tokens/s {r['measured_tokens_per_second']:>9} "
                  f"(predicted {r['predicted_tokens_per_second']})", flush=True)
        else:
            print(f"{r['case']:36s} {r.get('skipped') or r.get('error')}", flush=True)
    errors = [abs(r["error_pct"]) for r in results if "error_pct" in r]
    if errors and not args.json:
        print(f"max |error| {max(errors):.1f}% over {len(errors)} configurations (target 15%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
