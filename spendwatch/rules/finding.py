"""What a rule found: one alert-to-be, whatever the rule's kind."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from spendwatch.rules.config import Rule


@dataclass(frozen=True)
class Finding:
    rule: Rule
    kind: str  # budget | forecast | anomaly | new_key | retired_key | key_new_service
    group_value: str  # '' when the rule has no group
    window_key: datetime  # with rule, group and threshold: what makes an alert unique
    window_end: datetime | None
    threshold: float
    value: float | None
    limit: float | None
    title: str
    message: str
