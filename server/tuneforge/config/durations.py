"""Durations as people write them ('45m', '1h30m') and as plans show them."""

from __future__ import annotations

import re

from ..errors import ConfigError


def parse_duration(value: str | int) -> int:
    """'90', '90s', '45m', '1h30m', '2h', '1d' -> seconds."""
    if isinstance(value, int):
        return value
    text = str(value).strip().lower()
    if text.isdigit():
        return int(text)
    m = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not text or not m or not any(m.groups()):
        raise ConfigError(f"Cannot read the duration {value!r}.", "Write it like 45m, 1h30m, 2h or a number of seconds.",
                          code="config.bad_duration")
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


def format_duration(seconds: float) -> str:
    """Seconds -> '1h30m' / '45m' / '2h' (never '0h')."""
    total_min = max(1, int(round(seconds / 60)))
    h, m = divmod(total_min, 60)
    if h and m:
        return f"{h}h{m:02d}m"
    return f"{h}h" if h else f"{m}m"
