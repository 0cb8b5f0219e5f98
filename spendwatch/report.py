"""`spendwatch report`: spend, tokens, requests, errors and cache-hit share per group, with totals.

Unpriced calls (a model genai-prices and the config do not know) are counted in their own column, so a
total that leaves them out says so instead of looking complete.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from spendwatch.errors import UserError

DIMENSIONS = {
    "provider": "provider",
    "model": "coalesce(response_model, request_model)",
    "api_key_id": "api_key_id",
    "service_name": "service_name",
    "service": "service_name",
    "operation": "operation",
    "day": "CAST(date_trunc('day', start_time) AS DATE)",
}
MEASURES = (
    "calls",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cost_usd",
    "unpriced_calls",
    "cache_hit_share",
)


def report_sql(by: list[str], since: timedelta | None) -> str:
    for name in by:
        if name not in DIMENSIONS:
            raise UserError(f"--by: unknown group {name!r}; expected any of {', '.join(DIMENSIONS)}")
    groups = ", ".join(f"{DIMENSIONS[name]} AS {name}" for name in by)
    where = "" if since is None else f"WHERE start_time >= now() - INTERVAL {int(since.total_seconds())} SECOND"
    return f"""
        SELECT {groups + "," if groups else ""}
               count(*) AS calls,
               count(*) FILTER (error_type IS NOT NULL) AS errors,
               sum(input_tokens) AS input_tokens,
               sum(output_tokens) AS output_tokens,
               sum(cache_read_tokens) AS cache_read_tokens,
               sum(cost_usd) AS cost_usd,
               count(*) FILTER (cost_usd IS NULL AND coalesce(input_tokens, output_tokens) IS NOT NULL)
                   AS unpriced_calls,
               sum(cache_read_tokens) / nullif(sum(input_tokens), 0) AS cache_hit_share
        FROM llm_calls
        {where}
        {"GROUP BY ALL" if groups else ""}
        ORDER BY cost_usd DESC NULLS LAST, calls DESC
    """


def with_totals(columns: list[str], rows: list[list[Any]], by: list[str]) -> list[list[Any]]:
    """The rows and a totals row (its first group column says `total`)."""
    if not by or not rows:
        return rows
    total: list[Any] = ["total"] + [None] * (len(by) - 1)
    sums = {}
    for measure in MEASURES:
        index = columns.index(measure)
        values = [row[index] for row in rows if row[index] is not None]
        sums[measure] = sum(values) if values else None
    input_tokens, cache_read = sums["input_tokens"], sums["cache_read_tokens"]
    sums["cache_hit_share"] = (cache_read or 0) / input_tokens if input_tokens else None
    return [*rows, total + [sums[measure] for measure in MEASURES]]


def for_people(columns: list[str], rows: list[list[Any]]) -> list[list[Any]]:
    """Money as dollars and shares as percentages, for the table format."""
    cost, share = columns.index("cost_usd"), columns.index("cache_hit_share")
    shown = []
    for row in rows:
        row = list(row)
        row[cost] = "" if row[cost] is None else f"${row[cost]:,.4f}"
        row[share] = "" if row[share] is None else f"{row[share]:.1%}"
        shown.append(row)
    return shown
