"""What every tuneforge training template shares: events, config, data loading, device, progress,
samples, model card and the result/saving tail.

It travels next to the template (the job folder locally, /data on Hugging Face Jobs), which imports it
with `from _common import ...`: the script's own folder is on sys.path. Only the standard library is
imported here at import time; torch, transformers, trl, peft and datasets are imported inside the
functions that need them, so a bad config fails before the slow imports.
"""

from __future__ import annotations

import argparse
import json
import os
import random
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
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")


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


def config_from_args(argv: list[str] | None, doc: str) -> dict:
    """`--config PATH` from the command line, read and checked."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="tuneforge run config (JSON or YAML)")
    args = parser.parse_args(argv)
    return load_config(args.config)


def maybe_relaunch_distributed(cfg: dict, argv: list[str] | None, script: str) -> None:
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
    cmd += [os.path.abspath(script), *(sys.argv[1:] if argv is None else argv)]
    emit("status", message=f"launching {gpus} processes ({launch.get('strategy') or 'ddp'})")
    os.execv(sys.executable, cmd)


def begin(argv: list[str] | None, doc: str, script: str, check=None) -> tuple[dict, float]:
    """The run config (checked by check(cfg) before anything slow), relaunched per GPU when asked: (cfg, start time)."""
    cfg = config_from_args(argv, doc)
    if check is not None:
        check(cfg)
    maybe_relaunch_distributed(cfg, argv, script)
    t_start = time.time()
    emit("status", message="loading libraries")
    return cfg, t_start


def seed_everything(cfg: dict) -> int:
    import torch

    seed = int(cfg.get("seed", 42))
    random.seed(seed)
    torch.manual_seed(seed)
    return seed


def start_run(cfg: dict) -> tuple[int, Path, str, bool]:
    """Seed, the output folder (created), the precision and whether a GPU trains: (seed, out_dir, precision, on_gpu)."""
    import torch

    seed = seed_everything(cfg)
    out_dir = Path(cfg["output_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    return seed, out_dir, choose_precision(cfg["train"].get("precision", "auto")), torch.cuda.is_available()


def tuneforge_version() -> str | None:
    try:
        from tuneforge import __version__  # present locally; absent in a bare cloud env
    except Exception:  # noqa: BLE001
        return None
    return __version__


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


def load_splits(dcfg: dict, seed: int, map_columns: bool = True):
    """(train, eval or None); eval from eval_path, eval_split or eval_fraction. With map_columns, column_map
    is applied first (SFT applies it row by row instead)."""
    column_map = (dcfg.get("column_map") or {}) if map_columns else {}
    train = apply_column_map(load_rows(dcfg["path"], dcfg.get("split") or "train", dcfg.get("subset")), column_map)
    evals = None
    if dcfg.get("eval_path"):
        evals = load_rows(dcfg["eval_path"], dcfg.get("split") or "train", dcfg.get("subset"))
    elif dcfg.get("eval_split"):
        evals = load_rows(dcfg["path"], dcfg["eval_split"], dcfg.get("subset"))
    elif float(dcfg.get("eval_fraction") or 0) > 0 and len(train) >= 10:
        parts = train.train_test_split(test_size=float(dcfg["eval_fraction"]), seed=seed)
        return parts["train"], parts["test"]
    if evals is not None:
        evals = apply_column_map(evals, column_map) if len(evals) else None
    return train, evals


def map_splits(fn, train, evals, tokenizer, cfg: dict, desc: str, remove_columns: bool = True):
    """fn(row, chat, system_prompt) over the train and eval rows; chat: the model has a chat template."""
    kwargs = {"fn_kwargs": {"chat": bool(getattr(tokenizer, "chat_template", None)), "system_prompt": cfg.get("system_prompt")},
              "desc": desc}
    train_ds = train.map(fn, remove_columns=train.column_names if remove_columns else None, **kwargs)
    eval_ds = None
    if evals is not None:
        eval_ds = evals.map(fn, remove_columns=evals.column_names if remove_columns else None, **kwargs)
    return train_ds, eval_ds


def load_method_rows(fn, cfg: dict, tokenizer, seed: int, *, method: str, what: str, needs: str, desc: str,
                noun: str = "rows", remove_columns: bool = True):
    """load_splits, then fn over each row (map_splits); rows that do not fit the method stop the run with what it needs."""
    emit("status", message="loading data")
    train_raw, eval_raw = load_splits(cfg["dataset"], seed)
    try:
        train_ds, eval_ds = map_splits(fn, train_raw, eval_raw, tokenizer, cfg, desc, remove_columns)
    except KeyError as exc:
        fail(f"dataset rows do not fit {what}: {exc.args[0]}. {needs}; "
             f"run `tuneforge validate --method {method}` on the data and use its column_map.")
    if len(train_ds) == 0:
        fail(f"no training {noun}; run `tuneforge validate --method {method}` on the data")
    return train_ds, eval_ds


def norm_messages(msgs: list) -> list[dict]:
    """Chat turns as {role, content}; ShareGPT's from/value and role aliases (human, gpt) accepted."""
    out = []
    for m in msgs:
        role = m.get("role") or m.get("from")
        out.append({"role": ROLE_ALIASES.get(str(role), str(role)), "content": str(m.get("content") or m.get("value") or "")})
    return out


