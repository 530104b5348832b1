# /// script
# requires-python = ">=3.10"
# dependencies = [
#     "torch>=2.4",
#     "transformers>=5.0",
#     "trl>=1.16",
#     "peft>=0.17",
#     "datasets>=4.0",
#     "accelerate>=1.10",
#     "trackio>=0.40",
#     "pyyaml>=6",
#     "bitsandbytes>=0.45; sys_platform == 'linux'",
# ]
# ///
"""Group relative policy optimisation (GRPO) with TRL + PEFT and real reward functions.

Usage:
    python grpo.py --config run.json        (or: uv run grpo.py --config run.json)

The config (JSON or YAML) is tuneforge's RunConfig: model, dataset (+ column_map), peft, train,
method_args (num_generations, max_completion_length, reward_functions), ... This script is static: user
values only ever arrive through that file. It never reads secrets from the config; a Hub token, when
pushing, comes from the environment (HF_TOKEN).

What it does:
- loads prompt-only rows (local jsonl/json/csv/parquet file or folder, or a Hub dataset), applies
  column_map first; string prompts are rendered with the model's chat template when it has one; the
  other columns (answer, format_regex, target_length...) reach the reward functions as keyword lists;
- scores each group of num_generations sampled completions with the built-in reward functions named
  in method_args.reward_functions (see REWARDS: format, length, accuracy, exact_match) and trains with
  TRL's GRPOTrainer; an unknown name stops the run at once, listing the known ones;
- prints one structured event per logging step: `##tuneforge-event {"type": "progress", ...}`;
- writes result.json (mean eval reward before/after, per-function rewards, train loss, runtime, tokens,
  peak memory, samples), the adapter (or full model), the merged model on request, and a model card.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import random
import re
import resource
import sys
import time
from pathlib import Path

EVENT_PREFIX = "##tuneforge-event "  # must match tuneforge.progress.EVENT_PREFIX
KNOWN_TOP_KEYS = {
    "model", "dataset", "method", "peft", "train", "method_args", "max_length", "packing", "padding_free",
    "assistant_only_loss", "system_prompt", "seed", "output_dir", "merge", "push_to_hub", "hub_private",
    "trackio", "launch", "timeout_seconds", "eval_prompts", "max_new_tokens",
}
ROLE_ALIASES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
                "bot": "assistant", "system": "system", "tool": "tool"}
DATA_SUFFIXES = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
METHOD = "grpo"
# TRL log key -> progress/eval event field (per-function means are added as reward_<name>)
METRICS = {"reward": "reward", "reward_std": "reward_std", "completions/mean_length": "completion_length"}
REFERENCE_COLUMNS = ("answer", "solution", "reference", "ground_truth", "target", "expected")
FORMAT_COLUMNS = ("format_regex", "format")
RESERVED_COLUMNS = {"prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric", "environments"}
THINK_FORMAT = re.compile(r"\s*<think>(?:(?!<think>).)*?</think>\s*\S.*", re.DOTALL)
NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
EVAL_ROWS_MAX = 64  # eval generates num_generations completions per prompt: keep it bounded


def emit(kind: str, **fields) -> None:
    """One machine-readable line; tuneforge status reads these exactly."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    print(EVENT_PREFIX + json.dumps({"type": kind, **fields}, default=float), flush=True)


