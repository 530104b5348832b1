"""Choosing among the candidates: the cheapest that fits (single GPU first), why, what else would work, the budget.

Nothing fitting is an error that names the smallest peak and the fixes that would make it fit.
"""

from __future__ import annotations

from ..errors import TuneforgeError
from ..reports.plan import Alternative, Plan
from ..types import Method
from .architecture import Architecture, count_parameters
from .candidates import LORA_ABOVE_PARAMS, Candidate, peft_options
from .hardware import LocalMachine
from .request import PlanRequest


def rounded(x: float | None, nd: int) -> float | None:
    return None if x is None else round(x, nd)


def cost_key(c: Candidate) -> tuple[float, float]:
    price = c.price if c.price is not None else 0.0
    return (c.cost_usd if c.cost_usd is not None else price, price)


def choose(arch: Architecture, req: PlanRequest, candidates: list[Candidate],
           machine: LocalMachine | None) -> tuple[Candidate, str]:
    params = count_parameters(arch)
    device = machine.device if machine else "cuda"
    order = peft_options(req, params, device)
    peft_why = _peft_reason(req, params, device)
    for multi in (False, True):
        for peft in order:
            fits = [c for c in candidates if c.fits and c.peft == peft and (c.gpus > 1) == multi]
            if fits:
                best = min(fits, key=cost_key)
                return best, _choice_reason(best, fits, peft_why, order, candidates)
        if req.backend == "local":
            break
    raise _nothing_fits(arch, req, candidates, machine)


def _peft_reason(req: PlanRequest, params: float, device: str) -> str:
    if req.peft != "auto":
        return f"PEFT: {req.peft} (as asked)."
    if device == "cpu":
        return "PEFT auto on CPU: LoRA (trains a small adapter; QLoRA needs a CUDA GPU)."
    if params <= LORA_ABOVE_PARAMS:
        return (f"PEFT auto: full fine-tuning for a {params / 1e9:.2f}B model (at or under 3B it fits one GPU); "
                "LoRA, then QLoRA, when it does not.")
    return f"PEFT auto: LoRA for a {params / 1e9:.1f}B model (above 3B); QLoRA when LoRA does not fit."


def _choice_reason(best: Candidate, fits: list[Candidate], peft_why: str, order: list[str],
                   candidates: list[Candidate]) -> str:
    skipped = [p for p in order[: order.index(best.peft)]]
    parts = [peft_why]
    if skipped:
        parts.append(f"{', '.join(skipped)} fits no {'single GPU' if best.gpus == 1 else 'flavor'}, so {best.peft}.")
    m = best.memory.total
    if best.flavor is None:
        parts.append(f"Fits this machine: {m:.1f} GiB predicted peak of {best.capacity_gb:g} GB.")
        return " ".join(parts)
    cheapest = min(fits, key=lambda c: c.price or 0)
    where = f"{best.flavor.name} ({best.gpus}x {best.flavor.gpu}, {best.flavor.vram_gb_per_gpu:g} GB each, ${best.price:.2f}/h)"
    if best.distributed == "fsdp":
        parts.append(f"No single GPU holds it: {where} with FSDP sharding weights, gradients and optimizer states, "
                     f"{m:.1f} GiB per GPU.")
    elif best is cheapest:
        parts.append(f"Cheapest flavor that fits: {where}, {m:.1f} GiB predicted peak per GPU.")
    else:
        parts.append(f"{where} is cheaper in total than the lowest hourly price that fits ({cheapest.flavor.name}, "
                     f"${cheapest.cost_usd or 0:.2f} vs ${best.cost_usd or 0:.2f}): it finishes sooner.")
    too_small = sorted((c for c in candidates if not c.fits and c.peft == best.peft and c.flavor and c.gpus == 1
                        and (c.price or 0) < (best.price or 0)), key=lambda c: c.price or 0)
    if too_small:
        c = too_small[-1]
        parts.append(f"Cheaper {c.flavor.name} does not fit: {c.reason}.")
    return " ".join(parts)


def _nothing_fits(arch: Architecture, req: PlanRequest, candidates: list[Candidate],
                  machine: LocalMachine | None) -> TuneforgeError:
    need = min((c.memory.total for c in candidates), default=0.0)
    params = count_parameters(arch)
    fixes = []
    if req.peft in ("none", "auto") and params > 0:
        fixes.append("use --peft lora" if req.peft == "none" else "")
    if machine is None or machine.device == "cuda":
        if req.peft in ("lora", "none"):
            fixes.append("use --peft qlora (4-bit base weights)")
    if req.batch_size > 1:
        fixes.append(f"lower --batch-size to 1 and raise --grad-accum to {req.batch_size * req.grad_accum}")
    if req.max_length > 512 or req.method == Method.GRPO:
        fixes.append(f"shorten --max-length (now {req.max_length})")
    if req.backend == "local":
        fixes.append("train on Hugging Face Jobs with --backend hf")
        where = f"this machine ({machine.memory_gb:g} GB {'GPU memory' if machine and machine.device == 'cuda' else 'RAM'})" if machine else "this machine"
    elif req.flavor:
        fixes.append("pick a bigger --flavor or omit --flavor to let the planner choose")
        where = f"flavor {req.flavor}"
    elif req.backend == "ray":
        where = f"the Ray cluster's nodes ({machine.memory_gb:g} GB RAM)" if machine else "the Ray cluster's GPUs"
    else:
        where = "any Hugging Face Jobs flavor"
    fixes = [f for f in fixes if f]
    reasons = sorted({c.reason for c in candidates if c.reason})[:3]
    return TuneforgeError(
        f"{req.model} ({params / 1e9:.2f}B, {req.method}, peft {req.peft}) does not fit {where}: "
        f"the smallest predicted peak is {need:.1f} GiB. " + ("; ".join(reasons) + "." if reasons else ""),
        ("Try: " + "; or ".join(fixes) + ".") if fixes else "Use a smaller model.",
        code="plan.does_not_fit", details={"memory_gb": need},
    )


