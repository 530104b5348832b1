"""The sweep tools: run_sweep (plan or start; a paid sweep once the user agreed), sweep_status, cancel_sweep."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ...actions.sweep import SweepStarted
from ...sweeps.report import SweepStatus
from ...errors import TuneforgeError
from ..errors import tool_errors
from .training import RayAddress, use_ray_address

SweepId = Annotated[str, Field(min_length=4, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                               description="A sweep id as run_sweep returns it, e.g. sw-20260101-120000-abc123.")]


def run_sweep(
    path: Annotated[str, Field(description="The sweep file (YAML on this machine): base (a run config or its path), "
                               "space (grid: or random: over dotted config fields), metric, budget.")],
    submit: Annotated[bool, Field(description="false: only the plan (trials, per-trial and total cost); true: start it.")] = True,
    confirmed: Annotated[bool, Field(description="Set true only after the user saw the plan's total cost and agreed; "
                                     "required for a sweep on backend hf (billed).")] = False,
    ray_address: RayAddress = None,
) -> SweepStarted:
    """Plan a sweep (every trial's config and estimate, the total against budget.max_cost_usd) and start it:
    local trials queue for this machine one at a time, cloud trials run up to budget.max_parallel at once, and no
    trial starts once the budget is spent. Use when the user asks for the best settings: first call with
    submit=false and show the plan; for a paid sweep ask once, then call with confirmed=true. Tell the user the
    sweep id; check it with sweep_status only when they ask."""
    from ...actions.sweep import run_sweep as run

    with tool_errors():
        use_ray_address(ray_address)
        return run(path, confirmed=confirmed, submit=submit)


def sweep_status(
    sweep_id: SweepId,
    wait_seconds: Annotated[float, Field(ge=0, le=3600, description="Wait up to this long for the sweep to end "
                                         "(0: answer at once).")] = 0,
) -> SweepStatus:
    """Each trial's parameters, stage, metrics (eval_loss, eval-block metrics), train loss, cost and minutes,
    with the best trial by the sweep's metric marked, and the spend so far. Use when the user asks how a sweep is
    doing or which settings won; it also submits trials that have room to start."""
    from ...actions.sweep import sweep_status as status_of
    from ...actions.sweep import wait_sweep

    with tool_errors():
        if wait_seconds:
            try:
                return wait_sweep(sweep_id, timeout=wait_seconds)
            except TuneforgeError as exc:
                if exc.code != "sweep.wait_timeout":
                    raise  # still running is not an error here: the answer says where it stands
        return status_of(sweep_id)


def cancel_sweep(sweep_id: SweepId) -> SweepStatus:
    """Stop a sweep: its running trials are canceled and the pending ones never start. Use only when the user
    asks to stop it (finished trials and their results stay)."""
    from ...actions.sweep import cancel_sweep as cancel

    with tool_errors():
        return cancel(sweep_id)
