"""One merge for every face: config layers (a file, a partial config) + flat overrides -> a RunConfig.

A leaf: pure functions over dicts and RunConfig. The CLI's `train` (a --config file, then flags) and
the MCP tool `submit_training` (a config_path, a `config`, then flat arguments) both build their
config here, so a value given twice always resolves the same way: later layers win, overrides win
over every layer, and a None override means "not given".

    config = merge_config(load_mapping("run.yaml"), overrides={"train.max_steps": 3, "dataset.path": None},
                          source="run.yaml", required={"model": "--model", "dataset": "--dataset"},
                          missing_fix="Pass them as flags or put them in a --config file.")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .schema import RunConfig


def normalized(layer: Mapping[str, Any]) -> dict[str, Any]:
    """A config layer with its shorthands spelled out (`dataset: file.jsonl` -> `dataset: {path: ...}`)."""
    data = dict(layer)
    if isinstance(data.get("dataset"), str):
        data["dataset"] = {"path": data["dataset"]}
    return data


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def set_field(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` in a nested dict, creating the mappings on the way; a None value sets nothing.

    A mapping value merges into a mapping already there (a column_map flag adds to the file's)."""
    if value is None:
        return
    node = data
    *parents, leaf = dotted.split(".")
    walked: list[str] = []
    for key in parents:
        walked.append(key)
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            where = ".".join(walked)
            raise ConfigError(f"Config key {where!r} must be a mapping, not {type(node).__name__}.",
                              f"Write {where}: as a mapping of settings.", code="config.not_a_mapping",
                              details={"field": where})
    if isinstance(value, Mapping) and isinstance(node.get(leaf), Mapping):
        value = deep_merge(node[leaf], value)
    node[leaf] = value


#: a flat input (a CLI flag's dest, an MCP argument, an API keyword) -> the config field it sets. One table for
#: `train`, `plan`, submit_training, plan_training and the API, so that each name means one field everywhere.
RUN_FIELDS = {
    "model": "model", "method": "method", "dataset": "dataset.path", "split": "dataset.split",
    "eval_dataset": "dataset.eval_path", "column_map": "dataset.column_map", "eval_fraction": "dataset.eval_fraction",
    "max_steps": "train.max_steps", "epochs": "train.epochs", "learning_rate": "train.learning_rate",
    "batch_size": "train.per_device_batch_size", "grad_accum": "train.gradient_accumulation_steps",
    "gradient_checkpointing": "train.gradient_checkpointing", "precision": "train.precision",
    "optimizer": "train.optimizer", "max_length": "max_length", "packing": "packing", "peft": "peft.kind",
    "lora_r": "peft.r", "lora_alpha": "peft.alpha", "lora_dropout": "peft.dropout",
    "target_modules": "peft.target_modules", "merge": "merge", "push_to_hub": "push_to_hub",
    "output_dir": "output_dir", "system_prompt": "system_prompt", "seed": "seed", "timeout_seconds": "timeout_seconds",
    "max_restarts": "max_restarts",
    "rewards": "method_args.reward_functions", "num_generations": "method_args.num_generations",
    "max_completion_length": "method_args.max_completion_length",
    "max_cost_usd": "max_cost_usd", "watchdog": "watchdog.enabled",
}


def run_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """Flat inputs (RUN_FIELDS' names; None: not given) as dotted overrides for merge_config."""
    unknown = sorted(set(values) - set(RUN_FIELDS))
    if unknown:
        raise ConfigError(f"Unknown run option(s): {', '.join(unknown)}.",
                          f"Use only: {', '.join(sorted(RUN_FIELDS))}.", code="config.unknown_option",
                          details={"unknown": unknown})
    return {RUN_FIELDS[name]: value for name, value in values.items()}


def parse_column_map(items: list[str] | None, spelled: str = "--column-map") -> dict[str, str] | None:
    """TARGET=SOURCE items (repeatable, or comma-separated: prompt=question,chosen=good_response) -> a map."""
    if not items:
        return None
    mapping: dict[str, str] = {}
    for item in items:
        for part in item.split(","):
            target, sep, source = part.strip().partition("=")
            target, source = target.strip(), source.strip()
            if not sep or not target or not source or "=" in source:
                raise ConfigError(f"{spelled} {item!r} is not TARGET=SOURCE (e.g. prompt=question).",
                                  f"Write one rename per entry, target first: {spelled} prompt=question "
                                  f"(several: {spelled} prompt=question,chosen=good_response).",
                                  code="config.bad_column_map", details={"item": item})
            if mapping.get(target, source) != source:
                raise ConfigError(f"{spelled} sets {target!r} twice ({mapping[target]!r} and {source!r}).",
                                  f"Give {target!r} one source column.", code="config.bad_column_map",
                                  details={"target": target})
            mapping[target] = source
    return mapping


def merged_data(*layers: Mapping[str, Any] | None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Layers in order (later ones win), then `overrides` by dotted field: the dict RunConfig validates."""
    data: dict[str, Any] = {}
    for layer in layers:
        if layer:
            data = deep_merge(data, normalized(layer))
    for dotted, value in (overrides or {}).items():
        set_field(data, dotted, value)
    return data


def require(data: Mapping[str, Any], required: Mapping[str, str] | None, missing_fix: str | None) -> None:
    missing = [field for field in (required or {}) if not data.get(field)]
    if missing:
        spelled = " and ".join((required or {})[field] for field in missing)
        raise ConfigError(f"The run needs {spelled}.", missing_fix or f"Give {spelled}.",
                          code="config.missing_field", details={"fields": missing})


def merge_config(*layers: Mapping[str, Any] | None, overrides: Mapping[str, Any] | None = None, source: str,
                 required: Mapping[str, str] | None = None, missing_fix: str | None = None) -> RunConfig:
    """Layers in order (later ones win), then `overrides` by dotted field, validated as one RunConfig.

    `required` maps the fields that must be given to how the caller spells them (a flag, an argument),
    so the error names what to pass. Schema errors become one ConfigError naming each bad field.
    """
    data = merged_data(*layers, overrides=overrides)
    require(data, required, missing_fix)
    return RunConfig.from_dict(data, source=source)


#: the dataset path of a config built for planning without data (never read: planning_config says so)
NO_DATASET = "no-dataset"


def planning_config(*layers: Mapping[str, Any] | None, overrides: Mapping[str, Any] | None = None, source: str,
                    required: Mapping[str, str] | None = None,
                    missing_fix: str | None = None) -> tuple[RunConfig, bool]:
    """merge_config for a plan, where the dataset is optional: (the config, whether a dataset was given).
    Without one the config holds NO_DATASET, which the planner is told not to read."""
    data = merged_data(*layers, overrides=overrides)
    require(data, required, missing_fix)
    dataset = data.get("dataset")
    given = isinstance(dataset, Mapping) and bool(dataset.get("path"))
    if not given:
        data["dataset"] = {**(dataset if isinstance(dataset, Mapping) else {}), "path": NO_DATASET}
    return RunConfig.from_dict(data, source=source), given


__all__ = ["merge_config", "merged_data", "planning_config", "NO_DATASET", "deep_merge", "set_field", "normalized", "RUN_FIELDS", "run_overrides", "parse_column_map"]
