"""The dashboard's numbers: one function per panel, each SQL over `llm_calls`, `alerts` and the imported
bills (through `spendwatch reconcile`'s own SQL), returning data.

Nothing here knows about HTML. Every function takes a `Query` (SQL and parameters in, JSON-safe rows
out: the daemon runs it on a read-only cursor under the read API's rules), so what a panel shows is what
its SQL gives, and the tests can compare the two. Budgets reuse the rules' own windows and sums.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from spendwatch import hourly, latency
from spendwatch.billing.reconcile import Period as BillPeriod
from spendwatch.billing.reconcile import Reconciliation
from spendwatch.billing.reconcile import reconcile as reconcile_bill
from spendwatch.collector.maintenance import MISSING_PRICES_SQL
from spendwatch.groups import ATTRIBUTION
from spendwatch.rules.budget import (
    SPENDER_GROUPS,
    as_datetime,
    projection,
    spend_in_window,
    windows_to_check,
)
from spendwatch.rules.config import GROUP_EXPRESSIONS, RulesConfig

Query = Callable[[str, Sequence[Any]], list[list[Any]]]

PERIODS = {"24h": (timedelta(hours=24), "hour"), "7d": (timedelta(days=7), "day"), "30d": (timedelta(days=30), "day")}
PERIODS["90d"] = (timedelta(days=90), "day")
DEFAULT_PERIOD = "7d"
# What the spend chart can be stacked by, and the SQL of each.
STACKS = {
    "provider": GROUP_EXPRESSIONS["provider"],
    "model": GROUP_EXPRESSIONS["model"],
    "key": GROUP_EXPRESSIONS["api_key_id"],
    "service": GROUP_EXPRESSIONS["service"],
    **{dimension: GROUP_EXPRESSIONS[dimension] for dimension in ATTRIBUTION},
}
DEFAULT_STACK = "provider"
TOP_GROUPS = 6  # series in the chart before the rest is "other"
TOP_ROWS = 10
NEW_KEY_LOOKBACK = timedelta(days=1)
RECENT_ALERTS = 10
NONE = "(none)"
QUARTER_HOUR_US = 15 * 60 * 1_000_000


@dataclass(frozen=True)
class Period:
    name: str
    unit: str  # "hour" or "day"
    buckets: list[datetime]  # each bucket's start, local to the config's zone, naive
    start: datetime  # the first bucket's start, UTC: the period's calls started at or after it

    @property
    def step(self) -> timedelta:
        return timedelta(hours=1) if self.unit == "hour" else timedelta(days=1)


def period_of(name: str, now: datetime, config: RulesConfig) -> Period:
    """The period ending with the current hour (or day): whole buckets, the last one still filling."""
    length, unit = PERIODS[name]
    step = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
    local = now.astimezone(config.timezone).replace(tzinfo=None)
    last = local.replace(minute=0, second=0, microsecond=0)
    if unit == "day":
        last = last.replace(hour=0)
    count = int(length / step)
    buckets = [last - step * (count - 1 - index) for index in range(count)]
    start = buckets[0].replace(tzinfo=config.timezone).astimezone(UTC)
    return Period(name=name, unit=unit, buckets=buckets, start=start)


@dataclass
class Series:
    label: str
    key: str | None  # the group's value; None for "other"
    values: list[float]  # dollars per bucket, aligned with the period's buckets

    @property
    def total(self) -> float:
        return sum(self.values)


@dataclass
class SpendOverTime:
    period: Period
    stack: str
    series: list[Series] = field(default_factory=list)
    total_usd: float = 0.0
    calls: int = 0
    unpriced_calls: int = 0
    usage_unknown_calls: int = 0


def _calls(query: Query, period: Period, columns: list[str], config: RulesConfig) -> tuple[str, list[Any]]:
    """The period's calls, from the hourly rollup for its whole UTC hours when every bucket of the period
    starts on a whole UTC hour (a zone whose offset is not whole hours: the raw rows)."""
    aligned = all(
        bucket.replace(tzinfo=config.timezone).astimezone(UTC).minute == 0
        for bucket in [*period.buckets, period.buckets[-1] + period.step]
    )
    sealed = hourly.complete_before(lambda: query(hourly.WATERMARK_SQL, [])) if aligned else None
    return hourly.calls(sealed, period.start, None, columns)


def spend_over_time(query: Query, period: Period, stack: str, config: RulesConfig) -> SpendOverTime:
    """Dollars per bucket and group: the top groups by spend in the period, the rest summed as "other"."""
    expression = STACKS[stack]
    calls, params = _calls(query, period, [expression], config)
    # Summed per UTC quarter hour first (integer arithmetic on the epoch), then into the zone's hours or
    # days: every zone's offset is a whole number of quarter hours, and asking the ICU calendar for
    # each quarter hour instead of each call made the chart 13x faster at 10M calls.
    rows = query(
        f"""WITH slots AS MATERIALIZED (
                SELECT epoch_us(start_time) // {QUARTER_HOUR_US} AS slot,
                       coalesce(CAST({expression} AS VARCHAR), '{NONE}') AS grp, sum(cost_usd) AS spent
                FROM {calls} AS calls WHERE cost_usd IS NOT NULL
                GROUP BY ALL
            ), top AS (
                SELECT grp FROM slots GROUP BY grp HAVING sum(spent) > 0
                ORDER BY sum(spent) DESC, grp LIMIT {TOP_GROUPS}
            )
            SELECT date_trunc('{period.unit}', timezone(?, to_timestamp(slot * {QUARTER_HOUR_US // 1_000_000})))
                       AS bucket,
                   top.grp, sum(spent) AS spent
            FROM slots LEFT JOIN top USING (grp)
            GROUP BY ALL""",
        [*params, config.timezone.key],
    )
    index = {bucket: position for position, bucket in enumerate(period.buckets)}
    by_group: dict[str | None, list[float]] = {}
    for bucket, group, spent in rows:
        position = index.get(_naive(bucket))
        if position is None:
            continue  # a call from the future (a skewed clock): not in any bucket of the chart
        by_group.setdefault(group, [0.0] * len(period.buckets))[position] += float(spent or 0)
    series = [Series(_label(stack, group, config), group, values) for group, values in by_group.items() if group]
    series.sort(key=lambda item: (-item.total, item.label))
    if None in by_group and any(by_group[None]):
        series.append(Series("other", None, by_group[None]))
    calls, params = _calls(query, period, [], config)
    ((total, count, unpriced, usage_unknown),) = query(
        f"""SELECT coalesce(sum(cost_usd), 0), coalesce(sum(calls), 0),
                  coalesce(sum(unpriced_calls), 0),
                  coalesce(sum(usage_unknown_calls), 0)
           FROM {calls} AS calls""",
        params,
    )
    return SpendOverTime(period, stack, series, float(total), int(count), int(unpriced), int(usage_unknown))


@dataclass
class TopRow:
    label: str
    spent_usd: float | None
    tokens: int
    requests: int
    error_rate: float
    p95_latency_ms: float | None
    cache_hit_share: float | None


def tops(query: Query, period: Period, config: RulesConfig) -> dict[str, list[TopRow]]:
    """The keys, models and services that spent most in the period, with their usage.

    The sums come from the hourly rollup, one grain per kind of group; the p95 latency of the rows shown,
    which no sum gives, from the daily latency histogram and the calls in the buckets it points to
    (spendwatch/latency.py).
    """
    measures: dict[tuple[str, Any], list[Any]] = {}
    for what, expression in SPENDER_GROUPS.items():
        calls, params = _calls(query, period, [expression], config)
        for group, *values in query(
            f"""SELECT coalesce(CAST({expression} AS VARCHAR), '(none)') AS grp,
                       sum(cost_usd) AS spent,
                       coalesce(sum(input_tokens), 0) + coalesce(sum(output_tokens), 0) AS tokens,
                       sum(calls) AS requests,
                       sum(errors) / sum(calls) AS error_rate,
                       sum(cache_read_tokens) / nullif(sum(input_tokens), 0) AS cache_hit_share,
                       max(api_key_hint) AS hint
                FROM {calls} AS calls
                GROUP BY ALL""",
            params,
        ):
            measures[(what, group)] = values
    rows = [
        (what, grp, spent, tokens, requests, error_rate, share, hint)
        for (what, grp), (spent, tokens, requests, error_rate, share, hint) in measures.items()
    ]
    rows.sort(key=lambda row: (row[2] is None, -(row[2] or 0), -row[4], row[1]))
    shown: dict[str, list[tuple]] = {what: [] for what in SPENDER_GROUPS}
    for row in rows:
        if len(shown[row[0]]) < TOP_ROWS:
            shown[row[0]].append(row)
    sealed = hourly.complete_before(lambda: query(hourly.WATERMARK_SQL, []))
    calls = sum(row[4] for row in rows if row[0] == "services")  # every call has one service, or none
    shown_groups = [row[:2] for rows in shown.values() for row in rows]
    p95s = latency.percentiles(query, sealed, period.start, shown_groups, calls=calls)
    return {
        what: [
            TopRow(
                label=key_label(group, hint, config) if what == "keys" else group,
                spent_usd=None if spent is None else float(spent),
                tokens=int(tokens),
                requests=int(requests),
                error_rate=float(error_rate),
                p95_latency_ms=None if p95s[(what, group)] is None else float(p95s[(what, group)]),
                cache_hit_share=None if share is None else float(share),
            )
            for what, group, spent, tokens, requests, error_rate, share, hint in rows
        ]
        for what, rows in shown.items()
    }


@dataclass
class BudgetBar:
    rule: str
    group: str | None  # the group's value when the rule has a group_by
    window: str
    spent_usd: float
    limit_usd: float
    thresholds: tuple[float, ...]
    forecast_usd: float | None  # the spend at the window's end at the rate so far, once it can be told
    unpriced_calls: int


def budgets(query: Query, config: RulesConfig, now: datetime) -> list[BudgetBar]:
    """Each budget rule's current window, per group, with the rules' own sums and projection."""
    bars = []
    for rule in config.of_scope("local"):  # a fleet budget over this daemon's calls alone would mislead
        if rule.kind != "budget":
            continue
        window = windows_to_check(rule, now, config)[-1]
        groups = spend_in_window(rule, window, query) or [(NONE if rule.group_by else "", 0.0, 0)]
        groups.sort(key=lambda row: (-row[1], row[0]))
        for group_value, spent, unpriced in groups[:TOP_ROWS]:
            group = group_value if rule.group_by else None
            if group is not None and rule.group_by == ("api_key_id",):
                group = key_label(group, None, config)
            bars.append(
                BudgetBar(
                    rule=rule.name,
                    group=group,
                    window=window.label,
                    spent_usd=spent,
                    limit_usd=rule.limit_usd,
                    thresholds=rule.thresholds,
                    forecast_usd=projection(window, now - config.settle, spent),
                    unpriced_calls=unpriced,
                )
            )
    return bars


@dataclass
class AlertRow:
    created_at: datetime
    rule: str
    kind: str
    title: str
    state: str  # pending, delivered or failed
    deliveries: str  # each notifier and how its delivery went
    last_error: str | None


def recent_alerts(query: Query) -> list[AlertRow]:
    rows = query(
        f"""SELECT a.created_at, a.rule, a.kind, a.title, a.state, a.last_error,
                   string_agg(d.notifier || ': ' || CASE WHEN d.delivered_at IS NOT NULL THEN 'delivered'
                                                         WHEN d.gave_up_at IS NOT NULL THEN 'gave up'
                                                         ELSE 'pending' END || CASE WHEN d.attempts > 1
                                                         THEN ' (' || d.attempts || ' attempts)' ELSE '' END,
                              ', ' ORDER BY d.notifier) AS deliveries
            FROM alerts AS a LEFT JOIN alert_deliveries AS d ON d.alert_id = a.id
            WHERE a.state <> 'superseded'
            GROUP BY a.id, a.created_at, a.rule, a.kind, a.title, a.state, a.last_error
            ORDER BY a.created_at DESC, a.id DESC
            LIMIT {RECENT_ALERTS}""",
        [],
    )
    return [
        AlertRow(as_datetime(created), rule, kind, title, state, deliveries or "", error)
        for created, rule, kind, title, state, error, deliveries in rows
    ]


@dataclass
class UnpricedModel:
    provider: str | None
    model: str | None
    calls: int
    last_call: datetime


def unpriced_models(query: Query) -> list[UnpricedModel]:
    """The models with calls but no price: the same list as `spendwatch prices missing`."""
    return [
        UnpricedModel(provider, model, calls, as_datetime(last))
        for provider, model, calls, _, _, last in query(MISSING_PRICES_SQL, [])
    ]


@dataclass
class NewKey:
    label: str
    provider: str | None
    services: str
    first_call: datetime
    calls: int
    spent_usd: float | None


def new_keys(query: Query, now: datetime, config: RulesConfig) -> list[NewKey]:
    """Keys whose first call ever started in the last day."""
    since = now - NEW_KEY_LOOKBACK
    sealed = hourly.complete_before(lambda: query(hourly.WATERMARK_SQL, []))
    calls, params = hourly.calls(sealed, None, None, ["api_key_id"])
    rows = query(  # the first calls of every key are one cheap pass; the details only for the new keys
        f"""WITH new AS (
               SELECT api_key_id FROM {calls} AS calls WHERE api_key_id IS NOT NULL
               GROUP BY api_key_id HAVING min(first_start) >= ?
           )
           SELECT api_key_id, max(api_key_hint), any_value(provider), string_agg(DISTINCT coalesce(service_name,
                  '(none)'), ', ' ORDER BY coalesce(service_name, '(none)')), min(start_time), count(*), sum(cost_usd)
           FROM llm_calls SEMI JOIN new USING (api_key_id) WHERE start_time >= ?
           GROUP BY api_key_id
           ORDER BY min(start_time) DESC, api_key_id""",
        [*params, since, since],
    )
    return [
        NewKey(key_label(key, hint, config), provider, services, as_datetime(first), calls, spent)
        for key, hint, provider, services, first, calls, spent in rows
    ]


def key_label(key_id: str, hint: str | None, config: RulesConfig) -> str:
    """A key by its name in `[keys]`, else by its id and the last characters of the key."""
    if key_id in config.keys:
        return config.keys[key_id]
    if key_id == NONE:
        return "(no key)"
    return f"{key_id[:8]} …{hint}" if hint else key_id[:8]


def _label(stack: str, group: str | None, config: RulesConfig) -> str:
    if group is None:
        return "other"
    return key_label(group, None, config) if stack == "key" else group


def _naive(value: Any) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=None)


@dataclass
class Bill:
    """The providers' bills against what was observed, over the page's period (whole UTC days)."""

    reconciliation: Reconciliation
    rows: list[dict[str, Any]]  # the largest gaps first, at most TOP_ROWS

    @property
    def missing_keys(self) -> list[dict[str, Any]]:
        return self.reconciliation.missing_keys

    @property
    def totals(self) -> list[dict[str, Any]]:
        return self.reconciliation.totals


def bill(query: Query, period: Period, now: datetime, config: RulesConfig) -> Bill | None:
    """`spendwatch reconcile` over the page's period; None when no bill was ever imported."""
    ((imports,),) = query("SELECT count(*) FROM billing_imports", [])
    if not imports:
        return None
    result = reconcile_bill(query, BillPeriod(period.start, now), config.billed_keys)
    rows = sorted(result.rows, key=lambda row: -(row["gap_usd"] or 0.0))[:TOP_ROWS]
    return Bill(result, rows)


@dataclass
class Dashboard:
    """Everything one page shows, as of one moment."""

    now: datetime
    timezone: str
    spend: SpendOverTime
    budgets: list[BudgetBar]
    tops: dict[str, list[TopRow]]
    alerts: list[AlertRow]
    unpriced: list[UnpricedModel]
    new_keys: list[NewKey]
    bill: Bill | None = None


def gather(query: Query, config: RulesConfig, now: datetime, period_name: str, stack: str) -> Dashboard:
    period = period_of(period_name, now, config)
    return Dashboard(
        now=now,
        timezone=config.timezone.key,
        spend=spend_over_time(query, period, stack, config),
        budgets=budgets(query, config, now),
        tops=tops(query, period, config),
        alerts=recent_alerts(query),
        unpriced=unpriced_models(query),
        new_keys=new_keys(query, now, config),
        bill=bill(query, period, now, config),
    )
