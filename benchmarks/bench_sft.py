"""Benchmark: tuneforge's SFT template against TRL's SFTTrainer with its defaults, side by side.

Both sides train the same model on the same data for the same steps, batch and LoRA settings (r=16,
alpha 32, dropout 0.05, all linear layers), each run in a fresh process, the sides alternating (A B, then
B A, ...) so that a load change on a shared machine hits both:

  trl              SFTTrainer(model=<path>, args=SFTConfig(<defaults>, use_cpu on a CPU), peft_config=LoRA)
                   on the raw chat rows: TRL's own defaults (bf16, gradient checkpointing on, lr 2e-5, ...).
  tuneforge        templates/sft.py --config <run config>: tuneforge's defaults (the speed block on auto).
  tuneforge-plain  the same, every speed knob off (no length grouping, no padding-free, no thread setting,
                   no LM head compaction): the reference for "at no cost in eval loss".

Printed per side (median over repeats): tokens/s of the training loop (non-padding tokens the trainer
counted / Trainer's train_runtime, checkpoint saves included), peak memory (RSS on a CPU, CUDA max allocated
on a GPU), the final logged training loss and the eval loss after training (TRL: its own eval loss, over
all tokens; tuneforge: over assistant tokens), then the tokens/s ratios against TRL.

    python benchmarks/bench_sft.py                      # SmolLM2-135M-Instruct, demo data, 20 steps, 2 repeats
    python benchmarks/bench_sft.py --repeats 3 --sides trl,tuneforge
    python benchmarks/bench_sft.py --quick --model DIR  # smoke test: 3 steps, 1 repeat
    python benchmarks/bench_sft.py --json out.json      # also write every run as JSON

Runs unchanged on a GPU (both sides then train on it; TRL's use_cpu is only set without CUDA).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEMO = ROOT / "server" / "tuneforge" / "data" / "demo"
SIDES = ("trl", "tuneforge", "tuneforge-plain")
LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}
EVENT_PREFIX = "##tuneforge-event "
PLAIN_SPEED = {"group_by_length": False, "cpu_threads": 0, "compact_lm_head": False,
               "liger": False, "fused_optimizer": False, "engine": "transformers"}


def default_model() -> str:
    cache = Path(os.environ.get("TUNEFORGE_TEST_CACHE") or Path.home() / ".cache" / "tuneforge-test")
    from tuneforge.models_offline import SMOLLM2_NAME, ensure_smollm2

    return str(ensure_smollm2(cache / SMOLLM2_NAME))


# ---- the sides (each in its own process) -----------------------------------------------------------

def peak_memory_bytes() -> int:
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child_trl(spec: dict) -> dict:
    """TRL's SFTTrainer with its defaults; only what the comparison fixes is set."""
    import datasets
    import torch
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    datasets.disable_progress_bars()
    train = datasets.load_dataset("json", data_files=spec["train"], split="train")
    evals = datasets.load_dataset("json", data_files=spec["eval"], split="train")
    on_gpu = torch.cuda.is_available()
    peft = spec.get("peft", "lora")
    extra = {} if on_gpu else {"use_cpu": True}
    if spec.get("max_length"):
        extra["max_length"] = spec["max_length"]
    if peft == "qlora":  # bench_gpu.py: the same 4-bit loading tuneforge uses
        from transformers import BitsAndBytesConfig

        extra["model_init_kwargs"] = {"quantization_config": BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)}
    args = SFTConfig(output_dir=spec["out"], max_steps=spec["steps"], per_device_train_batch_size=spec["batch"],
                     per_device_eval_batch_size=spec["batch"], logging_steps=1, report_to=[], disable_tqdm=True,
                     include_num_input_tokens_seen="non_padding", save_strategy="no", seed=42, **extra)
    lora = None if peft == "none" else LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                                                  target_modules=LORA["target_modules"], task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=spec["model"], args=args, train_dataset=train, eval_dataset=evals, peft_config=lora)
    out = trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    eval_loss = trainer.evaluate()["eval_loss"]
    runtime = out.metrics["train_runtime"]
    tokens = int(trainer.state.num_input_tokens_seen)
    return {"tokens": tokens, "train_runtime": runtime, "tokens_per_second": tokens / runtime,
            "peak_memory_bytes": peak_memory_bytes(), "final_loss": losses[-1] if losses else None,
            "eval_loss": eval_loss, "steps": trainer.state.global_step,
            "gradient_checkpointing": bool(args.gradient_checkpointing), "bf16": bool(args.bf16)}