def fail(message: str) -> None:
    emit("status", message=f"error: {message}")
    print(f"ERROR: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


# ---- config ---------------------------------------------------------------------------------------
def load_config(path: str) -> dict:
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith(".json"):
        cfg = json.loads(text)
    else:
        import yaml

        cfg = yaml.safe_load(text)
    if not isinstance(cfg, dict):
        fail(f"{path} does not hold a mapping")
    unknown = set(cfg) - KNOWN_TOP_KEYS
    if unknown:  # e.g. an `env:` block: never honoured
        fail(f"unknown config keys {sorted(unknown)} in {path}")
    return cfg


def maybe_relaunch_distributed(cfg: dict, argv: list[str]) -> None:
    """Multi-GPU flavors: run this same script under `accelerate launch`, one process per GPU."""
    launch = cfg.get("launch") or {}
    gpus = int(launch.get("gpus") or 1)
    if gpus <= 1 or "LOCAL_RANK" in os.environ:
        return
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(gpus), "--num_machines", "1"]
    if launch.get("strategy") == "fsdp":
        cmd += ["--use_fsdp", "--fsdp_sharding_strategy", "FULL_SHARD", "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP",
                "--fsdp_state_dict_type", "SHARDED_STATE_DICT"]
    else:
        cmd += ["--multi_gpu"]
    cmd += [os.path.abspath(__file__), *argv]
    emit("status", message=f"launching {gpus} processes ({launch.get('strategy') or 'ddp'})")
    os.execv(sys.executable, cmd)


# ---- data -----------------------------------------------------------------------------------------
def load_rows(ref: str, split: str, subset: str | None):
    from datasets import load_dataset

    p = Path(ref)
    if p.exists():
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.suffix.lower() in DATA_SUFFIXES)
        if not files:
            fail(f"no .jsonl/.json/.csv/.parquet files in {ref}")
        kinds = {DATA_SUFFIXES.get(f.suffix.lower()) for f in files}
        if None in kinds or len(kinds) != 1:
            fail(f"{ref}: mixed or unsupported file types {sorted(f.suffix for f in files)}")
        return load_dataset(kinds.pop(), data_files=[str(f) for f in files], split="train")
    return load_dataset(ref, subset, split=split)


def apply_column_map(ds, column_map: dict):
    """Rename source columns to the names the trainer reads (column_map is target -> source), first of all."""
    missing = sorted(s for s in column_map.values() if s not in ds.column_names)
    if missing:
        fail(f"column_map names columns the data lacks: {missing}; its columns are {ds.column_names}")
    renames = {s: t for t, s in column_map.items() if s != t}
    shadowed = [t for t in renames.values() if t in ds.column_names and t not in renames]
    if shadowed:  # the mapped column wins over a same-named one
        ds = ds.remove_columns(shadowed)
    return ds.rename_columns(renames) if renames else ds


def load_splits(dcfg: dict, seed: int):
    """(train, eval or None), column_map applied; eval from eval_path, eval_split or eval_fraction."""
    train = apply_column_map(load_rows(dcfg["path"], dcfg.get("split") or "train", dcfg.get("subset")),
                             dcfg.get("column_map") or {})
    evals = None
    if dcfg.get("eval_path"):
        evals = load_rows(dcfg["eval_path"], dcfg.get("split") or "train", dcfg.get("subset"))
    elif dcfg.get("eval_split"):
        evals = load_rows(dcfg["path"], dcfg["eval_split"], dcfg.get("subset"))
    elif float(dcfg.get("eval_fraction") or 0) > 0 and len(train) >= 10:
        parts = train.train_test_split(test_size=float(dcfg["eval_fraction"]), seed=seed)
        return parts["train"], parts["test"]
    if evals is not None:
        evals = apply_column_map(evals, dcfg.get("column_map") or {}) if len(evals) else None
    return train, evals


def norm_messages(msgs: list) -> list[dict]:
    """Chat turns as {role, content}; ShareGPT's from/value and role aliases (human, gpt) accepted."""
    out = []
    for m in msgs:
        role = m.get("role") or m.get("from")
        out.append({"role": ROLE_ALIASES.get(str(role), str(role)), "content": str(m.get("content") or m.get("value") or "")})
    return out


def to_prompt(row: dict, chat: bool, system_prompt: str | None) -> dict:
    """The prompt as TRL's GRPOTrainer reads it; the row's other columns stay for the reward functions."""
    prompt = row.get("prompt")
    if prompt is None or prompt == "" or prompt == []:
        raise KeyError(f"a row has no 'prompt' (columns: {sorted(row)})")
    if isinstance(prompt, list):
        prompt = norm_messages(prompt)
    elif chat:
        prompt = [{"role": "user", "content": str(prompt)}]
    if isinstance(prompt, list) and system_prompt and not any(m["role"] == "system" for m in prompt):
        prompt = [{"role": "system", "content": system_prompt}] + prompt
    return {"prompt": prompt}


