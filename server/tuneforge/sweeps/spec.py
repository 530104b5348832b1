"""The sweep file: `base` (a run config or a path to one), `space` (grid or random over dotted RunConfig
fields), `metric` and `budget`. Read with errors that name the line and the field, like config files.

    base: run.yaml                      # or the config itself, inline
    backend: local                      # or hf (then `flavor` or `budget.flavors`)
    space:
      grid:
        train.learning_rate: [1.0e-4, 5.0e-4]
        peft.r: [8, 16]
      # random: {count: 8, seed: 0, fields: {train.learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}}}
    metric: {name: eval_loss, direction: min}
    budget: {max_trials: 4, max_cost_usd: 5, max_parallel: 2, flavors: [a10g-small]}
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..config import RunConfig
from ..errors import ConfigError
from ..records.sweeps import SweepBudget, SweepMetric


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Range(Strict):
    low: int | float = Field(description="Both ints (not log): a whole number is drawn.")
    high: int | float
    log: bool = Field(default=False, description="Sample evenly in log space (learning rates).")

    @model_validator(mode="after")
    def _order(self) -> "Range":
        if self.high < self.low:
            raise ValueError(f"high ({self.high:g}) is below low ({self.low:g})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


class RandomSpace(Strict):
    count: int = Field(ge=1, le=1000, description="How many trials to draw.")
    seed: int = 0
    fields: dict[str, list[Any] | Range] = Field(min_length=1, description="Dotted field -> values or a range.")


class Space(Strict):
    grid: dict[str, list[Any]] | None = Field(default=None, description="Dotted field -> values; every combination.")
    random: RandomSpace | None = None

    @model_validator(mode="after")
    def _one(self) -> "Space":
        if (self.grid is None) == (self.random is None):
            raise ValueError("give exactly one of grid or random")
        if self.grid is not None and not self.grid:
            raise ValueError("grid needs at least one field")
        for name, values in (self.grid or {}).items():
            if not values:
                raise ValueError(f"grid field {name} has no values")
        return self

    @property
    def fields(self) -> list[str]:
        return list(self.grid or {}) if self.grid is not None else list(self.random.fields if self.random else {})


class SweepFile(Strict):
    name: str | None = Field(default=None, max_length=100)
    base: dict[str, Any] | str = Field(description="A run config, or the path of one (relative to the sweep file).")
    backend: Literal["local", "hf", "ray"] = "local"
    flavor: str | None = Field(default=None, description="Hugging Face flavor of every trial (default: the plan's, "
                               "or the first of budget.flavors).")
    space: Space
    metric: SweepMetric = Field(default_factory=SweepMetric)
    budget: SweepBudget = Field(default_factory=SweepBudget)


# ---- where a field is in the YAML -----------------------------------------------------------------------
def _line_of(node: Any, loc: tuple) -> int | None:
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if hasattr(node, "value") and isinstance(node.value, list) and node.value and isinstance(node.value[0], tuple):
            match = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
            if match is None:
                break
            node = match
        elif hasattr(node, "value") and isinstance(node.value, list) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            break
    return node.start_mark.line + 1 if node is not None and hasattr(node, "start_mark") else line


def _compose(text: str) -> Any:
    import yaml

    try:
        return yaml.compose(text)
    except yaml.YAMLError:
        return None


# ---- dotted field names -----------------------------------------------------------------------------------
def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def field_names(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        names.append(prefix + name)
        sub = _model_of(info.annotation)
        if sub is not None:
            names.extend(field_names(sub, f"{prefix}{name}."))
    return names


def check_field(dotted: str) -> str | None:
    """None when `dotted` names a RunConfig field, else why not (with the nearest names)."""
    known = field_names()
    if dotted in known:
        return None
    near = difflib.get_close_matches(dotted, known, n=3, cutoff=0.6)
    return "not a RunConfig field" + (f" (did you mean {', '.join(near)}?)" if near else "")


def load_sweep(path: str | Path) -> tuple[SweepFile, dict[str, Any]]:
    """The sweep file and its base config as a dict (a `base` path is read relative to the file)."""
    from ..config.files import load_mapping

    p = Path(path)
    data = load_mapping(p)
    text = p.read_text(encoding="utf-8")
    root = _compose(text) if p.suffix.lower() != ".json" else None

    def where(loc: tuple) -> str:
        line = _line_of(root, loc) if root is not None else None
        return f"{p}:{line}" if line else str(p)

    try:
        sweep = SweepFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x in ("list[any]", "Range")))
            field = ".".join(str(x) for x in loc) or "(top level)"
            why = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{where(loc)}: {field}: {why}")
        raise ConfigError(f"Invalid sweep file: {'; '.join(dict.fromkeys(problems))}",
                          "Fix the fields named (keys: name, base, backend, flavor, space, metric, budget).",
                          code="sweep.invalid", details={"errors": list(dict.fromkeys(problems))}) from None
    section = "grid" if sweep.space.grid is not None else "random"
    bad = []
    for name in sweep.space.fields:
        why = check_field(name)
        if why:
            loc = ("space", section, name) if section == "grid" else ("space", "random", "fields", name)
            bad.append(f"{where(loc)}: space.{section}.{name}: {why}")
    if bad:
        raise ConfigError(f"Invalid sweep file: {'; '.join(bad)}", "Name RunConfig fields by their dotted path "
                          "(train.learning_rate, peft.r, train.per_device_batch_size).", code="sweep.unknown_field",
                          details={"errors": bad})
    if isinstance(sweep.base, str):
        base_path = Path(sweep.base).expanduser()
        base_path = base_path if base_path.is_absolute() else p.parent / base_path
        base = load_mapping(base_path)
    else:
        base = dict(sweep.base)
    return sweep, base


__all__ = ["SweepFile", "Space", "RandomSpace", "Range", "load_sweep", "check_field", "field_names"]