def child_tuneforge(spec: dict, plain: bool) -> dict:
    """templates/sft.py on a run config, as `tuneforge train` runs it (a subprocess reading a config file)."""
    out = Path(spec["out"])
    cfg = {"model": spec["model"], "dataset": {"path": spec["train"], "eval_path": spec["eval"]},
           "peft": {"kind": spec.get("peft", "lora"), **LORA},
           "train": {"max_steps": spec["steps"], "per_device_batch_size": spec["batch"], "logging_steps": 1},
           "output_dir": "outputs"}  # relative: the template runs in its folder, like a job
    if spec.get("max_length"):
        cfg["max_length"] = spec["max_length"]
    if plain:
        cfg["speed"], cfg["padding_free"] = dict(PLAIN_SPEED), False
    from tuneforge.config.schema import RunConfig

    config = RunConfig.from_dict(cfg).write(out / "run.json")  # every field, as `tuneforge train` writes it
    env = dict(os.environ, TUNEFORGE_NO_TRACKIO="1", HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, str(ROOT / "templates" / "sft.py"), "--config", str(config)],
                          capture_output=True, text=True, env=env, cwd=str(out), check=False)
    if done.returncode != 0:
        raise SystemExit(f"templates/sft.py failed ({done.returncode}):\n{done.stderr[-3000:]}\n{done.stdout[-2000:]}")
    result = json.loads((out / "outputs" / "result.json").read_text(encoding="utf-8"))
    events = [json.loads(line[len(EVENT_PREFIX):]) for line in done.stdout.splitlines() if line.startswith(EVENT_PREFIX)]
    speed = [e["message"] for e in events if e.get("type") == "status" and str(e.get("message", "")).startswith("speed")]
    losses = [h["loss"] for h in result.get("log_history", []) if "loss" in h]
    peak = result.get("peak_cuda_bytes") or result.get("peak_rss_bytes")
    return {"tokens": result["tokens_trained"], "train_runtime": result["train_runtime_seconds"],
            "tokens_per_second": result["tokens_trained"] / result["train_runtime_seconds"],
            "peak_memory_bytes": peak, "final_loss": losses[-1] if losses else None,
            "eval_loss": result.get("eval_loss_after"), "steps": result.get("steps"), "speed": speed}


def run_child(side: str, spec: dict) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", side, json.dumps(spec)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"side {side} failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    return result


# ---- the comparison ----------------------------------------------------------------------------------

def machine() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    except ImportError:
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"CPU, {cpus} cores"


def summarize(runs: dict[str, list[dict]]) -> dict[str, dict]:
    out = {}
    for side, rs in runs.items():
        def pick(k: str, rs: list[dict] = rs) -> list:
            return [r[k] for r in rs if r.get(k) is not None]

        out[side] = {k: statistics.median(pick(k)) if pick(k) else None
                     for k in ("tokens_per_second", "peak_memory_bytes", "final_loss", "eval_loss", "tokens", "train_runtime")}
        out[side]["all_tokens_per_second"] = pick("tokens_per_second")
    return out


def print_table(summary: dict[str, dict]) -> None:
    header = f"{'side':>16} | {'tokens/s':>9} {'(each run)':>22} | {'peak MB':>8} | {'final loss':>10} {'eval loss':>9} | {'x trl':>6}"
    print(header)
    print("-" * len(header))
    base = (summary.get("trl") or {}).get("tokens_per_second")
    for side, s in summary.items():
        each = ",".join(f"{v:.0f}" for v in s["all_tokens_per_second"])
        ratio = f"{s['tokens_per_second'] / base:.2f}x" if base else "-"
        fmt = lambda v, spec: format(v, spec) if v is not None else "-"
        print(f"{side:>16} | {s['tokens_per_second']:>9.1f} {each:>22} | {s['peak_memory_bytes'] / 2**20:>8.0f} | "
              f"{fmt(s['final_loss'], '>10.4f')} {fmt(s['eval_loss'], '>9.4f')} | {ratio:>6}")