# ---- reward functions -------------------------------------------------------------------------------
# TRL calls each as f(prompts=, completions=, completion_ids=, **columns) -> one float (or None: no verdict)
# per completion; columns arrive as lists aligned with the completions.
def completion_text(completion) -> str:
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        return "".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))
    return str(completion or "")


def first_column(kwargs: dict, names: tuple[str, ...]) -> list | None:
    return next((kwargs[n] for n in names if kwargs.get(n) is not None), None)


def format_reward(completions, **kwargs) -> list[float]:
    """1.0 when the whole answer has the expected format, 0.5 when the format only occurs inside it, else 0.0.

    The format comes per row from a `format_regex` (or `format`) column: a regular expression, or "json"
    for an answer that parses as JSON (a ``` fence around it is allowed). Without such a column: a
    <think>...</think> block followed by a non-empty answer (DeepSeek-R1 style)."""
    specs = first_column(kwargs, FORMAT_COLUMNS) or [None] * len(completions)
    scores = []
    for completion, spec in zip(completions, specs):
        text = completion_text(completion).strip()
        if spec and str(spec).strip().lower() == "json":
            fenced = re.fullmatch(r"```[A-Za-z]*\s*(.*?)\s*```", text, re.DOTALL)
            try:
                json.loads(fenced.group(1) if fenced else text)
                scores.append(1.0)
            except ValueError:
                scores.append(0.0)
            continue
        pattern = re.compile(spec, re.DOTALL) if spec else THINK_FORMAT
        scores.append(1.0 if pattern.fullmatch(text) else 0.5 if pattern.search(text) else 0.0)
    return scores


def length_reward(completions, completion_ids=None, default_target: int = 64, **kwargs) -> list[float]:
    """1.0 at the target length in tokens, falling linearly to 0.0 at zero and at twice the target.

    The target comes per row from a `target_length` column, else half of max_completion_length."""
    targets = kwargs.get("target_length") or [None] * len(completions)
    scores = []
    for i, completion in enumerate(completions):
        n = len(completion_ids[i]) if completion_ids is not None else len(completion_text(completion).split())
        t = targets[i]
        t = t if isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 else default_target
        scores.append(max(0.0, 1.0 - abs(n - t) / t))
    return scores


def final_answer(text: str) -> str:
    """The part of a completion that states its answer: <answer>...</answer>, \\boxed{...}, the rest of the
    line after '####' or 'answer is'/'answer:', else everything after the <think> block."""
    text = re.sub(r"<think>.*?</think>", "", text, flags=re.DOTALL)
    for pattern in (r"(?s)<answer>(.*?)</answer>", r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}", r"####\s*([^\n]+)",
                    r"(?i)answer\s*(?:is|:)\s*([^\n]+)"):
        found = re.findall(pattern, text)
        if found:
            return found[-1].strip()
    return text.strip()


def reference_text(reference) -> str:
    text = str(reference)
    return text.rsplit("####", 1)[1].strip() if "####" in text else text.strip()  # GSM8K keeps it after ####


def normalise(text: str) -> str:
    text = re.sub(r"\\text\{([^}]*)\}", r"\1", str(text))
    return re.sub(r"\s+", " ", text).strip().strip(" .,;:!?\"'`$").casefold()


def to_number(text: str) -> float | None:
    t = normalise(text).replace(",", "").replace("$", "").rstrip("%").strip()
    try:
        if "/" in t:
            num, den = t.split("/", 1)
            return float(num) / float(den)
        return float(t) if t and "_" not in t else None
    except (ValueError, ZeroDivisionError):
        return None


