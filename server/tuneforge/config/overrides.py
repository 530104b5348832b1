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


def merge_config(*layers: Mapping[str, Any] | None, overrides: Mapping[str, Any] | None = None, source: str,
                 required: Mapping[str, str] | None = None, missing_fix: str | None = None) -> RunConfig:
    """Layers in order (later ones win), then `overrides` by dotted field, validated as one RunConfig.

    `required` maps the fields that must be given to how the caller spells them (a flag, an argument),
    so the error names what to pass. Schema errors become one ConfigError naming each bad field.
    """
    data: dict[str, Any] = {}
    for layer in layers:
        if layer:
            data = deep_merge(data, normalized(layer))
    for dotted, value in (overrides or {}).items():
        set_field(data, dotted, value)
    missing = [field for field in (required or {}) if not data.get(field)]
    if missing:
        spelled = " and ".join((required or {})[field] for field in missing)
        raise ConfigError(f"The run needs {spelled}.", missing_fix or f"Give {spelled}.",
                          code="config.missing_field", details={"fields": missing})
    return RunConfig.from_dict(data, source=source)


__all__ = ["merge_config", "deep_merge", "set_field", "normalized"]
