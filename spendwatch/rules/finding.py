"""What a rule found: one alert-to-be, whatever the rule's kind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from spendwatch.rules.config import Rule


@dataclass(frozen=True)
class Finding:
    rule: Rule
    kind: str  # budget | forecast | anomaly | new_key | retired_key | key_new_service | missing_key | capture
    group_value: str  # '' when the rule has no group
    window_key: datetime  # with rule, group and threshold: what makes an alert unique
    window_end: datetime | None
    threshold: float
    value: float | None
    limit: float | None
    title: str
    # The text, or a function that writes it: a budget's message names its top spenders, a query over the
    # whole window that is only worth running for an alert not recorded before (rules re-find the same
    # crossed thresholds every tick).
    message: str | Callable[[], str]

    def text(self) -> str:
        return self.message() if callable(self.message) else self.message
