"""A training run's second half: held-out answers before and after, training, evaluation, saving the
adapter (merged on request) or model, the model card, result.json and the result event, pushing when asked."""

from __future__ import annotations

import json
import time
from importlib import metadata
from pathlib import Path

from _events import emit
from _launch import peak_memory
from _shared import metrics as M


def tuneforge_version() -> str | None:
    """The installed tuneforge's version (read from its metadata, never imported); None in a bare cloud env."""
    try:
        return metadata.version("tuneforge")
    except metadata.PackageNotFoundError:
        return None


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


#: result keys a method's own evaluation writes (`<key>_before` / `<key>_after`) -> the eval table's name
METHOD_METRICS = {"eval_loss": "eval_loss", "eval_reward_accuracy": "preference_accuracy",
                  "eval_accuracy": "preference_accuracy", "reward": "mean_reward"}


def held_out(trainer, tokenizer, cfg: dict, result: dict, when: str, answer: bool) -> None:
    """The eval block: its metrics on the held-out rows with greedy answers, kept in result["eval"][when]."""
    block = cfg.get("eval")
    if not block:
        return
    ev = result.setdefault("eval", {"metrics": [M.metric_label(s) for s in block.get("metrics") or []],
                                    "before": {}, "after": {}})
    if not answer:  # a reward model scores conversations: only its own metrics go in the table
        return
    from _heldout import evaluate_model, load_rows

    if ev.get("skipped"):
        return
    if "_rows" not in ev:
        emit("status", message="loading held-out rows (eval block)")
        try:
            ev["_rows"], ev["source"] = load_rows(block, cfg.get("dataset"))
        except Exception as exc:  # noqa: BLE001 - e.g. a local file a cloud job was not given: train anyway, say so
            ev["skipped"] = f"held-out rows unreadable: {exc}"
            warn(result, f"eval block skipped: {exc}")
            return
    emit("status", message=f"eval block ({when}): {len(ev['_rows'])} held-out rows")
    max_new = int(block.get("max_new_tokens") or cfg.get("max_new_tokens", 96))
    out = evaluate_model(lambda ps: greedy_answers(trainer.model, tokenizer, ps, cfg.get("system_prompt"), max_new),
                         block, ev["_rows"], model=trainer.model, tokenizer=tokenizer, system_prompt=cfg.get("system_prompt"))
    ev[when] = out["scores"] | ev.get(when, {})
    ev["rows"] = len(out["prompts"])
    ev[f"_answers_{when}"] = out["answers"]
    if when == "after":
        ev["samples"] = M.samples(out["prompts"], out["references"],
                                  {"before": ev.pop("_answers_before", []), "after": ev.pop("_answers_after")})
        ev.pop("_rows", None)


def method_metrics_into(result: dict) -> None:
    """Eval loss, preference accuracy or mean reward (the method's own evaluation) into the eval table."""
    ev = result.get("eval")
    if ev is None:
        return
    for key, name in METHOD_METRICS.items():
        for when in ("before", "after"):
            if result.get(f"{key}_{when}") is not None:
                ev.setdefault(when, {})[name] = result[f"{key}_{when}"]
    ev.pop("_rows", None)
    ev.pop("_answers_before", None)


def warn(result: dict, message: str) -> None:
    """A warning the user should see: a status event now, and in the result's `warnings` (jobs status shows them)."""
    result.setdefault("warnings", []).append(message)
    emit("status", message=f"warning: {message}")


def note_dropped_rows(trainer, rows: int, result: dict, max_length) -> None:
    """TRL drops rows that do not fit max_length: count them, and warn."""
    dropped = rows - len(trainer.train_dataset)
    result["rows_dropped_too_long"] = dropped
    if dropped:
        warn(result, f"TRL dropped {dropped} training rows too long for max_length={max_length}")


def note_untrainable_rows(result: dict) -> None:
    """Rows left with no token to train on (no assistant turn, or cut away by max_length) are dropped: say how many."""
    data = result.get("data") or {}
    dropped = int(data.get("no_trainable") or 0)
    if dropped:
        result["rows_dropped_no_trainable"] = dropped
        warn(result, f"{dropped} of {data.get('rows')} training rows had nothing to train on (no assistant tokens "
                     "left within max_length) and were dropped")


