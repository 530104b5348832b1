"""Guards on a training run: the loss watchdog and the spending budget, as TrainerCallbacks.

Both stop training the same way: they ask the Trainer to save a checkpoint at this step and then to stop
(control.should_save, then control.should_training_stop: the Trainer saves before it leaves its loop),
and `stop_if_guarded` ends the run as an error whose message starts with the guard's kind:

- the watchdog ("divergence: ..."): a logged training loss that is NaN or infinite, or above `factor` times
  its start (the first logged loss, then the mean of the first `warmup`) for `patience` logged steps in a row. GRPO's loss
  sits near 0 and may be negative, so there only the NaN/inf rule applies; for every other method the ratio
  rule is skipped when the start is below MIN_START (a start near 0 makes any noise look like a blow-up).
  Defaults (x4 for 3 logged steps after 5) never fire on a healthy run: SFT, DPO, KTO and reward losses
  fall or wobble by far less.
- the budget ("budget: ..."): the config's max_cost_usd against the price per hour the backend states in
  TUNEFORGE_PRICE_PER_HOUR (a non-secret environment variable the hf backend sets): training stops once the
  time since the template started times that price reaches the budget. No price (the local backend sets
  none: this machine is free) or no max_cost_usd: no budget guard.

The rules themselves (LossWatch, BudgetClock) are plain classes, testable without transformers. With
several processes the guards' decisions are agreed (any process stopping stops them all), so no rank is
left waiting in a collective. Imports only the standard library at import time.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from _events import emit, fail

PRICE_ENV = "TUNEFORGE_PRICE_PER_HOUR"
#: the watchdog block's defaults (config/guards.py WatchdogSpec holds the same)
WATCHDOG_DEFAULTS = {"enabled": True, "factor": 4.0, "patience": 3, "warmup": 5}
#: methods whose loss may be ~0 or negative: only NaN/inf stops them
NAN_ONLY_METHODS = {"grpo"}
#: a starting loss below this is too close to 0 for a ratio to mean anything
MIN_START = 0.01


def number(value) -> float | str:
    """A loss for JSON: the float, or its name when it is not finite ("nan", "inf")."""
    return float(value) if math.isfinite(value) else str(float(value))


class LossWatch:
    """The watchdog's rules over the logged losses, one observation at a time."""

    def __init__(self, factor: float = 4.0, patience: int = 3, warmup: int = 5, ratio: bool = True):
        self.factor, self.patience, self.warmup, self.ratio = float(factor), int(patience), int(warmup), ratio
        self.start_losses: list[float] = []
        self.over = 0

    @property
    def start(self) -> float | None:
        """The first logged loss until `warmup` of them are in, then their mean (a blow-up within the first
        losses is measured against the first one, later ones against a start one noisy batch cannot set)."""
        if not self.start_losses:
            return None
        if len(self.start_losses) < self.warmup:
            return self.start_losses[0]
        return sum(self.start_losses) / len(self.start_losses)

    def started(self) -> str:
        return f"started at {self.start:.4g}" if self.start is not None else "no finite loss before it"

    def observe(self, step: int, loss) -> dict | None:
        """None while healthy; {"kind", "step", "loss", "start_loss", "detail"} when the run must stop."""
        if loss is None:
            return None
        loss = float(loss)
        if not math.isfinite(loss):
            return self.verdict(step, loss, self.start, f"loss {loss} at step {step} ({self.started()})")
        start = self.start
        if len(self.start_losses) < self.warmup:
            self.start_losses.append(loss)
        if not self.ratio or start is None or start < MIN_START:
            return None
        self.over = self.over + 1 if loss > self.factor * start else 0
        if self.over >= self.patience:
            return self.verdict(step, loss, start, f"loss {loss:.4g} at step {step}, above {self.factor:g}x its start "
                                            f"({start:.4g}) for {self.over} logged steps in a row")
        return None

    def verdict(self, step: int, loss: float, start: float | None, detail: str) -> dict:
        return {"kind": "divergence", "step": step, "loss": number(loss),
                "start_loss": None if start is None else round(start, 6), "detail": detail,
                "fix": "Lower the learning rate (x0.1): " + retry_hint()}


class BudgetClock:
    """Cost so far (time since `t0` x price per hour) against a budget in dollars."""

    def __init__(self, max_cost_usd: float, price_per_hour: float, t0: float):
        self.max_cost_usd, self.price_per_hour, self.t0 = float(max_cost_usd), float(price_per_hour), t0

    def cost(self, now: float | None = None) -> float:
        return ((now or time.time()) - self.t0) / 3600 * self.price_per_hour

    def check(self, step: int, now: float | None = None) -> dict | None:
        cost = self.cost(now)
        if cost < self.max_cost_usd:
            return None
        hours = cost / self.price_per_hour
        return {"kind": "budget", "step": step, "cost_usd": round(cost, 4), "max_cost_usd": self.max_cost_usd,
                "price_per_hour": self.price_per_hour,
                "detail": f"stopped at step {step}: ${cost:.2f} spent ({hours:.2f} h at ${self.price_per_hour:.2f}/h) "
                          f"reached the max_cost_usd budget of ${self.max_cost_usd:.2f}",
                "fix": "Raise the budget (--max-cost-usd), train fewer steps (--max-steps) or on a cheaper flavor; "
                       "`tuneforge jobs resume " + job_ref() + "` continues from the checkpoint."}


