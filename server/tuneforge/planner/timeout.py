"""The job timeout: long enough for the estimate and its errors, short enough that a stuck run stops paying."""

from __future__ import annotations

import math

from .candidates import Candidate

MIN_TIMEOUT_SECONDS = 15 * 60
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
TIMEOUT_FACTOR = 1.3
CPU_TIMEOUT_FACTOR = 3.0


def job_timeout(c: Candidate, device: str = "cuda") -> int | None:
    """ETA x 1.3 + a load/push buffer, at least 15 minutes. A CPU shared with other work can run several
    times slower than its estimate, so local CPU runs get ETA x 3 instead of a job killed half way."""
    if c.train_hours is None:
        return None
    buffer = max(5.0, 1.5 * c.overhead_minutes) * 60
    factor = CPU_TIMEOUT_FACTOR if (c.flavor is None and device == "cpu") else TIMEOUT_FACTOR
    seconds = c.train_hours * 3600 * factor + buffer
    seconds = max(MIN_TIMEOUT_SECONDS, math.ceil(seconds / 300) * 300)
    return int(min(seconds, MAX_TIMEOUT_SECONDS))
