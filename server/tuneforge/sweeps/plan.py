"""A sweep's plan: each trial's config (base + its parameters), its estimate, the totals, and the budget.

Every trial is resolved as `tuneforge plan` would resolve it (actions/resolve.py), so a trial's estimate is
the one its job records. Over max_cost_usd the sweep is refused before anything is submitted.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ..actions.resolve import resolve_run
from ..config import RunConfig
from ..config.overrides import merge_config
from ..errors import ConfigError
from ..records.sweeps import SweepBudget, SweepMetric
from .space import expand
from .spec import SweepFile


class TrialPlan(BaseModel):
    index: int
    params: dict[str, Any]
    flavor: str | None = None
    steps: int | None = None
    estimated_hours: float | None = None
    estimated_cost_usd: float | None = None


class SweepPlan(BaseModel):
    """What `sweep run` shows before it submits: the trials, per-trial and total cost, and the budget."""

    name: str | None = None
    backend: str
    flavor: str | None = None
    metric: SweepMetric
    budget: SweepBudget
    space_size: int = Field(description="Combinations (grid) or draws (random) in the space.")
    trial_count: int = Field(description="Trials that will run: the space, capped by budget.max_trials.")
    trials: list[TrialPlan]
    per_trial_cost_usd: float | None = Field(default=None, description="The dearest trial's estimate.")
    total_cost_usd: float | None = None
    within_budget: bool = True
    paid: bool = Field(description="Trials are billed (Hugging Face Jobs): the user must agree once.")
    warnings: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


def trial_overrides(params: dict[str, Any], base: dict[str, Any], *, sweep_id: str, index: int,
                    backend: str) -> dict[str, Any]:
    """The trial's parameters, plus one Trackio project for the whole sweep (the transformers callback passes no
    group) and a run per trial; a cloud trial pushes to its own repo (base repo + sweep + trial)."""
    over = {**params, "trackio.project": sweep_id, "trackio.run_name": f"{sweep_id}-t{index}"}
    repo = base.get("push_to_hub")
    if backend == "hf" and isinstance(repo, str) and repo and "push_to_hub" not in params:
        over["push_to_hub"] = f"{repo}-{sweep_id[-6:]}-t{index}"
    return over


def trial_config(base: dict[str, Any], params: dict[str, Any], *, sweep_id: str, index: int, backend: str,
                 source: str) -> RunConfig:
    try:
        return merge_config(base, overrides=trial_overrides(params, base, sweep_id=sweep_id, index=index,
                                                           backend=backend),
                            source=f"{source}, trial {index}", required={"model": "base.model", "dataset": "base.dataset"},
                            missing_fix="Give base.model and base.dataset in the sweep file (or its base config).")
    except ConfigError as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
        raise ConfigError(f"Trial {index} ({shown}) is not a valid run: {exc.message}", exc.fix,
                          code="sweep.invalid_trial", details={"trial": index, "params": params}) from None


def plan_sweep(sweep: SweepFile, base: dict[str, Any], *, source: str, sweep_id: str = "sw-plan") -> SweepPlan:
    space = expand(sweep.space)
    chosen = space[: sweep.budget.max_trials] if sweep.budget.max_trials else space
    flavor = sweep.flavor or (sweep.budget.flavors[0] if sweep.budget.flavors and sweep.backend == "hf" else None)
    if sweep.backend == "hf" and sweep.flavor and sweep.budget.flavors and sweep.flavor not in sweep.budget.flavors:
        raise ConfigError(f"flavor {sweep.flavor!r} is not in budget.flavors ({', '.join(sweep.budget.flavors)}).",
                          "Pick one of budget.flavors, or add it there.", code="sweep.flavor_not_allowed")
    warnings: list[str] = []
    notes: list[str] = []
    trials = []
    for index, params in enumerate(chosen):
        config = trial_config(base, params, sweep_id=sweep_id, index=index, backend=sweep.backend, source=source)
        resolved = resolve_run(config, backend=sweep.backend, flavor=flavor, submit=False)
        plan = resolved.plan
        trial_flavor = resolved.flavor if sweep.backend == "hf" else None
        if sweep.backend == "hf" and sweep.budget.flavors and trial_flavor not in sweep.budget.flavors:
            raise ConfigError(f"Trial {index} would run on {trial_flavor!r}, which is not in budget.flavors.",
                              "Set `flavor:` in the sweep file to one of budget.flavors.", code="sweep.flavor_not_allowed")
        for w in resolved.warnings:
            if w not in warnings:
                warnings.append(w)
        for n in (plan.notes if plan else []):
            if n.startswith("Past runs") and n not in notes:
                notes.append(n)
        cost = 0.0 if sweep.backend == "local" else (plan.cost_usd if plan else None)
        trials.append(TrialPlan(index=index, params=params, flavor=trial_flavor, steps=plan.steps if plan else None,
                                estimated_hours=plan.hours if plan else None, estimated_cost_usd=cost))
    costs = [t.estimated_cost_usd for t in trials]
    known = [c for c in costs if c is not None]
    total = round(sum(known), 4) if known else None
    if sweep.backend == "hf" and len(known) < len(costs):
        warnings.append(f"{len(costs) - len(known)} trial(s) have no cost estimate: the budget is checked against "
                        "what they actually cost as they run.")
    within = sweep.budget.max_cost_usd is None or total is None or total <= sweep.budget.max_cost_usd + 1e-9
    if len(chosen) < len(space):
        notes.append(f"{len(chosen)} of {len(space)} trials (budget.max_trials).")
    return SweepPlan(name=sweep.name, backend=sweep.backend, flavor=flavor, metric=sweep.metric, budget=sweep.budget,
                     space_size=len(space), trial_count=len(trials), trials=trials,
                     per_trial_cost_usd=max(known) if known else None, total_cost_usd=total, within_budget=within,
                     paid=sweep.backend == "hf", warnings=warnings, notes=notes)


def over_budget(plan: SweepPlan) -> ConfigError:
    limit = plan.budget.max_cost_usd or 0.0
    fits, spent = 0, 0.0
    for t in plan.trials:
        spent += t.estimated_cost_usd or 0.0
        if spent > limit + 1e-9:
            break
        fits += 1
    return ConfigError(
        f"The sweep's {plan.trial_count} trials are estimated at ${plan.total_cost_usd:.2f}, over budget.max_cost_usd "
        f"${limit:.2f} (about ${plan.per_trial_cost_usd:.2f} a trial).",
        f"Lower budget.max_trials to {fits} (what fits), shrink the space, or raise budget.max_cost_usd to "
        f"{plan.total_cost_usd:.2f}.", code="sweep.over_budget",
        details={"total_cost_usd": plan.total_cost_usd, "max_cost_usd": limit, "trials_that_fit": fits})


__all__ = ["plan_sweep", "trial_config", "trial_overrides", "over_budget", "SweepPlan", "TrialPlan"]
