"""What every method's trainer shares: the TrainingArguments set the same way, and the progress callbacks
that print one structured event per logging step and per evaluation."""

from __future__ import annotations

import os
import time
from pathlib import Path

from _events import emit
from _shared.checkpoints import CHECKPOINTS_DIR


def warmup_steps(ratio: float, max_steps) -> float | int:
    """Warmup as TrainingArguments takes it. A ratio (a float in [0, 1)) is rounded up to whole steps by
    transformers, so 1 step of 1 would be all warmup and train at learning rate 0; with max_steps known, the
    steps are counted here, rounded down: a run of N steps warms up for at most N - 1 of them, and its last
    step always has a learning rate above 0."""
    if max_steps:
        return int(ratio * int(max_steps))
    return ratio


def trainer_args(cfg: dict, out_dir: Path, precision: str, on_gpu: bool, has_eval: bool, seed: int,
                 speed: dict | None = None) -> dict:
    """The TrainingArguments every method sets the same way; each template adds its own and builds its *Config.
    speed: the run's throughput decisions (templates/_speed.py choose), where the template makes them."""
    tcfg = cfg["train"]
    speed = speed or {}
    grad_ckpt = speed.get("gradient_checkpointing", tcfg.get("gradient_checkpointing"))
    if grad_ckpt is None:
        grad_ckpt = on_gpu
    save_steps = tcfg.get("save_steps")
    tr = cfg.get("trackio") or {}
    # group_by_length only when chosen: a method's own config keeps its sampler otherwise (KTO's is sequential)
    sampling = {"train_sampling_strategy": "group_by_length"} if speed.get("group_by_length") else {}
    return dict(
        **sampling,
        output_dir=str(out_dir / CHECKPOINTS_DIR),
        num_train_epochs=float(tcfg["epochs"]),
        max_steps=int(tcfg["max_steps"]) if tcfg.get("max_steps") else -1,
        per_device_train_batch_size=int(tcfg["per_device_batch_size"]),
        per_device_eval_batch_size=int(tcfg["per_device_batch_size"]),
        gradient_accumulation_steps=int(tcfg["gradient_accumulation_steps"]),
        learning_rate=float(tcfg["learning_rate"]),
        lr_scheduler_type=tcfg["lr_scheduler"],
        warmup_steps=warmup_steps(float(tcfg["warmup_ratio"]), tcfg.get("max_steps")),
        weight_decay=float(tcfg["weight_decay"]),
        optim=speed.get("optimizer") or tcfg.get("optimizer", "adamw_torch"),
        logging_steps=int(tcfg["logging_steps"]),
        logging_nan_inf_filter=False,  # a NaN/inf loss is logged as it is, for the watchdog (_guards.py) to see
        save_strategy="steps",  # save_steps None: every 10% of the steps, so a stopped run can resume (jobs resume)
        save_steps=int(save_steps) if save_steps else 0.1,
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
        # padding-free batches hold no padding (and a pad id that is also eos would be miscounted as padding)
        include_num_input_tokens_seen="all" if speed.get("padding_free") else "non_padding",
        push_to_hub=bool(cfg.get("push_to_hub")),
        hub_model_id=cfg.get("push_to_hub"),
        hub_strategy="checkpoint",  # every save also pushes `last-checkpoint` (optimizer included): a cloud run resumes from it
        hub_private_repo=bool(cfg.get("hub_private", True)),
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=not on_gpu,
    )


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
            self.step_lr = None

        def on_step_begin(self, args, state, control, optimizer=None, **kw):
            # the rate this step trains at (the logged one is the scheduler's next, 0 after a last cosine step)
            if optimizer is not None and optimizer.param_groups:
                self.step_lr = float(optimizer.param_groups[0]["lr"])

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = self.last_t = time.time()
            self.step0 = state.global_step  # above 0 when resumed from a checkpoint
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
            done = step - getattr(self, "step0", 0)
            eta = elapsed / done * (total - step) if done > 0 else None
            emit("progress", step=step, total_steps=total, epoch=round(state.epoch or 0.0, 4), loss=logs.get("loss"),
                 learning_rate=self.step_lr if self.step_lr is not None else logs.get("learning_rate"), tokens_per_second=tps, eta_seconds=eta, time=now,
                 **step_fields(logs))

    return ProgressEvents()


def metrics_callback(metrics: dict):
    """progress_callback whose events carry a method's METRICS (TRL log key -> event field), eval_loss on evaluations."""
    return progress_callback(step_fields=lambda logs: metric_fields(logs, metrics),
                             eval_fields=lambda logs: {"eval_loss": logs["eval_loss"], **metric_fields(logs, metrics, "eval_")})


MIN_SAVE_INTERVAL_S = 120.0  # default saves (every 10% of the steps) are skipped within this long of the last one


def save_throttle_callback(cfg: dict, min_interval_s: float = MIN_SAVE_INTERVAL_S):
    """With save_steps unset (every 10% of the steps), skip a scheduled checkpoint that comes within
    min_interval_s of the previous one (or of the start), except at the last step: a short run does not spend
    its time writing adapters and optimizer states, and a stopped run loses at most max(10% of the steps,
    min_interval_s) of work. None when the config names save_steps (kept exactly)."""
    if cfg["train"].get("save_steps"):
        return None
    from transformers import TrainerCallback

    class SaveThrottle(TrainerCallback):
        def __init__(self):
            self.last = None

        def on_train_begin(self, args, state, control, **kw):
            self.last = time.time()

        def on_step_end(self, args, state, control, **kw):
            if not control.should_save or self.last is None:
                return
            if state.global_step < state.max_steps and time.time() - self.last < min_interval_s:
                control.should_save = False
            else:
                self.last = time.time()

    return SaveThrottle()
