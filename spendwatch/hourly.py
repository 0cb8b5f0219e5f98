"""The hourly rollup of `llm_calls`: what it holds, and how a reader asks it instead of the raw rows.

`llm_calls_hourly` holds, per UTC hour and group, the sums the rules, the dashboard and the report add
up (calls, errors, tokens, dollars, unpriced and usage-unknown calls, first and last call, the largest
key hint). It is kept by the collector's writer in the same transaction as the rows it sums
(collector/rollup.py), for every hour before `complete_before` (in `llm_calls_hourly_state`); the hours
from there on are read from `llm_calls` itself. So a reader asks, for a time range, the rollup for the
whole hours it covers before `complete_before` and the raw rows for the rest — the partial hours at
either end and the hours not sealed yet — and gets the answer it would get from `llm_calls` alone.

Each row belongs to one grain (a set of group columns, `GRAINS`): a narrow grain per question the
readers ask, so that a month of a busy database is a few hundred thousand rows instead of millions. A
question that needs columns no grain holds together (a tag, the conversation, a filter on the model
grouped by key) is answered from the raw rows, as before. A latency percentile, which no sum gives, is
read from a daily latency histogram kept beside this table (spendwatch/latency.py). Adding a dimension
or a measure is one entry here and a migration adding its column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

TABLE = "llm_calls_hourly"
STATE = "llm_calls_hourly_state"
HOUR = timedelta(hours=1)
HOUR_US = 3_600_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Every group column any grain holds, in the order of the table's columns (and of grouping_id's bits).
DIMENSIONS = (
    "provider",
    "request_model",
    "response_model",
    "operation",
    "api_key_id",
    "service_name",
    "user",
    "tenant",
    "feature",
    "agent",
)
# The grains, narrowest first: a reader takes the first that holds every column it needs.
GRAINS = (
    ("provider", "request_model", "response_model", "operation"),
    ("provider", "service_name"),
    ("provider", "api_key_id"),
    ("provider", "user"),
    ("provider", "tenant"),
    ("provider", "feature"),
    ("provider", "agent"),
    ("provider", "api_key_id", "service_name"),
)
# Each measure: its aggregate over `llm_calls` (what the rollup stores per hour and group), and its value
# for one raw row, so that summing rollup rows and raw rows alike gives the aggregate over the calls.
# The readers combine them with sum() (min() and max() for the last three).
MEASURES = {
    "calls": ("count(*)", "CAST(1 AS BIGINT)"),
    "errors": ("count(*) FILTER (error_type IS NOT NULL)", "CAST(error_type IS NOT NULL AS BIGINT)"),
    "input_tokens": ("CAST(sum(input_tokens) AS BIGINT)", "input_tokens"),
    "output_tokens": ("CAST(sum(output_tokens) AS BIGINT)", "output_tokens"),
    "cache_read_tokens": ("CAST(sum(cache_read_tokens) AS BIGINT)", "cache_read_tokens"),
    "cost_usd": ("sum(cost_usd)", "cost_usd"),
    "unpriced_calls": ("count(*) FILTER (unpriced)", "CAST(unpriced AS BIGINT)"),
    "usage_unknown_calls": ("count(*) FILTER (usage_unknown)", "CAST(usage_unknown AS BIGINT)"),
    "first_start": ("min(start_time)", "start_time"),
    "last_start": ("max(start_time)", "start_time"),
    "api_key_hint": ("max(api_key_hint)", "api_key_hint"),
}
# What a raw-rows answer can group and filter by beyond the grains' columns.
_RAW_ONLY = ("model", "conversation", "tags")
WATERMARK_SQL = f"SELECT complete_before FROM {STATE}"


def grain_id(grain: Iterable[str]) -> int:
    """The grain's `grouping_id(DIMENSIONS...)`: a bit set, first dimension highest, for each column not in it."""
    held = set(grain)
    return sum(1 << (len(DIMENSIONS) - 1 - index) for index, name in enumerate(DIMENSIONS) if name not in held)


def grain_for(columns: Iterable[str]) -> tuple[str, ...] | None:
    """The narrowest grain that holds every one of `columns` (`model` is both model columns); None if none."""
    needed = set()
    for column in columns:
        needed |= {"request_model", "response_model"} if column == "model" else {column}
    return next((grain for grain in GRAINS if needed <= set(grain)), None)


def hour_floor(moment: datetime) -> datetime:
    return _EPOCH + ((moment - _EPOCH) // HOUR) * HOUR


def hour_ceil(moment: datetime) -> datetime:
    floor = hour_floor(moment)
    return floor if floor == moment else floor + HOUR


def complete_before(run: Callable[[], list]) -> datetime | None:
    """Up to where the rollup is complete, from `run()` (the rows of `WATERMARK_SQL` on the caller's
    connection); None — read the raw rows only — on a database without one (opened read-only before
    its migration) or before the first hour is sealed."""
    try:
        rows = run()
    except Exception:  # no rollup in this database: the raw rows answer everything
        return None
    if not rows or rows[0][0] is None:
        return None
    value = rows[0][0]
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC)


def calls(
    sealed: datetime | None,
    start: datetime | None,
    end: datetime | None,
    columns: Iterable[str],
) -> tuple[str, list[Any]]:
    """A relation (SQL, params) over the calls that started in [start, end) (None: unbounded), with
    `start_time`, the group `columns` asked for and every measure of `MEASURES`, read from the rollup
    wherever that gives the same sums: sum each measure over it as the raw rows would be counted.

    A rollup row stands for its hour: its `start_time` is the hour's start, so a reader may bucket by
    any whole number of UTC hours. `sealed` is `complete_before(...)`."""
    grain = grain_for(columns) if sealed is not None else None
    if grain is None:
        return _raw(None, start, end)
    low = hour_ceil(start) if start is not None else None
    high = hour_floor(end) if end is not None else sealed
    high = min(high, sealed)
    if low is not None and low >= high:
        return _raw(None, start, end)
    wanted = list(grain) + (["model"] if {"request_model", "response_model"} <= set(grain) else [])
    dims = [_quoted(name) for name in grain]
    if "model" in wanted:
        dims.append("coalesce(response_model, request_model) AS model")
    measures = ", ".join(MEASURES)
    lower = "" if low is None else "AND hour >= ?"
    parts = [
        f"(SELECT hour AS start_time, {', '.join(dims)}, {measures} FROM {TABLE} "
        f"WHERE grain = {grain_id(grain)} {lower} AND hour < ?)"
    ]
    params: list[Any] = ([] if low is None else [low]) + [high]
    if start is not None and start < low:
        sql, more = _raw(wanted, start, low)
        parts.append(sql)
        params += more
    if end is None or high < end:
        sql, more = _raw(wanted, high, end)
        parts.append(sql)
        params += more
    return "(" + " UNION ALL ".join(parts) + ")", params


def _raw(columns: list[str] | None, start: datetime | None, end: datetime | None) -> tuple[str, list[Any]]:
    names = columns if columns is not None else [*DIMENSIONS, *_RAW_ONLY]
    measures = ", ".join(f"{raw} AS {name}" for name, (_, raw) in MEASURES.items())
    clauses, params = [], []
    if start is not None:
        clauses.append("start_time >= ?")
        params.append(start)
    if end is not None:
        clauses.append("start_time < ?")
        params.append(end)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    select = ", ".join(_quoted(name) for name in names)
    return f"(SELECT start_time, {select}, {measures} FROM llm_calls {where})", params


def _quoted(name: str) -> str:
    return f'"{name}"'
