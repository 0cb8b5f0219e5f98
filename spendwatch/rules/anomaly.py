"""Anomaly rules: the latest complete bucket of a metric against the buckets of its baseline, per group.

Robust statistics — the median and the median absolute deviation (MAD) — so one old spike in the
baseline does not blind the rule the way it would inflate a mean and a standard deviation. The score is
(value - median) / (1.4826 x MAD), a z-score on a normal baseline. Two floors keep it quiet where a
score would mislead: the MAD is taken as at least 5% of the median (a perfectly flat baseline would
otherwise make any wiggle infinite), and `min_value` is an absolute floor on the value itself. Only rises
alert: a spike in spend, tokens, calls, errors, error rate or latency.

A rule looks only when at least half the baseline's buckets hold data. A lasting spike alerts once: a
group that alerted is not alerted again until one of its complete buckets has scored as normal.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

from spendwatch import hourly
from spendwatch.money import usd
from spendwatch.rules.budget import Query, as_datetime, calls_in, filters_sql, scope_text
from spendwatch.rules.config import Rule, RulesConfig
from spendwatch.rules.finding import Finding

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
METRIC_SQL = {
    "cost_usd": "coalesce(sum(cost_usd), 0)",
    "tokens": "coalesce(sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)), 0)",
    "requests": "count(*)",
    "errors": "count(*) FILTER (error_type IS NOT NULL)",
    "error_rate": "count(*) FILTER (error_type IS NOT NULL) / count(*)",
    # calls whose spans said nothing of their tokens: money nobody counted
    "usage_unknown": "count(*) FILTER (usage_unknown)",
    "p95_latency_ms": "quantile_cont(duration_ms, 0.95)",
}
# The same over the calls as `hourly.calls` gives them (whole hours summed): every metric but the percentile.
SUMMED_SQL = {
    "cost_usd": "coalesce(sum(cost_usd), 0)",
    "tokens": "coalesce(sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)), 0)",
    "requests": "sum(calls)",
    "errors": "sum(errors)",
    "error_rate": "sum(errors) / sum(calls)",
    "usage_unknown": "sum(usage_unknown_calls)",
}
ADDITIVE = {
    "cost_usd",
    "tokens",
    "requests",
    "errors",
    "usage_unknown",
}  # an empty bucket is a zero, not a missing value
MAD_TO_SIGMA = 1.4826
MIN_SCALE_OF_MEDIAN = 0.05
MAX_EPISODE_BUCKETS = 48


def evaluate_anomaly(rule: Rule, now: datetime, config: RulesConfig, query: Query) -> list[Finding]:
    as_of = now - config.settle
    latest_end = _EPOCH + ((as_of - _EPOCH) // rule.bucket) * rule.bucket  # the latest complete bucket ends here
    count = int(rule.baseline / rule.bucket)
    first = latest_end - (count + MAX_EPISODE_BUCKETS + 1) * rule.bucket
    group = rule.group_sql or "''"
    where, params = filters_sql(rule)
    # Buckets by integer arithmetic on the epoch: time_bucket on a TIMESTAMPTZ goes through the ICU
    # calendar for every row, ~5x the cost of the whole query at 10M calls.
    width_us = rule.bucket // timedelta(microseconds=1)
    if rule.metric in SUMMED_SQL and rule.bucket % hourly.HOUR == timedelta(0):  # whole hours: the rollup's
        calls, calls_params = calls_in(rule, first, latest_end, query)
        metric, source, window = SUMMED_SQL[rule.metric], f"{calls} AS calls WHERE true", calls_params
    else:
        metric, source = METRIC_SQL[rule.metric], "llm_calls WHERE start_time >= ? AND start_time < ?"
        window = [first, latest_end]
    rows = query(
        f"""SELECT {group} AS group_value,
                   epoch_us(start_time) // {width_us} AS bucket,
                   {metric} AS value
            FROM {source} {where}
            GROUP BY ALL""",
        [*window, *params],
    )
    # Buckets by number (bucket N starts at the epoch + N buckets): no datetime per row and per lookup.
    series: dict[str, dict[int, float | None]] = {}
    for group_value, bucket, value in rows:
        series.setdefault(group_value, {})[int(bucket)] = float(value) if value is not None else None
    findings = []
    latest = (latest_end - _EPOCH) // rule.bucket - 1
    for group_value, values in series.items():
        scored = _score(rule, values, latest, count)
        if scored is None or not scored[0]:
            continue
        if _continuing(rule, values, latest, count, group_value, query):
            continue
        _, value, median, score = scored
        findings.append(_finding(rule, group_value, _EPOCH + latest * rule.bucket, value, median, score, config))
    return findings


def _score(rule: Rule, values: dict[int, float | None], bucket: int, count: int):
    """(anomalous, value, median, score) of bucket number `bucket` against the `count` buckets before it,
    or None."""
    baseline = []
    held = 0
    for index in range(1, count + 1):
        value = values.get(bucket - index)
        if value is not None:
            held += 1
            baseline.append(value)
        elif rule.metric in ADDITIVE:
            baseline.append(0.0)
    if held * 2 < count:
        return None  # too little history to judge
    value = values.get(bucket)
    if value is None:
        value = 0.0 if rule.metric in ADDITIVE else None
    if value is None or not baseline:
        return None
    median = statistics.median(baseline)
    mad = statistics.median(abs(item - median) for item in baseline)
    scale = max(MAD_TO_SIGMA * mad, MIN_SCALE_OF_MEDIAN * abs(median), 1e-9)
    score = (value - median) / scale
    return score >= rule.sensitivity and value >= rule.min_value, value, median, score


def _continuing(rule, values, latest, count, group_value, query) -> bool:
    """Whether this group's anomaly began in an earlier bucket that already alerted (one alert per spike)."""
    previous = query(
        "SELECT max(window_start) FROM alerts WHERE rule = ? AND kind = 'anomaly' AND group_value = ?",
        [rule.name, group_value],
    )
    last_alerted = previous[0][0] if previous and previous[0][0] is not None else None
    if last_alerted is None:
        return False
    last_alerted = as_datetime(last_alerted)
    alerted = (last_alerted - _EPOCH) // rule.bucket  # a bucket starts after it exactly when its number is higher
    bucket = latest - 1
    while bucket > alerted:
        scored = _score(rule, values, bucket, count)
        if scored is None or not scored[0]:
            return False  # a normal bucket since the last alert: this is a new spike
        bucket -= 1
    return _EPOCH + latest * rule.bucket - last_alerted <= MAX_EPISODE_BUCKETS * rule.bucket


