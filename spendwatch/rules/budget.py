"""Budget rules: spend in a window against a limit, per group, at each threshold.

The aggregation is one SQL query over the rule's own rows (its window, its filters), grouped by its
`group_by`; only when a threshold is crossed do three more queries find the keys, models and services
behind the spend. Evaluation reads as of `now - settle` so spans still in exporters' batches are not
missed at a window's end, and it looks at the previous window too while it is recent, so a call that
arrives late still counts toward its own window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from spendwatch import hourly
from spendwatch.groups import SPENDERS as SPENDER_GROUPS
from spendwatch.groups import expression as group_expression
from spendwatch.groups import grouping_sets
from spendwatch.money import usd
from spendwatch.rules.config import GROUP_EXPRESSIONS, WHERE_COLUMNS, Rule, RulesConfig
from spendwatch.rules.finding import Finding
from spendwatch.rules.windows import Window, window_at

Query = Callable[[str, Sequence[Any]], list[tuple]]
LATE_GRACE = timedelta(hours=6)


def filters_sql(rule: Rule) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for column, allowed in rule.where:
        marks = ", ".join("?" for _ in allowed)
        clauses.append("(" + " OR ".join(f"{name} IN ({marks})" for name in WHERE_COLUMNS[column]) + ")")
        params += list(allowed) * len(WHERE_COLUMNS[column])
    return (" AND " + " AND ".join(clauses)) if clauses else "", params


def windows_to_check(rule: Rule, now: datetime, config: RulesConfig) -> list[Window]:
    as_of = now - config.settle
    current = window_at(rule, as_of, config.timezone)
    windows = [current]
    if current.calendar:
        previous = window_at(rule, current.start - timedelta(microseconds=1), config.timezone)
        if now - previous.end < LATE_GRACE:
            windows.insert(0, previous)
    return windows


def evaluate_budget(rule: Rule, now: datetime, config: RulesConfig, query: Query) -> list[Finding]:
    """Every (group, threshold) of the rule's windows that is crossed, whether or not it fired before."""
    findings = []
    windows = windows_to_check(rule, now, config)
    for window in windows:
        for group_value, spent, unpriced in spend_in_window(rule, window, query):
            crossed = [threshold for threshold in rule.thresholds if spent >= rule.limit_usd * threshold]
            for threshold in crossed:
                findings.append(_finding(rule, window, group_value, threshold, spent, unpriced, config, query))
            if rule.forecast and window is windows[-1]:
                forecast = _forecast(rule, window, now - config.settle, group_value, spent, config)
                if forecast is not None:
                    findings.append(forecast)
    return findings


# A projection needs a quarter of the window behind it: before that, a morning's burst or a quiet night
# dominates the run-rate (6 hours of a day, under 2 days of a week, a week of a month), while three
# quarters of the window are left to act on the warning.
FORECAST_AFTER_FRACTION = 0.25


def _forecast(rule, window, as_of, group_value, spent, config) -> Finding | None:
    """A linear projection of the window's spend to its end, when it passes the limit before the limit is."""
    projected = None if spent >= rule.limit_usd else projection(window, as_of, spent)
    if projected is None or projected <= rule.limit_usd:
        return None
    elapsed = spent / projected
    message = "\n".join(
        [
            f"Budget rule {rule.name!r} forecast: {usd(spent)} spent in the first {elapsed:.0%} of the window; "
            f"at this rate {usd(projected)} by its end, over the {usd(rule.limit_usd)} limit.",
            f"Scope: {scope_text(rule, group_value, config)}.",
            f"Window: {window.label}.",
        ]
    )
    return Finding(
        rule=rule,
        kind="forecast",
        group_value=group_value,
        window_key=window.key,
        window_end=window.end,
        threshold=0.0,
        value=projected,
        limit=rule.limit_usd,
        title=f"{rule.name}: forecast {usd(projected)} of {usd(rule.limit_usd)}",
        message=message,
    )


def projection(window: Window, as_of: datetime, spent: float) -> float | None:
    """The window's spend at its end at the rate so far; None for a rolling window (it has no end), before a
    quarter of the window has passed, or with nothing spent."""
    if not window.calendar:
        return None
    elapsed = (as_of - window.start) / (window.end - window.start)
    if elapsed < FORECAST_AFTER_FRACTION or spent <= 0:
        return None
    return spent / elapsed


def rule_columns(rule: Rule) -> list[str]:
    """The columns of `llm_calls` a rule's filters and groups read (`tags` for a tag)."""
    columns = [name for column, _ in rule.where for name in WHERE_COLUMNS[column]]
    return columns + [GROUP_EXPRESSIONS.get(name, "tags") for name in rule.group_by]


def calls_in(rule: Rule, start: datetime | None, end: datetime | None, query: Query) -> tuple[str, list[Any]]:
    """The calls of [start, end) as the rule reads them: from the hourly rollup where it holds them."""
    sealed = hourly.complete_before(lambda: query(hourly.WATERMARK_SQL, []))
    return hourly.calls(sealed, start, end, rule_columns(rule))


def spend_in_window(rule: Rule, window: Window, query: Query) -> list[tuple[str, float, int]]:
    """(group value, spent, unpriced calls) of each of the rule's groups with calls in `window`."""
    group = rule.group_sql or "''"
    where, params = filters_sql(rule)
    calls, calls_params = calls_in(rule, window.start, window.end, query)
    rows = query(
        f"""SELECT {group} AS group_value, coalesce(sum(cost_usd), 0) AS spent,
                   coalesce(sum(unpriced_calls), 0)
            FROM {calls} AS calls
            WHERE true {where}
            GROUP BY ALL""",
        [*calls_params, *params],
    )
    return [(group_value, float(spent), int(unpriced)) for group_value, spent, unpriced in rows]


