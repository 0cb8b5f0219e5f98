"""`spendwatch report`: spend, tokens, requests, errors and cache-hit share per group, with totals, and each
group's spend per day over the report's period.

One query whatever the number of groups: the measures per group per UTC day. Each group's row, its spend
per day and the totals are summed here from it (every measure adds up; the cache-hit share is a ratio
of two sums), so they always agree with each other and the file is read once.
Unpriced calls (a model genai-prices and the config do not know) are counted in their own column, so a
total that leaves them out says so instead of looking complete.

For scripts, JSON is one object (`rows`, a separate `total`, the period's `days` and each row's spend per
day as `daily_cost_usd`); CSV is the rows then one totals row whose first group column says `total`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TextIO

from spendwatch import hourly
from spendwatch.errors import UserError
from spendwatch.groups import ATTRIBUTION, DAY, GROUPS, expression

REPORT_GROUPS = ("provider", "model", "api_key_id", "service_name", "service", "operation", *ATTRIBUTION)
DIMENSIONS = {**{name: GROUPS[name] for name in REPORT_GROUPS}, "day": DAY}  # and `tag.<name>`
MEASURES = (
    "calls",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cost_usd",
    "unpriced_calls",
    "usage_unknown_calls",
    "cache_hit_share",
)
_DAY = DAY

# reads.query bound to a database: (sql, params) -> (columns, rows)
Query = Callable[[str, list[Any]], tuple[list[str], list[list[Any]]]]


@dataclass
class Report:
    by: list[str]
    start: datetime | None  # None: every stored call
    end: datetime
    days: list[date]  # the period's UTC days, oldest first
    rows: list[dict[str, Any]]  # group values, then MEASURES, most spend first
    daily: list[list[float]]  # per row, its spend on each of `days`
    total: dict[str, Any]  # MEASURES over every row
    total_daily: list[float]

    @property
    def unpriced_calls(self) -> int:
        return self.total["unpriced_calls"] or 0

    @property
    def usage_unknown_calls(self) -> int:
        return self.total["usage_unknown_calls"] or 0


def parse_groups(text: str) -> list[str]:
    by = [name.strip() for name in text.split(",") if name.strip()]
    for name in by:
        if name not in DIMENSIONS and expression(name) is None:
            raise UserError(f"--by: unknown group {name!r}; expected any of {', '.join(DIMENSIONS)}, or tag.NAME")
    return by


def _group_sql(name: str) -> str:
    return DIMENSIONS.get(name) or expression(name) or "NULL"


def report_sql(by: list[str], start: datetime | None, sealed: datetime | None = None) -> tuple[str, list[Any]]:
    """The measures (but the cache-hit share, a ratio) per group and UTC day: from the hourly rollup for
    the whole hours before `sealed` when it holds the groups (`hourly.complete_before`)."""
    groups = "".join(f'{_group_sql(name)} AS "{name}", ' for name in by)
    columns = [_group_sql(name) if name in GROUPS else "tags" for name in by if name != "day"]
    calls, params = hourly.calls(sealed, start, None, columns)
    sql = f"""
        SELECT {groups}{_DAY} AS report_day,
               sum(calls) AS calls,
               sum(errors) AS errors,
               sum(input_tokens) AS input_tokens,
               sum(output_tokens) AS output_tokens,
               sum(cache_read_tokens) AS cache_read_tokens,
               sum(cost_usd) AS cost_usd,
               sum(unpriced_calls) AS unpriced_calls,
               sum(usage_unknown_calls) AS usage_unknown_calls
        FROM {calls} AS calls
        GROUP BY ALL
    """
    return sql, params


def build_report(query: Query, by: list[str], since: timedelta | None, now: datetime | None = None) -> Report:
    now = now or datetime.now(UTC)
    start = None if since is None else now - since
    sealed = hourly.complete_before(lambda: query(hourly.WATERMARK_SQL, [])[1])
    columns, rows = query(*report_sql(by, start, sealed))
    per_group: dict[tuple, list[dict[str, Any]]] = {}
    spend: dict[tuple, dict[date, float]] = {}
    for row in rows:
        record = dict(zip(columns, row, strict=True))
        group = tuple(record[name] for name in by)
        day = _as_date(record.pop("report_day"))
        per_group.setdefault(group, []).append(record)
        per_day = spend.setdefault(group, {})
        per_day[day] = per_day.get(day, 0.0) + float(record["cost_usd"] or 0)
    records = [{**dict(zip(by, group, strict=True)), **totals(days)} for group, days in per_group.items()]
    # Ties (same spend, same calls: two unpriced groups) in the order of their groups' values, so that the
    # same calls always give the same report, whichever order the query returned its rows in.
    records.sort(
        key=lambda record: (
            record["cost_usd"] is None,
            -(record["cost_usd"] or 0),
            -record["calls"],
            tuple(repr(record[name]) for name in by),
        )
    )
    seen_days = [day for per_day in spend.values() for day in per_day]
    first = start.astimezone(UTC).date() if start is not None else min(seen_days, default=now.date())
    last = max([now.astimezone(UTC).date(), *seen_days])
    days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    daily = [[spend.get(tuple(record[name] for name in by), {}).get(day, 0.0) for day in days] for record in records]
    return Report(
        by=by,
        start=start,
        end=now,
        days=days,
        rows=records,
        daily=daily,
        total=totals(records),
        total_daily=[sum(values) for values in zip(*daily, strict=True)] if daily else [0.0] * len(days),
    )


def totals(records: list[dict[str, Any]]) -> dict[str, Any]:
    """MEASURES summed over `records`; a sum of nothing is None, as SQL's is, but a count of nothing is 0."""
    total: dict[str, Any] = {}
    for measure in MEASURES[:-1]:
        values = [record[measure] for record in records if record[measure] is not None]
        total[measure] = sum(values) if values else None
    for count in ("calls", "errors", "unpriced_calls", "usage_unknown_calls"):
        total[count] = total[count] or 0
    input_tokens, cache_read = total["input_tokens"], total["cache_read_tokens"]
    total["cache_hit_share"] = (cache_read or 0) / input_tokens if input_tokens else None
    return total


def _as_date(value: Any) -> date:
    """A day from a query: a date from DuckDB, an ISO string through the daemon's read API."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def write_json(out: TextIO, report: Report) -> None:
    from spendwatch.collector.readonly import json_safe

    document = {
        "by": report.by,
        "since": None if report.start is None else report.start.isoformat(),
        "until": report.end.isoformat(),
        "days": [day.isoformat() for day in report.days],
        "rows": [
            {**record, "daily_cost_usd": series} for record, series in zip(report.rows, report.daily, strict=True)
        ],
        "total": {**report.total, "daily_cost_usd": report.total_daily},
    }
    json.dump(json_safe(document), out)
    out.write("\n")


def write_csv(out: TextIO, report: Report) -> None:
    """The rows, then (when grouped) the totals row: its first group column says `total`, the others are empty."""
    from spendwatch.collector.readonly import json_safe

    writer = csv.writer(out)
    writer.writerow([*report.by, *MEASURES])
    for record in report.rows:
        writer.writerow([json_safe(record[column]) for column in (*report.by, *MEASURES)])
    if report.by and report.rows:
        label = ["total"] + [""] * (len(report.by) - 1)
        writer.writerow(label + [report.total[measure] for measure in MEASURES])