def to_preference(row: dict, chat: bool, system_prompt: str | None) -> dict:
    """One preference row -> prompt/chosen/rejected as TRL reads them (prompt absent: implicit; DPO and KTO
    split off the shared prefix, a reward model scores chosen/rejected whole).

    With an explicit prompt, strings become chat turns when the model has a chat template (or when another
    field already holds turns), so the pairs are trained in the format the model answers in."""
    for key in ("chosen", "rejected"):
        if row.get(key) in (None, "", []):
            raise KeyError(f"a row has no {key!r} (columns: {sorted(row)})")
    out = {k: (norm_messages(v) if isinstance(v, list) else v) for k, v in row.items()
           if k in ("prompt", "chosen", "rejected")}
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    if "prompt" in out:
        if chat or any(isinstance(v, list) for v in out.values()):
            for key, role in (("prompt", "user"), ("chosen", "assistant"), ("rejected", "assistant")):
                if not isinstance(out[key], list):
                    out[key] = [{"role": role, "content": str(out[key] or "")}]
            if not any(m["role"] == "system" for m in out["prompt"]):
                out["prompt"] = system + out["prompt"]
        else:
            out["prompt"] = str(out["prompt"] or "")
    elif isinstance(out["chosen"], list) and isinstance(out["rejected"], list):
        for key in ("chosen", "rejected"):  # the same system turn on both sides stays in the shared prompt
            if not any(m["role"] == "system" for m in out[key]):
                out[key] = system + out[key]
    return out


# ---- device and model -----------------------------------------------------------------------------
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


