"""The checks that decide whether a run can start, made before any job exists, from the dataset doctor's report.

The source is readable, the column map is well formed and names real columns (a reversed map is caught),
the columns the method needs exist after the map (or the doctor's ready-to-paste map is the fix), and
GRPO has reward functions that can score this data. The report is the doctor's, cached by the files'
identity, and the planner reuses it: validate -> plan -> submit reads the data once.

Fixes name config fields (`dataset.column_map`, `method_args.reward_functions`) and, where a face has one,
its spelling in brackets, so that one sentence serves the CLI, MCP and the API.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from ..config import RunConfig
from ..doctor.method_fit import LAYOUTS
from ..errors import ConfigError, TuneforgeError
from ..reports.dataset import DatasetReport
from ..reports.plan import Plan
from ..templates._shared.rewards import (
    DEFAULT_WITH_REFERENCE,
    NEEDS_REFERENCE,
    REFERENCE_COLUMNS,
    REWARD_NAMES,
    reward_choices,
)
from ..types import Method


def read_report(config: RunConfig, *, with_model: bool = True) -> DatasetReport:
    """The doctor's report on the run's data, with the planner's arguments (so the planner reuses it).
    `with_model=False`: tokens estimated, for when the model's tokenizer cannot be had from here."""
    from ..doctor import validate

    return validate(config.dataset.path, method=config.method, model=config.model if with_model else None,
                    max_length=config.max_length)


def paste_map(mapping: dict[str, str]) -> str:
    """A map as JSON and as the flags to paste."""
    flags = " ".join(f"--column-map {t}={s}" for t, s in mapping.items())
    return f"dataset.column_map {json.dumps(mapping)} (CLI: {flags}; MCP: column_map={json.dumps(mapping)})"


def columns_after_map(columns: Iterable[str], column_map: dict[str, str]) -> set[str]:
    """The column names the template sees once column_map (target -> source) renamed them."""
    sources = set(column_map.values())
    return {c for c in columns if c not in sources} | set(column_map)


def layout_met(method: str, columns: set[str]) -> bool:
    """Some layout of the method finds all its required columns under their own names."""
    return any(all(t.name in columns for t in layout.targets if t.required) for layout in LAYOUTS[Method(method)])


def map_problems(config: RunConfig, report: DatasetReport) -> list[ConfigError]:
    """A map that names missing columns (reversed, or mistyped)."""
    column_map = config.dataset.column_map
    columns = set(report.columns)
    have = ", ".join(sorted(columns)) or "none"
    problems = []
    for target, source in column_map.items():
        if source in columns:
            continue
        if target in columns:
            problems.append(ConfigError(
                f"dataset.column_map {target}={source} looks reversed: the data has a column {target!r} and none "
                f"named {source!r}. The map is target=source (the name training needs = your column).",
                f"Write it the other way round: {paste_map({source: target})}.",
                code="config.column_map_reversed", details={"target": target, "source": source}))
        else:
            problems.append(ConfigError(
                f"dataset.column_map {target}={source}: the data has no column {source!r} (it has {have}).",
                "Name one of the data's columns as the source (target=source).",
                code="config.column_map_unknown_column", details={"source": source, "columns": sorted(columns)}))
    return problems


def data_problems(config: RunConfig, report: DatasetReport) -> list[TuneforgeError]:
    """Everything that would stop the run once it reads its data, each with the doctor's fix."""
    if report.error_count:
        first = report.errors[0] if report.errors else None
        where = f" (line {first.line}: {first.message})" if first else ""
        return [TuneforgeError(f"{report.error_count} line(s) of {report.source} cannot be read{where}.",
                               f"Fix those lines; `tuneforge validate {report.source}` lists them.",
                               code="dataset.unreadable_rows", details={"errors": report.error_count})]
    if not report.rows:
        return [TuneforgeError(f"The dataset {report.source} has no rows.", "Add training examples.",
                               code="dataset.empty")]
    problems: list[TuneforgeError] = list(map_problems(config, report))
    if problems:
        return problems
    method = str(config.method)
    verdict = report.methods.get(method)
    column_map = dict(config.dataset.column_map)
    mapped = columns_after_map(report.columns, column_map)
    if verdict is None:
        return []
    not_trainable = TuneforgeError(
        f"The data cannot train {method}: " + " ".join(verdict.reasons[:3]),
        f"Fix the data (`tuneforge validate {report.source} --method {method}` shows every problem), "
        "or choose the method the data fits.",
        code="dataset.not_trainable", details={"method": method, "reasons": verdict.reasons})
    if not layout_met(method, mapped):
        if verdict.status == "ready":
            return [ConfigError(
                f"The map {json.dumps(column_map)} renames away columns {method} reads: the data fits {method} "
                "as it is.", "Remove dataset.column_map (or the entries that rename those columns).",
                code="config.column_map_breaks_columns", details={"column_map": column_map})]
        if verdict.mapping:
            return [ConfigError(
                f"{method} needs other column names: the data has {', '.join(sorted(report.columns))}"
                + (f"; after the map {json.dumps(column_map)} it still lacks what {method} reads" if column_map else "")
                + ".", f"Use the dataset doctor's map: {paste_map(verdict.mapping)}.",
                code="config.column_map_required", details={"mapping": verdict.mapping})]
        return [not_trainable]
    if verdict.status == "incompatible" and (not column_map or column_map == verdict.mapping):
        return [not_trainable]  # the columns are there: rows the doctor saw would stop or spoil the run
    return []


