"""A search space -> the trials' parameters: every grid combination in order, or `count` seeded random draws."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

from .spec import Range, Space


def _draw(rng: random.Random, values: list[Any] | Range) -> Any:
    if isinstance(values, list):
        return rng.choice(values)
    if values.log:
        x = math.exp(rng.uniform(math.log(values.low), math.log(values.high)))
    elif isinstance(values.low, int) and isinstance(values.high, int):
        return rng.randint(int(values.low), int(values.high))
    else:
        x = rng.uniform(values.low, values.high)
    return float(f"{x:.4g}")  # four significant digits: readable, and what is shown is what runs


def expand(space: Space) -> list[dict[str, Any]]:
    if space.grid is not None:
        names = list(space.grid)
        return [dict(zip(names, combo)) for combo in itertools.product(*(space.grid[n] for n in names))]
    assert space.random is not None
    rng = random.Random(space.random.seed)
    return [{name: _draw(rng, values) for name, values in space.random.fields.items()}
            for _ in range(space.random.count)]


__all__ = ["expand"]