def load_tokenizer(cfg: dict):
    """The model's tokenizer, its pad token set (eos when it has none)."""
    from transformers import AutoTokenizer

    emit("status", message="loading tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(cfg["model"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def end_of_turn_ids(tokenizer) -> set[int]:
    """Token ids of the chat templates' end-of-turn markers this tokenizer knows."""
    end_ids = set()
    for tok in END_OF_TURN_TOKENS:
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            end_ids.add(tid)
    return end_ids


def model_kwargs(cfg: dict, precision: str, on_gpu: bool) -> dict:
    """from_pretrained keyword arguments: dtype, 4-bit quantization for QLoRA, this process's GPU."""
    import torch

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
    return kwargs


def load_policy(cfg: dict, precision: str, on_gpu: bool, end_ids: set[int]):
    """The causal LM to train; generation stops at the chat template's end-of-turn tokens too."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(cfg["model"], **model_kwargs(cfg, precision, on_gpu))
    if model.generation_config is not None and end_ids:
        eos = model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        model.generation_config.eos_token_id = sorted(set(eos) | end_ids)
    return model


def lora_config(pcfg: dict, task_type: str = "CAUSAL_LM"):
    """A peft LoraConfig for lora/qlora, None for a full fine-tune."""
    if pcfg["kind"] not in ("lora", "qlora"):
        return None
    from peft import LoraConfig

    return LoraConfig(r=int(pcfg["r"]), lora_alpha=int(pcfg["alpha"]), lora_dropout=float(pcfg["dropout"]),
                      target_modules=pcfg["target_modules"], task_type=task_type)


def trainer_args(cfg: dict, out_dir: Path, precision: str, on_gpu: bool, has_eval: bool, seed: int) -> dict:
    """The TrainingArguments every method sets the same way; each template adds its own and builds its *Config."""
    tcfg = cfg["train"]
    grad_ckpt = tcfg.get("gradient_checkpointing")
    if grad_ckpt is None:
        grad_ckpt = on_gpu
    save_steps = tcfg.get("save_steps")
    tr = cfg.get("trackio") or {}
    return dict(
        output_dir=str(out_dir / "checkpoints"),
        num_train_epochs=float(tcfg["epochs"]),
        max_steps=int(tcfg["max_steps"]) if tcfg.get("max_steps") else -1,
        per_device_train_batch_size=int(tcfg["per_device_batch_size"]),
        per_device_eval_batch_size=int(tcfg["per_device_batch_size"]),
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
        eval_strategy="steps" if (tcfg.get("eval_steps") and has_eval) else "no",
        eval_steps=tcfg.get("eval_steps"),
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        gradient_checkpointing=bool(grad_ckpt),
        seed=seed,
        report_to=["trackio"] if os.environ.get("TUNEFORGE_NO_TRACKIO") != "1" else [],
        project=tr.get("project") or "tuneforge",
        run_name=tr.get("run_name") or os.environ.get("TUNEFORGE_JOB_ID"),
        trackio_space_id=tr.get("space_id"),
        include_num_input_tokens_seen="non_padding",
        push_to_hub=bool(cfg.get("push_to_hub")),
        hub_model_id=cfg.get("push_to_hub"),
        hub_strategy="every_save",
        hub_private_repo=bool(cfg.get("hub_private", True)),
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=not on_gpu,
    )


# ---- progress -------------------------------------------------------------------------------------
def metric_fields(logs: dict, metrics: dict, prefix: str = "") -> dict:
    """{event field: logs[prefix + TRL key]} for a method's METRICS."""
    return {field: logs.get(prefix + key) for key, field in metrics.items()}


def progress_callback(step_fields=None, eval_fields=None, eval_key: str = "eval_loss", eval_before_training: bool = True):
    """A TrainerCallback printing one structured event per logging step (step, total, loss, lr, tokens/s, eta,
    plus step_fields(logs)) and one per evaluation (eval_fields(logs); by default eval_loss)."""
    from transformers import TrainerCallback

    step_fields = step_fields or (lambda logs: {})
    eval_fields = eval_fields or (lambda logs: {"eval_loss": logs["eval_loss"]})

    class ProgressEvents(TrainerCallback):
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
            if eval_key in logs and "loss" not in logs:  # an evaluation: its own event, progress unchanged
                if self.t0 is not None or eval_before_training:
                    emit("eval", step=state.global_step, **eval_fields(logs))
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
                 **step_fields(logs))

    return ProgressEvents()


def metrics_callback(metrics: dict):
    """progress_callback whose events carry a method's METRICS (TRL log key -> event field), eval_loss on evaluations."""
    return progress_callback(step_fields=lambda logs: metric_fields(logs, metrics),
                             eval_fields=lambda logs: {"eval_loss": logs["eval_loss"], **metric_fields(logs, metrics, "eval_")})


# ---- samples, card, result ------------------------------------------------------------------------
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