def budget_problem(config: RunConfig, plan: Plan) -> TuneforgeError | None:
    """A plan whose estimated cost exceeds the config's max_cost_usd: refused at submit, with what to change."""
    if config.max_cost_usd is None or plan.cost_usd is None or plan.cost_usd <= config.max_cost_usd:
        return None
    where = plan.flavor or "this machine"
    fewer = f"train fewer steps (max_steps={plan.max_steps} fits it; CLI: --max-steps {plan.max_steps})" \
        if plan.max_steps else "train fewer steps or less data (--max-steps, --epochs)"
    return TuneforgeError(
        f"Over budget: the plan's estimate is ${plan.cost_usd:.2f} ({plan.hours:.2f} h on {where} at "
        f"${plan.price_per_hour or 0:.2f}/h), above max_cost_usd ${config.max_cost_usd:.2f}.",
        f"{fewer}, use a cheaper flavor (`tuneforge plan` lists alternatives; CLI: --flavor), or raise the budget "
        f"(max_cost_usd; CLI: --max-cost-usd {plan.cost_usd * 1.2:.2f}).",
        code="plan.over_budget", details={"estimated_cost_usd": plan.cost_usd, "max_cost_usd": config.max_cost_usd,
                                          "flavor": plan.flavor, "max_steps_within_budget": plan.max_steps})


def reference_columns(report: DatasetReport | None, column_map: dict[str, str]) -> list[str]:
    if report is None:
        return []
    mapped = columns_after_map(report.columns, column_map)
    return [c for c in REFERENCE_COLUMNS if c in mapped]


def resolve_rewards(config: RunConfig, report: DatasetReport | None) -> tuple[RunConfig, list[str], TuneforgeError | None]:
    """GRPO's reward functions: as named, else accuracy when the data has a reference column. Returns the
    config, notes saying what was chosen, and the refusal when nothing can score this data."""
    if config.method != Method.GRPO:
        return config, [], None
    names = list(config.method_args.reward_functions)
    refs = reference_columns(report, dict(config.dataset.column_map))
    if names:
        needing = [n for n in names if n in NEEDS_REFERENCE]
        if needing and report is not None and not refs:
            return config, [], ConfigError(
                f"The reward {needing[0]!r} compares answers with a reference, but the data has none of the columns "
                f"{', '.join(REFERENCE_COLUMNS)} (it has {', '.join(sorted(report.columns))}).",
                f"Map yours with dataset.column_map, e.g. {paste_map({'answer': 'your_column'})}, "
                "or choose rewards that need no reference (format, length).",
                code="config.reward_needs_reference", details={"reward": needing[0]})
        return config, [], None
    if refs:
        chosen = list(DEFAULT_WITH_REFERENCE)
        updated = config.model_copy(update={"method_args": config.method_args.model_copy(
            update={"reward_functions": chosen})})
        note = (f"GRPO rewards: none named, so {', '.join(chosen)} (the data has a reference column, "
                f"{refs[0]!r}: each completion's final answer is checked against it). Name others in "
                "method_args.reward_functions (CLI: --reward NAME; MCP: rewards=[...]).")
        return updated, [note], None
    have = ", ".join(sorted(report.columns)) if report is not None else "unknown"
    return config, [], ConfigError(
        "GRPO needs reward functions, and none was named: the data has no reference column "
        f"({', '.join(REFERENCE_COLUMNS)}) to check answers against (its columns: {have}).",
        f"Name one or more in method_args.reward_functions (CLI: --reward NAME, repeatable; MCP: rewards=[...]): "
        f"{reward_choices()}.",
        code="config.reward_required", details={"choices": list(REWARD_NAMES)})