def alternatives(chosen: Candidate, candidates: list[Candidate], limit: int = 5) -> list[Alternative]:
    def alt(c: Candidate, why: str) -> Alternative:
        return Alternative(flavor=c.flavor.name if c.flavor else None, gpus=c.gpus, peft=c.peft, distributed=c.distributed,
                           fits=c.fits, memory_gb=c.memory.total, vram_gb=c.capacity_gb or None,
                           hours=rounded(c.hours, 3), cost_usd=rounded(c.cost_usd, 2), why=why)

    out: list[Alternative] = []
    others = [c for c in candidates if c is not chosen]
    fitting = sorted((c for c in others if c.fits), key=cost_key)
    faster = sorted((c for c in fitting if c.hours is not None and chosen.hours is not None and c.hours < chosen.hours * 0.75),
                    key=lambda c: (c.peft != chosen.peft, c.hours or 0))
    if faster:
        c = faster[0]
        out.append(alt(c, f"faster: {c.hours:.2f} h instead of {chosen.hours:.2f} h"
                          + (f", ${c.cost_usd:.2f}" if c.cost_usd is not None else "")))
    for c in fitting:
        if len(out) >= limit - 1:
            break
        if any(a.flavor == (c.flavor.name if c.flavor else None) and a.peft == c.peft for a in out):
            continue
        if c.peft != chosen.peft:
            why = f"{c.peft} instead of {chosen.peft}: {c.memory.total:.1f} GiB"
        else:
            why = "also fits" + (f", ${c.cost_usd:.2f}" if c.cost_usd is not None else "")
        out.append(alt(c, why))
    blocked = sorted((c for c in others if not c.fits and c.reason and (c.price or 0) <= (chosen.price or 0)),
                     key=lambda c: -(c.price or 0))
    if blocked:
        out.append(alt(blocked[0], f"does not fit: {blocked[0].reason}"))
    return out[:limit]


def apply_budget(p: Plan, req: PlanRequest, chosen: Candidate, candidates: list[Candidate]) -> Plan:
    """Within the budget: say so. Over it: propose max_steps that fit it and a cheaper setup, as a warning."""
    budget = req.budget_usd or 0.0
    if p.cost_usd is None:
        p.notes.append(f"Budget ${budget:.2f}: no cost to compare (" + ("local run, free" if p.backend == "local"
                                                                     else "row count unknown") + ").")
        return p
    if p.cost_usd <= budget:
        p.within_budget = True
        p.budget_usd = budget
        p.notes.append(f"Within the ${budget:.2f} budget (estimated ${p.cost_usd:.2f}).")
        return p
    p.within_budget = False
    p.budget_usd = budget
    overhead_cost = (chosen.overhead_minutes / 60) * (chosen.price or 0)
    train_cost = (chosen.train_hours or 0) * (chosen.price or 0)
    suggestions = []
    if budget > overhead_cost and train_cost > 0 and p.steps:
        share = (budget - overhead_cost) / train_cost
        max_steps = max(1, int(p.steps * share))
        p.max_steps = max_steps
        suggestions.append(f"cap the run at max_steps={max_steps} ({share:.0%} of the {p.steps} planned steps)")
    cheaper = sorted((c for c in candidates if c.fits and c.cost_usd is not None and c.cost_usd <= budget), key=cost_key)
    if cheaper:
        c = cheaper[0]
        suggestions.append(f"or use {c.flavor.name if c.flavor else 'this machine'} with {c.peft} "
                           f"(${c.cost_usd:.2f}, {c.hours:.2f} h)")
        if not any(a.flavor == (c.flavor.name if c.flavor else None) and a.peft == c.peft for a in p.alternatives):
            p.alternatives.insert(0, Alternative(
                flavor=c.flavor.name if c.flavor else None, gpus=c.gpus, peft=c.peft, distributed=c.distributed, fits=True,
                memory_gb=c.memory.total, vram_gb=c.capacity_gb, hours=rounded(c.hours, 3), cost_usd=rounded(c.cost_usd, 2),
                why=f"within the ${budget:.2f} budget"))
    if req.max_length > 512:
        suggestions.append(f"or shorten max_length (now {req.max_length}) if your rows allow")
    msg = f"Over budget: estimated ${p.cost_usd:.2f} > ${budget:.2f}. " + ("Proposal: " + "; ".join(suggestions) + "."
                                                                          if suggestions else "Use a smaller model or less data.")
    p.notes.append(msg)
    p.warnings.append(msg)
    return p
