"""Evaluation windows: calendar days, weeks and months in the configured zone, or rolling durations.

Calendar windows are cut at local midnight with zoneinfo, so a DST day is 23 or 25 hours long. A rolling
window has no boundary to re-arm at, so its alerts are keyed by the window-length period they fired in:
a threshold fires at most once per `window` of time, like a calendar window's once per day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from spendwatch.rules.config import Rule

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC
    key: datetime  # what an alert is keyed by: once per (rule, group, key, threshold)
    label: str
    calendar: bool


def window_at(rule: Rule, at: datetime, zone: ZoneInfo) -> Window:
    """The window of `rule` that holds the moment `at`."""
    if rule.rolling is not None:
        periods = (at - _EPOCH) // rule.rolling
        return Window(
            start=at - rule.rolling,
            end=at,
            key=_EPOCH + periods * rule.rolling,
            label=f"the {rule.window} to {at.astimezone(zone):%Y-%m-%d %H:%M} {zone.key}",
            calendar=False,
        )
    local = at.astimezone(zone).date()
    if rule.window == "day":
        first, following, label = local, local + timedelta(days=1), f"{local:%a %Y-%m-%d}"
    elif rule.window == "week":
        first = local - timedelta(days=local.weekday())
        following, label = first + timedelta(days=7), f"the week of {first:%Y-%m-%d}"
    else:
        first = local.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        label = f"{first:%B %Y}"
    start, end = _midnight(first, zone), _midnight(following, zone)
    return Window(start=start, end=end, key=start, label=f"{label} ({zone.key})", calendar=True)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