def same_answer(answer: str, reference: str) -> bool:
    """Numbers compare by value (1,000 == 1000.0 == 2000/2); other text after normalising case, spaces, punctuation."""
    x, y = to_number(answer), to_number(reference)
    if x is not None and y is not None:
        return math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)
    return normalise(answer) == normalise(reference)


def exact_match_reward(completions, **kwargs) -> list[float | None]:
    """1.0 when the completion's final answer equals the reference answer (numbers by value), else 0.0."""
    refs = first_column(kwargs, REFERENCE_COLUMNS) or [None] * len(completions)
    return [None if ref is None or not normalise(reference_text(ref)) else
            float(same_answer(final_answer(completion_text(c)), reference_text(ref))) for c, ref in zip(completions, refs)]


def accuracy_reward(completions, **kwargs) -> list[float | None]:
    """Like exact_match, but lenient: a numeric reference is compared with the last number of the final
    answer, a text reference may appear as whole words inside it."""
    refs = first_column(kwargs, REFERENCE_COLUMNS) or [None] * len(completions)
    scores: list[float | None] = []
    for completion, ref in zip(completions, refs):
        reference = reference_text(ref) if ref is not None else ""
        if not normalise(reference):
            scores.append(None)
            continue
        answer = final_answer(completion_text(completion))
        if same_answer(answer, reference):
            scores.append(1.0)
        elif to_number(reference) is not None:
            numbers = NUMBER.findall(answer)
            scores.append(float(bool(numbers) and same_answer(numbers[-1], reference)))
        else:
            pattern = r"(?<!\w)" + re.escape(normalise(reference)) + r"(?!\w)"
            scores.append(float(bool(re.search(pattern, normalise(answer)))))
    return scores


REWARDS = {"format": format_reward, "length": length_reward, "accuracy": accuracy_reward, "exact_match": exact_match_reward}


def check_reward_names(names: list[str]) -> None:
    unknown = [n for n in names if n not in REWARDS]
    if unknown or not names:
        what = f"unknown reward function(s) {unknown}" if unknown else "no reward functions named"
        fail(f"{what} in method_args.reward_functions; the built-in ones are: {', '.join(sorted(REWARDS))}")


def check_grpo_config(cfg: dict) -> None:
    """What can be checked from the config alone: the reward names and whole groups of completions per batch."""
    margs, tcfg = cfg.get("method_args") or {}, cfg.get("train") or {}
    check_reward_names(list(margs.get("reward_functions") or []))
    num_gen = int(margs.get("num_generations", 4))
    batch = int(tcfg.get("per_device_batch_size", 4)) * int(tcfg.get("gradient_accumulation_steps", 1))
    world = int((cfg.get("launch") or {}).get("gpus") or 1)
    if (batch * world) % num_gen:
        fail(f"GRPO scores groups of num_generations={num_gen} completions per prompt, so per_device_batch_size x "
             f"gradient_accumulation_steps{' x gpus' if world > 1 else ''} ({batch * world}) must be a multiple "
             f"of {num_gen}; e.g. set per_device_batch_size to {num_gen}")


