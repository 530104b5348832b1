"""The run's guards in the config: the loss watchdog's block and the spending budget's arithmetic.

The template applies both (templates/_guards.py); the hf backend caps a job's timeout at its budget and the
job service cancels an hf job whose cost so far passed it (jobs/service.py), both with BUDGET_GRACE_SECONDS
so that the template's own stop (a checkpoint saved and pushed first) comes before theirs.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: what a budgeted hf job may run past its budget's hours: the template's stop saves and pushes a checkpoint
#: in that time; the service's timeout and the refresh-side cancel act only after it
BUDGET_GRACE_SECONDS = 600
#: the environment variable a paid backend states its price per hour in, for the template's budget guard
PRICE_ENV = "TUNEFORGE_PRICE_PER_HOUR"


class WatchdogSpec(BaseModel):
    """The loss watchdog: stop (after a checkpoint) a run whose loss is NaN/inf, or above `factor` times its
    start for `patience` logged steps in a row. GRPO (a loss near 0, maybe negative) gets only the NaN/inf rule."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = Field(default=True, description="false: never stop a run for its loss (CLI: --no-watchdog).")
    factor: float = Field(default=4.0, gt=1, le=1000, description="A loss above factor x its start is exploding.")
    patience: int = Field(default=3, ge=1, le=10000, description="Logged steps in a row above it before the stop.")
    warmup: int = Field(default=5, ge=1, le=10000, description="The start the factor applies to: the first logged "
                        "loss, then the mean of the first `warmup` of them.")


def budget_seconds(max_cost_usd: float | None, price_per_hour: float | None) -> float | None:
    """How long a budget lasts at a price; None when either is unknown (no limit)."""
    if not max_cost_usd or not price_per_hour or price_per_hour <= 0:
        return None
    return max_cost_usd / price_per_hour * 3600


def over_budget(cost_so_far_usd: float | None, max_cost_usd: float | None, price_per_hour: float | None) -> bool:
    """Whether a running job's cost passed its budget by more than the grace (the template stops it at the budget)."""
    if cost_so_far_usd is None or not max_cost_usd or not price_per_hour:
        return False
    return cost_so_far_usd >= max_cost_usd + BUDGET_GRACE_SECONDS / 3600 * price_per_hour
