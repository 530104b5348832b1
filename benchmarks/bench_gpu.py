"""GPU benchmark: tuneforge's SFT template (the speed block on auto) for 0.5B-8B LoRA, QLoRA and full runs:
tokens/s, MFU and peak memory against the planner's prediction, optionally beside TRL's defaults.

Run on a CUDA machine with the training stack (the same environment `tuneforge train` uses):

    python benchmarks/bench_gpu.py                       # every case that fits this GPU
    python benchmarks/bench_gpu.py --quick               # 0.5B LoRA and full only
    python benchmarks/bench_gpu.py --cases 0.5b-lora,8b-qlora --steps 10
    python benchmarks/bench_gpu.py --with-trl            # also TRL's SFTTrainer with its defaults, same case

Nothing is downloaded: each model is the published config of a real architecture (benchmarks/plan_gpu_check.py)
with random weights, saved once under --workdir, with SmolLM2's tokenizer (its ids fit every vocabulary here);
the data is bench_validate.py's synthetic chats (~300 tokens). Throughput and memory do not depend on the
weights' values. Each run is a fresh process through templates/sft.py, as `tuneforge train` runs it.

Columns: tokens/s (non-padding tokens / Trainer's train_runtime), MFU (tokens/s x the planner's FLOPs per token
/ the GPU's dense bf16 peak), peak CUDA memory (max allocated) against the planner's predicted peak (without
the CUDA context and allocator slack, which max_memory_allocated does not see), the speed choices made, and
with --with-trl the ratio against TRL's defaults. The table is written to benchmarks/results/ with the date and
the GPU's name; commit it and correct the planner's constants (planner/throughput.py utilisation,
planner/memory.py) from it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(HERE))

from plan_gpu_check import LLAMA3_8B, QWEN25_05B

QWEN25_15B = {"model_type": "qwen2", "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
              "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True}
QWEN25_3B = {"model_type": "qwen2", "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
             "num_attention_heads": 16, "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True}
ARCHS = {"0.5b": QWEN25_05B, "1.5b": QWEN25_15B, "3b": QWEN25_3B, "8b": LLAMA3_8B}
# name -> (architecture, peft kind, per-device batch, max_length)
CASES = {
    "0.5b-lora": ("0.5b", "lora", 8, 1024), "0.5b-full": ("0.5b", "none", 8, 1024), "0.5b-qlora": ("0.5b", "qlora", 8, 1024),
    "1.5b-lora": ("1.5b", "lora", 8, 1024), "1.5b-full": ("1.5b", "none", 4, 1024),
    "3b-lora": ("3b", "lora", 8, 1024), "3b-qlora": ("3b", "qlora", 8, 1024), "3b-full": ("3b", "none", 4, 1024),
    "8b-lora": ("8b", "lora", 4, 1024), "8b-qlora": ("8b", "qlora", 4, 1024),
}
QUICK = ["0.5b-lora", "0.5b-full"]
# --cpu-smoke: the whole script on a CPU with a 2-layer model, to check its plumbing where no GPU is lent
ARCHS["tiny"] = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                 "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 49152, "tie_word_embeddings": True}
CASES["tiny-lora"] = ("tiny", "lora", 2, 128)


def build_model(name: str, workdir: Path, tokenizer_dir: str) -> Path:
    target = workdir / f"random-{name}"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.for_model(**ARCHS[name], max_position_embeddings=4096)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    tmp = target.with_name(target.name + ".tmp")
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp)
    del model
    torch.cuda.empty_cache()
    tmp.rename(target)
    return target


def prediction(name: str, peft: str, batch: int, seq: int, gpu_name: str) -> dict:
    """The planner's peak memory (without runtime slack) and FLOPs per token for this run, as the template runs it
    on a GPU (gradient checkpointing on, its default there)."""
    from tuneforge.flavors import gpu_model
    from tuneforge.planner.architecture import from_config
    from tuneforge.planner.memory import Workload, memory_breakdown
    from tuneforge.planner.throughput import train_flops_per_token, utilisation

    arch = from_config(ARCHS[name])
    mem = memory_breakdown(arch, Workload(method="sft", peft=peft, batch_size=batch, seq_len=seq,
                                          gradient_checkpointing=True, precision="bf16", device="cuda"))
    flops = train_flops_per_token(arch, peft=peft, context=seq / 2, gradient_checkpointing=True, method="sft")
    spec = gpu_model(gpu_name)
    peak = spec.peak_tflops if spec else None
    from tuneforge.planner.architecture import count_parameters

    u = utilisation(count_parameters(arch), peft, "cuda")
    return {"predicted_gib": mem.total - mem.runtime, "flops_per_token": flops, "peak_tflops": peak,
            "predicted_tokens_per_second": peak * 1e12 * u / flops if peak else None}


def run_side(side: str, model: Path, data: Path, evals: Path, peft: str, batch: int, seq: int, steps: int,
             out: Path) -> dict:
    import bench_sft

    spec = {"model": str(model), "train": str(data), "eval": str(evals), "steps": steps, "batch": batch, "out": str(out),
            "peft": peft, "max_length": seq}
    return bench_sft.run_child(side, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", help=f"Comma-separated among {', '.join(CASES)} (default: all that fit).")
    parser.add_argument("--quick", action="store_true", help=f"Only {', '.join(QUICK)}.")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--with-trl", action="store_true", help="Also run TRL's SFTTrainer with its defaults per case.")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "tf-bench-gpu"))
    parser.add_argument("--results", default=str(HERE / "results"))
    parser.add_argument("--cpu-smoke", action="store_true", help="Check the script on a CPU: a 2-layer model, 2 steps.")
    args = parser.parse_args(argv)
    import torch

    if args.cpu_smoke:
        args.cases, args.steps, args.quick = "tiny-lora", 2, False
    elif not torch.cuda.is_available():
        print("No CUDA GPU here: run this on a GPU machine (bench_sft.py measures the CPU).", file=sys.stderr)
        return 2
    from bench_sft import default_model
    from bench_validate import generate

    on_gpu = torch.cuda.is_available()
    gpu = torch.cuda.get_device_name(0) if on_gpu else "CPU"
    total_gib = torch.cuda.get_device_properties(0).total_memory / 2**30 if on_gpu else 1e9
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    data, evals = workdir / "chats-2000.jsonl", workdir / "chats-eval-64.jsonl"
    if not data.exists():
        generate(data, 2000)
    if not evals.exists():
        generate(evals, 64, seed=1)
    tokenizer_dir = default_model()
    names = QUICK if args.quick else [c.strip() for c in (args.cases or ",".join(CASES)).split(",") if c.strip()]
    rows = []
    for case in names:
        arch, peft, batch, seq = CASES[case]
        pred = prediction(arch, peft, batch, seq, gpu)
        if pred["predicted_gib"] > total_gib * 0.9:
            rows.append({"case": case, "skipped": f"predicted {pred['predicted_gib']:.1f} GiB > this GPU's {total_gib:.0f}"})
            print(rows[-1], flush=True)
            continue
        model = build_model(arch, workdir, tokenizer_dir)
        row = {"case": case, **pred}
        for side in (["tuneforge", "trl"] if args.with_trl else ["tuneforge"]):
            out = Path(tempfile.mkdtemp(prefix=f"{case}-{side}-", dir=workdir))
            try:
                r = run_side(side, model, data, evals, peft, batch, seq, args.steps, out)
            except SystemExit as exc:  # a side that fails (OOM, a missing kernel) is a row, not the end of the run
                row[f"{side}_error"] = str(exc)[-300:]
                continue
            row[side] = r
        tf = row.get("tuneforge") or {}
        if tf:
            row["measured_gib"] = tf["peak_memory_bytes"] / 2**30
            row["memory_error_pct"] = 100 * (pred["predicted_gib"] - row["measured_gib"]) / row["measured_gib"]
            if pred["peak_tflops"]:
                row["mfu"] = tf["tokens_per_second"] * pred["flops_per_token"] / (pred["peak_tflops"] * 1e12)
        if tf and row.get("trl"):
            row["x_trl"] = tf["tokens_per_second"] / row["trl"]["tokens_per_second"]
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k not in ("tuneforge", "trl")}, default=str), flush=True)
    write_table(rows, gpu, Path(args.results), args.steps)
    return 0


def write_table(rows: list[dict], gpu: str, results: Path, steps: int) -> Path:
    import torch

    results.mkdir(parents=True, exist_ok=True)
    today = dt.date.today().isoformat()
    path = results / f"gpu-{today}-{''.join(c if c.isalnum() else '-' for c in gpu)}.md"
    lines = [f"# bench_gpu.py on {gpu}, {today}", "",
             f"torch {torch.__version__}, {steps} steps per run, `python benchmarks/bench_gpu.py {' '.join(sys.argv[1:])}`", "",
             "| case | tokens/s | predicted tokens/s | MFU | peak GiB | predicted GiB | memory error | x TRL defaults | speed |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    fmt = lambda v, f: format(v, f) if isinstance(v, (int, float)) else "-"
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['case']} | {r['skipped']} | | | | | | | |")
            continue
        tf = r.get("tuneforge") or {}
        lines.append(f"| {r['case']} | {fmt(tf.get('tokens_per_second'), '.0f')} | {fmt(r.get('predicted_tokens_per_second'), '.0f')} "
                     f"| {fmt(r.get('mfu'), '.1%')} | {fmt(r.get('measured_gib'), '.2f')} | {fmt(r.get('predicted_gib'), '.2f')} "
                     f"| {fmt(r.get('memory_error_pct'), '+.1f')}% | {fmt(r.get('x_trl'), '.2f')} "
                     f"| {'; '.join(tf.get('speed') or []) or r.get('tuneforge_error', '')[:80]} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (path.with_suffix(".json")).write_text(json.dumps({"gpu": gpu, "date": today, "rows": rows}, indent=2, default=str),
                                           encoding="utf-8")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        print("CUDA_VISIBLE_DEVICES is empty: no GPU to measure.", file=sys.stderr)
    raise SystemExit(main())