def _finding(rule, group_value, bucket, value, median, score, config) -> Finding:
    shown = {"cost_usd": usd, "error_rate": lambda v: f"{v:.1%}", "p95_latency_ms": lambda v: f"{v:,.0f} ms"}.get(
        rule.metric, lambda v: f"{v:,.0f}"
    )
    local = bucket.astimezone(config.timezone)
    label = f"{local:%Y-%m-%d %H:%M} {config.timezone.key}, {_duration(rule.bucket)}"
    message = "\n".join(
        [
            f"Anomaly rule {rule.name!r}: {rule.metric} was {shown(value)} in the bucket from {label}, against a "
            f"baseline median of {shown(median)} over the previous {_duration(rule.baseline)} (score {score:.1f}, "
            f"sensitivity {rule.sensitivity:g}).",
            f"Scope: {scope_text(rule, group_value, config)}.",
        ]
    )
    return Finding(
        rule=rule,
        kind="anomaly",
        group_value=group_value,
        window_key=bucket,
        window_end=bucket + rule.bucket,
        threshold=0.0,
        value=value,
        limit=median,
        title=f"{rule.name}: {rule.metric} {shown(value)} vs {shown(median)} usual",
        message=message,
    )


def _duration(length: timedelta) -> str:
    seconds = int(length.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
