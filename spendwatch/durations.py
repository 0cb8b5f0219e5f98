"""Durations as users write them — `30s`, `5m`, `12h`, `7d`, `2w` — in flags and in the config file alike."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: Any, *, allow_zero: bool = False) -> timedelta:
    match = _DURATION.match(value.strip().lower()) if isinstance(value, str) else None
    if not match or (int(match.group(1)) == 0 and not allow_zero):
        raise ValueError(f'expected a duration such as "30s", "5m", "12h", "7d" or "2w", got {value!r}')
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