def write_results(folder: Path, summary: dict[str, dict], args, load, load_end) -> Path:
    import datetime as dt

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    kind = "cpu" if machine().startswith("CPU") else "gpu"
    path = folder / f"sft-{kind}-{now:%Y-%m-%d-%H%M}.md"
    base = (summary.get("trl") or {}).get("tokens_per_second")
    where = (f"machine: {machine()}; load average {load[0]:.2f} at start, {load_end[0]:.2f} at end; {args.steps} steps, "
             f"batch {args.batch}, LoRA r=16 all linear layers, {args.repeats} runs per side (alternating); "
             f"model {Path(args.model or 'SmolLM2-135M-Instruct').name}")
    lines = [f"# bench_sft.py, {now:%Y-%m-%d %H:%M} UTC", "", where, "",
             "| side | tokens/s (median) | each run | peak MB | final loss | eval loss | x TRL defaults |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for side, s in summary.items():
        ratio = f"{s['tokens_per_second'] / base:.2f}x" if base else "-"
        lines.append(f"| {side} | {s['tokens_per_second']:.1f} | {', '.join(f'{v:.0f}' for v in s['all_tokens_per_second'])} "
                     f"| {s['peak_memory_bytes'] / 2**20:.0f} | {s['final_loss']:.4f} | "
                     f"{s['eval_loss']:.4f} | {ratio} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="Model directory (default: SmolLM2-135M-Instruct from the test cache).")
    parser.add_argument("--train", default=str(DEMO / "train.jsonl"), help="Chat rows to train on (default: the demo data).")
    parser.add_argument("--eval", default=str(DEMO / "eval.jsonl"), help="Chat rows to evaluate on.")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="Runs per side (alternating order); medians are printed.")
    parser.add_argument("--sides", default=",".join(SIDES), help=f"Comma-separated, among {', '.join(SIDES)}.")
    parser.add_argument("--quick", action="store_true", help="Smoke test: 3 steps, 1 repeat, trl and tuneforge.")
    parser.add_argument("--json", help="Also write the runs and the summary to this file.")
    parser.add_argument("--results", help="Also write a markdown table (date, machine, load) into this folder, "
                        "e.g. benchmarks/results.")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        side, spec = args.child[0], json.loads(args.child[1])
        result = child_trl(spec) if side == "trl" else child_tuneforge(spec, plain=side == "tuneforge-plain")
        print(json.dumps(result))
        return 0

    if args.quick:
        args.steps, args.repeats = 3, 1
        if args.sides == ",".join(SIDES):
            args.sides = "trl,tuneforge"
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if unknown := [s for s in sides if s not in SIDES]:
        parser.error(f"unknown side(s) {unknown}; the sides are {', '.join(SIDES)}")
    model = args.model or default_model()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"model: {model}\ndata: {args.train} (eval {args.eval})\nsteps {args.steps}, batch {args.batch}, "
          f"LoRA r={LORA['r']} all linear layers, repeats {args.repeats}\nmachine: {machine()}, "
          f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n", flush=True)
    runs: dict[str, list[dict]] = {s: [] for s in sides}
    with tempfile.TemporaryDirectory(prefix="tf-bench-sft-") as tmp:
        for rep in range(args.repeats):
            order = sides if rep % 2 == 0 else list(reversed(sides))
            for side in order:
                out = Path(tmp) / f"{side}-{rep}"
                out.mkdir()
                spec = {"model": model, "train": args.train, "eval": args.eval, "steps": args.steps,
                        "batch": args.batch, "out": str(out)}
                r = run_child(side, spec)
                runs[side].append(r)
                print(f"  run {rep + 1} {side:>15}: {r['tokens_per_second']:7.1f} tokens/s ({r['tokens']} tokens in "
                      f"{r['train_runtime']:.1f} s), final loss {r['final_loss']}, eval loss {r['eval_loss']}"
                      + (f"  [{'; '.join(r['speed'])}]" if r.get("speed") else ""), flush=True)
    summary = summarize(runs)
    load_end = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print()
    print_table(summary)
    print(f"\nload average at end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    print("tokens/s: non-padding tokens the trainer counted / Trainer's train_runtime (the loop, checkpoint saves "
          "included);\npeak MB: RSS of the process on a CPU, CUDA max allocated on a GPU; eval loss: TRL's over all "
          "tokens, tuneforge's over assistant tokens (compare tuneforge with tuneforge-plain).")
    if args.results:
        write_results(Path(args.results), summary, args, load, load_end)
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "summary": summary, "machine": machine(),
                                                "load": [load, load_end]}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