def train_and_finish(trainer, tokenizer, peft_config, cfg: dict, out_dir: Path, result: dict, t_start: float, *,
                     evaluate, has_eval: bool, write_card, answer_prompts: bool = True) -> int:
    """Answers and evaluation before, training, evaluation and answers after, then save_and_finish."""
    result["tuneforge_version"] = tuneforge_version()
    note_untrainable_rows(result)
    if answer_prompts:
        sample_answers(trainer, tokenizer, cfg, result, "before")
    elif cfg.get("eval_prompts"):
        emit("status", message="eval_prompts skipped: a reward model scores conversations, it does not answer prompts")
    held_out(trainer, tokenizer, cfg, result, "before", answer_prompts)
    if has_eval:
        evaluate(trainer, result, "before")

    from _guards import guard_callbacks, stop_if_guarded

    guards = guard_callbacks(cfg, t_start)  # the loss watchdog and the budget: save, stop, fail (_guards.py)
    for guard in guards:
        trainer.add_callback(guard)
    train_into(trainer, result, cfg)
    stop_if_guarded(trainer, guards, cfg, out_dir, result)

    if has_eval:
        evaluate(trainer, result, "after")
    if answer_prompts:
        sample_answers(trainer, tokenizer, cfg, result, "after")
    held_out(trainer, tokenizer, cfg, result, "after", answer_prompts)
    method_metrics_into(result)
    return save_and_finish(trainer, tokenizer, peft_config, cfg, out_dir, result, t_start, write_card)


def resume_point(trainer, cfg: dict) -> tuple[str | None, int | None]:
    """The checkpoint folder the config's resume_from_checkpoint names (a cloud run's is downloaded from its
    push target first) and its step; (None, None) for a fresh run. A checkpoint that is not there stops the run."""
    from _events import fail
    from _shared.checkpoints import checkpoint_step, parse_hub_location

    where = cfg.get("resume_from_checkpoint")
    if not where:
        return None, None
    folder, hub = Path(where), parse_hub_location(where)
    if hub is not None:
        from huggingface_hub import snapshot_download

        emit("status", message=f"downloading the checkpoint {where}")
        local = Path(trainer.args.output_dir).parent / "resumed-checkpoint"
        folder = Path(snapshot_download(repo_id=hub[0], allow_patterns=[f"{hub[1]}/*"], local_dir=str(local))) / hub[1]
    step = checkpoint_step(folder)
    if step is None:
        fail(f"resume_from_checkpoint {where} is not a complete checkpoint (trainer_state.json, weights, optimizer)")
    emit("status", message=f"resuming from step {step} ({where})")
    return str(folder), step


def train_into(trainer, result: dict, cfg: dict | None = None) -> None:
    """Train (from the config's checkpoint when it names one: global step, optimizer, scheduler and RNG state
    continue), then record loss, steps, tokens, runtime and the loss history (the checkpoint's part included)."""
    folder, step = resume_point(trainer, cfg or {})
    if step is not None:
        result["resumed_from_step"] = step
        result["resumed_from"] = (cfg or {}).get("resume_from_checkpoint")
    train_out = trainer.train(resume_from_checkpoint=folder)
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
    from _provenance import provenance_lines

    lines += M.markdown_table(result.get("eval") or {})
    lines += provenance_lines(cfg, result)
    path.write_text("\n".join(lines), encoding="utf-8")


def save_and_finish(trainer, tokenizer, peft_config, cfg: dict, out_dir: Path, result: dict, t_start: float,
                    write_card) -> int:
    """Save the adapter (merged on request) or full model, write the card and result.json, push when asked."""
    if not trainer.is_world_process_zero() and (cfg.get("launch") or {}).get("strategy") in (None, "none", "ddp"):
        return 0  # a DDP rank other than 0 holds the same weights: rank 0 saves and reports, once
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
    from _provenance import collect

    result["provenance"] = collect(cfg, result, trainer.model)
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