@dataclass(frozen=True)
class BudgetStanding:
    """Where one group of a budget rule stands in its current window: what `spendwatch report` shows."""

    rule: Rule
    group_value: str
    window: Window
    spent: float
    unpriced: int
    projected: float | None

    @property
    def share(self) -> float:
        return self.spent / self.rule.limit_usd

    @property
    def level(self) -> str:
        """`over` at or past the limit, `near` at or past the rule's first threshold, else `under`."""
        if self.share >= 1:
            return "over"
        return "near" if self.share >= self.rule.thresholds[0] else "under"


def budget_standings(rule: Rule, now: datetime, config: RulesConfig, query: Query) -> list[BudgetStanding]:
    """Each group's spend in the rule's current window (as the rules see it, as of `now - settle`), most first.

    A rule without groups always has its one standing, at $0 before its first call of the window.
    """
    window = windows_to_check(rule, now, config)[-1]
    rows = spend_in_window(rule, window, query) or ([] if rule.group_by else [("", 0.0, 0)])
    as_of = now - config.settle
    standings = [
        BudgetStanding(rule, group_value, window, spent, unpriced, projection(window, as_of, spent))
        for group_value, spent, unpriced in rows
    ]
    return sorted(standings, key=lambda standing: (-standing.spent, standing.group_value))


def _finding(rule, window, group_value, threshold, spent, unpriced, config, query) -> Finding:
    share = spent / rule.limit_usd
    scope = scope_text(rule, group_value, config)
    title = f"{rule.name}: {share:.0%} of {usd(rule.limit_usd)}"
    lines = [
        f"Budget rule {rule.name!r}: {usd(spent)} spent of the {usd(rule.limit_usd)} limit ({share:.0%}), "
        f"crossing its {threshold:.0%} threshold.",
        f"Scope: {scope}.",
        f"Window: {window.label}.",
    ]
    if unpriced:
        lines.append(f"{unpriced} call(s) in this window have no known price and are not in this total.")

    def message() -> str:
        top = []
        for label, entries in _top_spenders(rule, window, group_value, query).items():
            if entries:
                named = ", ".join(f"{key_name(value, label, config)} {usd(amount)}" for value, amount in entries)
                top.append(f"Top {label}: {named}.")
        return "\n".join([*lines, *top])

    return Finding(
        rule=rule,
        kind="budget",
        group_value=group_value,
        window_key=window.key,
        window_end=window.end,
        threshold=threshold,
        value=spent,
        limit=rule.limit_usd,
        title=title,
        message=message,
    )


def as_datetime(value: datetime | str) -> datetime:
    """A timestamp from a query: a datetime from DuckDB, an ISO string through the daemon's read API."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC)


def scope_text(rule: Rule, group_value: str, config: RulesConfig) -> str:
    filters = ", ".join(f"{column} = {' or '.join(values)}" for column, values in rule.where)
    parts = [filters] if filters else []
    if rule.group_by:
        value = key_name(group_value, "keys", config) if rule.group_by == ("api_key_id",) else group_value
        parts.append(f"{rule.group_label} {value}")
    return "; ".join(parts) or "all calls"


def key_name(value: str, label: str, config: RulesConfig) -> str:
    if label == "keys" and value in config.keys:
        return f"{value} ({config.keys[value]})"
    return value


def _top_spenders(rule: Rule, window: Window, group_value: str, query: Query) -> dict[str, list[tuple[str, float]]]:
    where, params = filters_sql(rule)
    if rule.group_by:
        where += f" AND {rule.group_sql} = ?"
        params.append(group_value)
    # One pass for every label: an alert on a month's budget reads a month of calls.
    label, value, sets = grouping_sets(SPENDER_GROUPS)
    rows = query(
        f"""SELECT {label} AS label, {value} AS value, sum(cost_usd) AS spent
            FROM llm_calls
            WHERE start_time >= ? AND start_time < ? AND cost_usd IS NOT NULL {where}
            GROUP BY {sets}""",
        [window.start, window.end, *params],
    )
    top: dict[str, list[tuple[str, float]]] = {label: [] for label in SPENDER_GROUPS}
    for label, value, spent in sorted(rows, key=lambda row: (-row[2], row[1])):
        if len(top[label]) < 3:
            top[label].append((value, float(spent)))
    return top


def exhausted_groups(rule: Rule, window: Window, query: Query) -> list[tuple[str | None, ...]]:
    """The groups of an enforced budget that have spent their limit in `window`, each as the values of
    its `group_by` names in order (one empty tuple when the rule has no groups and is spent)."""
    where, params = filters_sql(rule)
    columns = [f"CAST({GROUP_EXPRESSIONS.get(name) or group_expression(name)} AS VARCHAR)" for name in rule.group_by]
    select = ", ".join(columns) + ", " if columns else ""
    calls, calls_params = calls_in(rule, window.start, window.end, query)
    rows = query(
        f"""SELECT {select}coalesce(sum(cost_usd), 0) AS spent
            FROM {calls} AS calls
            WHERE true {where}
            {"GROUP BY ALL" if columns else ""}
            HAVING coalesce(sum(cost_usd), 0) >= ?""",
        [*calls_params, *params, rule.limit_usd],
    )
    return [tuple(row[:-1]) for row in rows]