def build_rewards(names: list[str], dataset, max_completion_length: int) -> list:
    """The reward callables for these names, after checking the data holds what they read."""
    check_reward_names(names)
    columns = set(dataset.column_names)
    if {"accuracy", "exact_match"} & set(names) and not columns & set(REFERENCE_COLUMNS):
        fail(f"reward {'accuracy' if 'accuracy' in names else 'exact_match'!r} compares answers with a reference, but the "
             f"data has none of the columns {list(REFERENCE_COLUMNS)} (it has {sorted(columns)}); add one, or map yours "
             "with column_map, e.g. {\"answer\": \"your_column\"}")
    clash = sorted(columns & RESERVED_COLUMNS)
    if clash:
        fail(f"columns {clash} collide with the reward functions' own arguments; rename them with column_map")
    for col in [c for c in FORMAT_COLUMNS if c in columns][:1]:
        for i, spec in enumerate(dataset[col]):
            if spec and str(spec).strip().lower() != "json":
                try:
                    re.compile(spec)
                except re.error as exc:
                    fail(f"row {i + 1}: {col} {spec!r} is not a valid regular expression ({exc})")
    funcs = []
    for name in dict.fromkeys(names):
        func = REWARDS[name]
        if name == "length":
            func = functools.partial(length_reward, default_target=max(1, max_completion_length // 2))
        funcs.append(func)
    return funcs


# ---- device ---------------------------------------------------------------------------------------
def choose_precision(requested: str) -> str:
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    try:  # CPUs with native bf16 (AVX512-BF16 / AMX) train ~1.7x faster in bf16 than fp32
        if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported():
            return "bf16"
    except AttributeError:
        pass
    return "fp32"


def peak_memory() -> dict:
    import torch

    out = {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "peak_cuda_bytes": None}
    if torch.cuda.is_available():
        out["peak_cuda_bytes"] = int(torch.cuda.max_memory_allocated())
    return out


# ---- progress -------------------------------------------------------------------------------------
def progress_callback():
    from transformers import TrainerCallback

    class ProgressEvents(TrainerCallback):
        """One structured event per logging step (step, total, loss, lr, tokens/s, eta, the method's metrics)."""

        def __init__(self):
            self.t0 = None
            self.last_t = None
            self.last_tokens = 0

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = self.last_t = time.time()
            emit("status", message="training")

        def on_log(self, args, state, control, logs=None, **kw):
            if not state.is_world_process_zero or not logs:
                return
            if "eval_reward" in logs and "loss" not in logs:  # an evaluation: its own event, progress unchanged
                emit("eval", step=state.global_step, **reward_fields(logs, "eval_"))
                return
            if "loss" not in logs or self.t0 is None:  # the end-of-training summary
                return
            now = time.time()
            tokens = int(getattr(state, "num_input_tokens_seen", 0) or logs.get("num_tokens") or 0)
            dt = max(now - self.last_t, 1e-6)
            tps = (tokens - self.last_tokens) / dt if tokens else None
            self.last_t, self.last_tokens = now, tokens
            step, total = state.global_step, state.max_steps
            elapsed = now - self.t0
            eta = elapsed / step * (total - step) if step else None
            emit("progress", step=step, total_steps=total, epoch=round(state.epoch or 0.0, 4), loss=logs.get("loss"),
                 learning_rate=logs.get("learning_rate"), tokens_per_second=tps, eta_seconds=eta, time=now,
                 **reward_fields(logs, ""))

    return ProgressEvents()


def reward_fields(logs: dict, prefix: str) -> dict:
    """reward, reward_std, completion_length and reward_<function> (its mean) from TRL's log keys."""
    fields = {field: logs.get(prefix + key) for key, field in METRICS.items()}
    for key, value in logs.items():
        parts = key[len(prefix):].split("/") if key.startswith(prefix + "rewards/") else []
        if len(parts) == 3 and parts[2] == "mean":
            fields["reward_" + parts[1].removesuffix("_reward")] = value
    return fields


# ---- model, samples, card ---------------------------------------------------------------------------
def load_policy(cfg: dict, precision: str, on_gpu: bool, end_ids: set[int]):
    import torch
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": torch.bfloat16 if (on_gpu and precision == "bf16") else (torch.float16 if precision == "fp16" else torch.float32)}
    if cfg["peft"]["kind"] == "qlora":
        if not on_gpu:
            fail("QLoRA needs a CUDA GPU (bitsandbytes 4-bit); use peft kind 'lora' on CPU")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    if on_gpu:  # straight onto this process's GPU (not through host RAM); needed for 4-bit loading
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    model = AutoModelForCausalLM.from_pretrained(cfg["model"], **kwargs)
    if model.generation_config is not None and end_ids:
        eos = model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        model.generation_config.eos_token_id = sorted(set(eos) | end_ids)
    return model


def greedy_answers(model, tokenizer, prompts: list[str], system_prompt: str | None, max_new_tokens: int) -> list[str]:
    import torch

    answers = []
    model.eval()
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # batched generation pads on the left
    threads = torch.get_num_threads()
    if model.device.type == "cpu":  # token-by-token decoding is latency-bound: one thread avoids OpenMP stalls
        torch.set_num_threads(1)
    try:
        for start in range(0, len(prompts), 16):
            texts = [tokenizer.apply_chat_template(
                ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [{"role": "user", "content": p}],
                tokenize=False, add_generation_prompt=True) for p in prompts[start:start + 16]]
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            with torch.no_grad():
                out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
            width = batch["input_ids"].shape[1]
            answers += [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]
    finally:
        tokenizer.padding_side = side
        torch.set_num_threads(threads)
    return answers


def write_model_card(path: Path, cfg: dict, result: dict) -> None:
    lines = [
        "---", f"base_model: {cfg['model']}", "library_name: peft" if cfg["peft"]["kind"] != "none" else "library_name: transformers",
        f"tags: [tuneforge, trl, {METHOD}]", "---", "",
        f"# {cfg.get('push_to_hub') or Path(cfg['output_dir']).name}", "",
        f"Fine-tuned from `{cfg['model']}` with group relative policy optimisation (TRL GRPOTrainer) "
        f"by tuneforge {result.get('tuneforge_version') or ''}.", "",
        "| | |", "|---|---|",
        f"| dataset | `{cfg['dataset']['path']}` |",
        f"| method | grpo, {cfg['peft']['kind']} (r={cfg['peft']['r']}, alpha={cfg['peft']['alpha']}) |",
        f"| rewards | {', '.join(result.get('reward_functions') or [])} ({result.get('num_generations')} completions "
        f"per prompt, up to {result.get('max_completion_length')} tokens) |",
        f"| learning rate | {cfg['train']['learning_rate']} |",
        f"| epochs / max steps | {cfg['train']['epochs']} / {cfg['train'].get('max_steps')} |",
        f"| max length | {cfg['max_length']} |",
        f"| mean eval reward before -> after | {result.get('mean_reward_before')} -> {result.get('mean_reward_after')} |",
        f"| train loss | {result.get('train_loss')} |",
        f"| tokens trained | {result.get('tokens_trained')} |",
        f"| runtime | {result.get('runtime_seconds')} s |", "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def evaluate_into(trainer, result: dict, when: str) -> None:
    emit("status", message=f"evaluating ({when})")
    report_to = list(trainer.args.report_to or [])
    # TRL's GRPO profiler logs straight to Trackio, which has no open run outside train(): keep it out here
    trainer.args.report_to = [r for r in report_to if r != "trackio"]
    try:
        fields = reward_fields(trainer.evaluate(), "eval_")
    finally:
        trainer.args.report_to = report_to
    result[f"mean_reward_{when}"] = fields.pop("reward")
    result[f"rewards_{when}"] = {k.removeprefix("reward_"): v for k, v in fields.items()
                                 if k.startswith("reward_") and k != "reward_std"}


# ---- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="tuneforge run config (JSON or YAML)")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    check_grpo_config(cfg)  # before the slow imports: a typo or a bad batch size fails at once
    maybe_relaunch_distributed(cfg, sys.argv[1:] if argv is None else argv)

    t_start = time.time()
    emit("status", message="loading libraries")
    import torch
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    seed = int(cfg.get("seed", 42))
    random.seed(seed)
    torch.manual_seed(seed)
    out_dir = Path(cfg["output_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    tcfg, pcfg = cfg["train"], cfg["peft"]
    margs = cfg.get("method_args") or {}
    reward_names = list(margs.get("reward_functions") or [])
    num_gen = int(margs.get("num_generations", 4))
    max_completion = int(margs.get("max_completion_length", 128))
    precision = choose_precision(tcfg.get("precision", "auto"))
    on_gpu = torch.cuda.is_available()

    emit("status", message="loading tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(cfg["model"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    end_ids = set()
    for tok in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"):
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            end_ids.add(tid)

    emit("status", message="loading data")
    train_raw, eval_raw = load_splits(cfg["dataset"], seed)
    chat = bool(getattr(tokenizer, "chat_template", None))
    fn_kwargs = {"chat": chat, "system_prompt": cfg.get("system_prompt")}
    try:
        train_ds = train_raw.map(to_prompt, fn_kwargs=fn_kwargs, desc="prompts")
        eval_ds = eval_raw.map(to_prompt, fn_kwargs=fn_kwargs, desc="prompts") if eval_raw is not None else None
    except KeyError as exc:
        fail(f"dataset rows do not fit GRPO: {exc.args[0]}. GRPO needs a prompt column (other columns feed the rewards); "
             "run `tuneforge validate --method grpo` on the data and use its column_map.")
    if len(train_ds) == 0:
        fail("no training prompts; run `tuneforge validate --method grpo` on the data")
    reward_funcs = build_rewards(reward_names, train_ds, max_completion)
    if eval_ds is not None and len(eval_ds) > EVAL_ROWS_MAX:
        eval_ds = eval_ds.select(range(EVAL_ROWS_MAX))
    batch = int(tcfg["per_device_batch_size"])
    emit("status", message=f"{len(train_ds)} prompts; rewards: {', '.join(reward_names)}; {num_gen} completions each")

    emit("status", message="loading model")
    model = load_policy(cfg, precision, on_gpu, end_ids)
    peft_config = None
    if pcfg["kind"] in ("lora", "qlora"):
        peft_config = LoraConfig(r=int(pcfg["r"]), lora_alpha=int(pcfg["alpha"]), lora_dropout=float(pcfg["dropout"]),
                                 target_modules=pcfg["target_modules"], task_type="CAUSAL_LM")

    grad_ckpt = tcfg.get("gradient_checkpointing")
    if grad_ckpt is None:
        grad_ckpt = on_gpu
    save_steps = tcfg.get("save_steps")
    report_to = ["trackio"] if os.environ.get("TUNEFORGE_NO_TRACKIO") != "1" else []
    tr = cfg.get("trackio") or {}
    grpo_args = GRPOConfig(
        output_dir=str(out_dir / "checkpoints"),
        num_train_epochs=float(tcfg["epochs"]),
        max_steps=int(tcfg["max_steps"]) if tcfg.get("max_steps") else -1,
        per_device_train_batch_size=int(tcfg["per_device_batch_size"]),
        per_device_eval_batch_size=num_gen * max(1, -(-batch // num_gen)),  # whole groups of completions
        gradient_accumulation_steps=int(tcfg["gradient_accumulation_steps"]),
        learning_rate=float(tcfg["learning_rate"]),
        lr_scheduler_type=tcfg["lr_scheduler"],
        warmup_steps=float(tcfg["warmup_ratio"]),  # a float in [0, 1) is a ratio of total steps
        weight_decay=float(tcfg["weight_decay"]),
        optim=tcfg.get("optimizer", "adamw_torch"),
        logging_steps=int(tcfg["logging_steps"]),
        save_strategy="steps" if save_steps else "epoch",
        save_steps=int(save_steps) if save_steps else 500,
        save_total_limit=int(tcfg.get("save_total_limit", 2)),
        eval_strategy="steps" if (tcfg.get("eval_steps") and eval_ds is not None) else "no",
        eval_steps=tcfg.get("eval_steps"),
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        gradient_checkpointing=bool(grad_ckpt),
        num_generations=num_gen,
        max_completion_length=max_completion,
        beta=0.0,  # no KL term, no reference model (TRL's default, as in DAPO / Dr. GRPO)
        log_completions=False,
        seed=seed,
        report_to=report_to,
        project=tr.get("project") or "tuneforge",
        run_name=tr.get("run_name") or os.environ.get("TUNEFORGE_JOB_ID"),
        trackio_space_id=tr.get("space_id"),
        include_num_input_tokens_seen="no",  # GRPOTrainer counts prompt + completion tokens itself
        push_to_hub=bool(cfg.get("push_to_hub")),
        hub_model_id=cfg.get("push_to_hub"),
        hub_strategy="every_save",
        hub_private_repo=bool(cfg.get("hub_private", True)),
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=not on_gpu,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=reward_funcs, args=grpo_args, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, peft_config=peft_config, callbacks=[progress_callback()])

    result: dict = {"base_model": cfg["model"], "method": METHOD, "peft": pcfg["kind"], "precision": precision,
                    "device": "cuda" if on_gpu else "cpu", "reward_functions": list(dict.fromkeys(reward_names)),
                    "num_generations": num_gen, "max_completion_length": max_completion, "kl_beta": 0.0,
                    "train_rows": len(train_ds), "eval_rows": len(eval_ds) if eval_ds is not None else 0}
    try:
        from tuneforge import __version__ as tf_version  # present locally; absent in a bare cloud env
    except Exception:  # noqa: BLE001
        tf_version = None
    result["tuneforge_version"] = tf_version
    prompts = list(cfg.get("eval_prompts") or [])
    max_new = int(cfg.get("max_new_tokens", 96))
    if prompts:
        emit("status", message="answering held-out prompts (before)")
        result["samples_before"] = greedy_answers(trainer.model, tokenizer, prompts, cfg.get("system_prompt"), max_new)
    if eval_ds is not None:
        evaluate_into(trainer, result, "before")

    train_out = trainer.train()
    result["train_loss"] = train_out.training_loss
    result["steps"] = trainer.state.global_step
    result["tokens_trained"] = int(getattr(trainer.state, "num_input_tokens_seen", 0) or 0)
    result["train_runtime_seconds"] = train_out.metrics.get("train_runtime")
    if result["train_runtime_seconds"]:
        result["tokens_per_second"] = result["tokens_trained"] / result["train_runtime_seconds"]
    result["log_history"] = [h for h in trainer.state.log_history if "loss" in h][-200:]

    if eval_ds is not None:
        evaluate_into(trainer, result, "after")
    if prompts:
        emit("status", message="answering held-out prompts (after)")
        after = greedy_answers(trainer.model, tokenizer, prompts, cfg.get("system_prompt"), max_new)
        result["samples"] = [{"prompt": p, "before": b, "after": a} for p, b, a in zip(prompts, result.pop("samples_before"), after)]

    emit("status", message="saving")
    if peft_config is not None:
        adapter_dir = out_dir / "adapter"
        trainer.model.save_pretrained(adapter_dir)
        tokenizer.save_pretrained(adapter_dir)
        result["adapter_dir"] = str(adapter_dir)
        if cfg.get("merge"):
            merged = trainer.model.merge_and_unload()
            merged_dir = out_dir / "merged"
            merged.save_pretrained(merged_dir)
            tokenizer.save_pretrained(merged_dir)
            result["merged_dir"] = str(merged_dir)
    else:
        model_dir = out_dir / "model"
        trainer.save_model(str(model_dir))
        tokenizer.save_pretrained(model_dir)
        result["model_dir"] = str(model_dir)

    result["runtime_seconds"] = round(time.time() - t_start, 2)
    result.update(peak_memory())
    write_model_card(out_dir / "README.md", cfg, result)
    if cfg.get("push_to_hub"):
        emit("status", message=f"pushing to {cfg['push_to_hub']}")
        trainer.push_to_hub()
        from huggingface_hub import upload_file

        upload_file(path_or_fileobj=str(out_dir / "README.md"), path_in_repo="README.md", repo_id=cfg["push_to_hub"])
        result["hub_repo"] = cfg["push_to_hub"]
    (out_dir / "result.json").write_text(json.dumps(result, indent=2, default=float), encoding="utf-8")
    # The same summary as an event, for backends that only see the log (cloud jobs).
    emit("result", **{k: v for k, v in result.items() if k != "log_history"})
    emit("status", message="done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