def job_ref() -> str:
    return os.environ.get("TUNEFORGE_JOB_ID") or "JOB_ID"


def retry_hint() -> str:
    return f"`tuneforge jobs retry {job_ref()} --apply-fix`"


def agreed(flag: bool, args) -> bool:
    """Whether any process says stop (one process: its own say)."""
    if int(getattr(args, "world_size", 1) or 1) <= 1:
        return flag
    import torch
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=args.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def guard_callbacks(cfg: dict, t_start: float) -> list:
    """The watchdog (unless watchdog.enabled is false) and the budget guard (with max_cost_usd and a price)."""
    from transformers import TrainerCallback

    class Guard(TrainerCallback):
        stopped: dict | None = None

        def stop(self, control, verdict: dict) -> None:
            self.stopped = verdict
            control.should_save = True  # saved in this step, before the Trainer leaves its loop
            control.should_training_stop = True

    class Watchdog(Guard):
        def __init__(self, watch: LossWatch):
            self.watch = watch

        def on_log(self, args, state, control, logs=None, **kw):
            if self.stopped or not logs or "loss" not in logs:  # evaluations and the end-of-training summary
                return
            verdict = self.watch.observe(state.global_step, logs["loss"])
            if agreed(verdict is not None, args):
                self.stop(control, verdict or {"kind": "divergence", "step": state.global_step,
                                               "detail": f"another process saw the loss diverge at step {state.global_step}",
                                               "fix": "Lower the learning rate (x0.1): " + retry_hint()})

    class Budget(Guard):
        def __init__(self, clock: BudgetClock):
            self.clock = clock

        def on_step_end(self, args, state, control, **kw):
            if self.stopped:
                return
            verdict = self.clock.check(state.global_step)
            if agreed(verdict is not None, args):
                self.stop(control, verdict or {"kind": "budget", "step": state.global_step,
                                               "detail": f"another process reached the budget at step {state.global_step}",
                                               "fix": "Raise the budget (--max-cost-usd) or train fewer steps."})

    guards: list = []
    wd = {**WATCHDOG_DEFAULTS, **(cfg.get("watchdog") or {})}
    if wd["enabled"]:
        guards.append(Watchdog(LossWatch(wd["factor"], wd["patience"], wd["warmup"],
                                         ratio=cfg.get("method", "sft") not in NAN_ONLY_METHODS)))
    price = price_per_hour()
    if cfg.get("max_cost_usd") and price:
        clock = BudgetClock(cfg["max_cost_usd"], price, t_start)
        emit("status", message=f"budget ${clock.max_cost_usd:.2f} at ${price:.2f}/h: training stops after "
                               f"{clock.max_cost_usd / price * 60:.1f} min")
        guards.append(Budget(clock))
    return guards


def price_per_hour() -> float | None:
    """The backend's price per hour (TUNEFORGE_PRICE_PER_HOUR); None when unset, unreadable or not positive."""
    try:
        price = float(os.environ.get(PRICE_ENV) or 0)
    except ValueError:
        return None
    return price if price > 0 and math.isfinite(price) else None


def stop_if_guarded(trainer, guards: list, cfg: dict, out_dir: Path, result: dict) -> None:
    """After trainer.train(): when a guard stopped it, record why (result.json) and fail with its message."""
    verdict = next((g.stopped for g in guards if g.stopped), None)
    if verdict is None:
        return
    checkpoint = Path(trainer.args.output_dir) / f"checkpoint-{trainer.state.global_step}"
    saved = f"checkpoint saved at {checkpoint}" if checkpoint.is_dir() else "no checkpoint could be saved"
    if checkpoint.is_dir() and cfg.get("push_to_hub") and trainer.args.push_to_hub:
        saved += f" and pushed to {cfg['push_to_hub']}"  # train() waits for the checkpoint's push
    result.update(steps=trainer.state.global_step, stopped={**{k: v for k, v in verdict.items() if k != "fix"},
                                                            "checkpoint": str(checkpoint) if checkpoint.is_dir() else None})
    result["log_history"] = [h for h in trainer.state.log_history if "loss" in h][-200:]
    if int(os.environ.get("RANK", "0")) == 0:
        (out_dir / "result.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    fail(f"{verdict['kind']}: {verdict['detail']}; {saved}. {verdict['fix']}")