def sample_answers(trainer, tokenizer, cfg: dict, result: dict, when: str) -> None:
    """Greedy answers to eval_prompts; "before" keeps them aside, "after" pairs them into result["samples"]."""
    prompts = list(cfg.get("eval_prompts") or [])
    if not prompts:
        return
    emit("status", message=f"answering held-out prompts ({when})")
    answers = greedy_answers(trainer.model, tokenizer, prompts, cfg.get("system_prompt"), int(cfg.get("max_new_tokens", 96)))
    if when == "before":
        result["samples_before"] = answers
    else:
        result["samples"] = [{"prompt": p, "before": b, "after": a} for p, b, a in zip(prompts, result.pop("samples_before"), answers)]


def note_dropped_rows(trainer, rows: int, result: dict, max_length) -> None:
    """TRL drops rows that do not fit max_length: count them, and warn."""
    dropped = rows - len(trainer.train_dataset)
    result["rows_dropped_too_long"] = dropped
    if dropped:
        emit("status", message=f"warning: TRL dropped {dropped} training rows too long for max_length={max_length}")


def train_and_finish(trainer, tokenizer, peft_config, cfg: dict, out_dir: Path, result: dict, t_start: float, *,
                     evaluate, has_eval: bool, write_card, answer_prompts: bool = True) -> int:
    """Answers and evaluation before, training, evaluation and answers after, then save_and_finish."""
    result["tuneforge_version"] = tuneforge_version()
    if answer_prompts:
        sample_answers(trainer, tokenizer, cfg, result, "before")
    elif cfg.get("eval_prompts"):
        emit("status", message="eval_prompts skipped: a reward model scores conversations, it does not answer prompts")
    if has_eval:
        evaluate(trainer, result, "before")

    train_into(trainer, result)

    if has_eval:
        evaluate(trainer, result, "after")
    if answer_prompts:
        sample_answers(trainer, tokenizer, cfg, result, "after")
    return save_and_finish(trainer, tokenizer, peft_config, cfg, out_dir, result, t_start, write_card)


def train_into(trainer, result: dict) -> None:
    """Train, then record loss, steps, tokens, runtime and the loss history."""
    train_out = trainer.train()
    result["train_loss"] = train_out.training_loss
    result["steps"] = trainer.state.global_step
    result["tokens_trained"] = int(getattr(trainer.state, "num_input_tokens_seen", 0) or 0)
    result["train_runtime_seconds"] = train_out.metrics.get("train_runtime")
    if result["train_runtime_seconds"]:
        result["tokens_per_second"] = result["tokens_trained"] / result["train_runtime_seconds"]
    result["log_history"] = [h for h in trainer.state.log_history if "loss" in h][-200:]


def before_after(label: str, result: dict, key: str) -> str:
    """A model-card row: `| <label> before -> after | <key>_before -> <key>_after |`."""
    return f"| {label} before -> after | {result.get(key + '_before')} -> {result.get(key + '_after')} |"


def write_model_card(path: Path, cfg: dict, result: dict, *, tag: str, intro: str, method_rows: list[str],
                     metric_rows: list[str]) -> None:
    lines = [
        "---", f"base_model: {cfg['model']}", "library_name: peft" if cfg["peft"]["kind"] != "none" else "library_name: transformers",
        f"tags: [tuneforge, trl, {tag}]", "---", "",
        f"# {cfg.get('push_to_hub') or Path(cfg['output_dir']).name}", "",
        intro, "",
        "| | |", "|---|---|",
        f"| dataset | `{cfg['dataset']['path']}` |",
        *method_rows,
        f"| learning rate | {cfg['train']['learning_rate']} |",
        f"| epochs / max steps | {cfg['train']['epochs']} / {cfg['train'].get('max_steps')} |",
        f"| max length | {cfg['max_length']} |",
        *metric_rows,
        f"| train loss | {result.get('train_loss')} |",
        f"| tokens trained | {result.get('tokens_trained')} |",
        f"| runtime | {result.get('runtime_seconds')} s |", "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def save_and_finish(trainer, tokenizer, peft_config, cfg: dict, out_dir: Path, result: dict, t_start: float,
                    write_card) -> int:
    """Save the adapter (merged on request) or full model, write the card and result.json, push when asked."""
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
    write_card(out_dir / "README.md", cfg, result)
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
