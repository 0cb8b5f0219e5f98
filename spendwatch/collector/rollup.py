"""Keeping the hourly rollup (spendwatch/hourly.py) equal to `llm_calls`, inside the writer's transactions.

The rollup holds every hour before `complete_before`; that moment follows the clock, `SEAL_AFTER` behind
the current hour's end, so that the spans of an hour (exported at their end, in batches, retried) have
arrived before it is sealed and the hours still filling are read raw: a reader reads at most two hours
of raw rows beyond its range's partial hours. Rows are appended in hour order, so DuckDB's per-row-group
min/max find an hour's rows for a reader, a re-sum or a prune. Whatever changes the calls of a sealed
hour sums that hour again from `llm_calls` in the same transaction: a span that arrives after its hour
was sealed, a span that supersedes another or is decided again (collector/resolve.py), a reprice, a
prune. Sealing an hour and summing one again each read that hour's rows, found by DuckDB from its
per-row-group min/max.

The daily latency histogram (spendwatch/latency.py) follows the same moments a day at a time: a day is
counted once its last hour is sealed, and counted again whenever one of its hours is summed again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import duckdb

from spendwatch import latency
from spendwatch.hourly import DIMENSIONS, GRAINS, HOUR, HOUR_US, MEASURES, STATE, TABLE, hour_floor

SEAL_AFTER = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = ", ".join(f'"{name}"' for name in DIMENSIONS)
_INSERT = f"""
    INSERT INTO {TABLE} (grain, hour, {_COLUMNS}, {", ".join(MEASURES)})
    SELECT grouping_id({_COLUMNS}) AS grain, to_timestamp(epoch_us(start_time) // {HOUR_US} * 3600) AS hour,
           {_COLUMNS}, {", ".join(aggregate for aggregate, _ in MEASURES.values())}
    FROM llm_calls
    WHERE start_time >= $first AND start_time < $last
    GROUP BY GROUPING SETS ({", ".join("(hour, " + ", ".join(f'"{name}"' for name in grain) + ")" for grain in GRAINS)})
    ORDER BY hour, grain
"""
_LATENCY_INSERT = f"""
    INSERT INTO {latency.TABLE} (day, what, grp, bucket, calls)
    SELECT * FROM ({latency.HISTOGRAM_SQL}) ORDER BY day, what, grp, bucket
"""


def sealed_through(con: duckdb.DuckDBPyConnection) -> datetime | None:
    (value,) = con.execute(f"SELECT complete_before FROM {STATE}").fetchone()
    return value


def rebuild(con: duckdb.DuckDBPyConnection, now: datetime | None = None) -> None:
    """Sum every sealed hour again from `llm_calls` (after a migration, or rows written past the store)."""
    sealed = hour_floor((now or datetime.now(UTC)) - SEAL_AFTER)
    con.execute(f"DELETE FROM {TABLE}")
    con.execute(_INSERT, {"first": _EPOCH, "last": sealed})
    con.execute(f"DELETE FROM {latency.TABLE}")
    con.execute(_LATENCY_INSERT, {"first": _EPOCH, "last": latency.day_floor(sealed)})
    con.execute(f"UPDATE {STATE} SET complete_before = ?", [sealed])


def advance(con: duckdb.DuckDBPyConnection, now: datetime) -> None:
    """Seal the hours that are now `SEAL_AFTER` behind: sum them into the rollup."""
    sealed = sealed_through(con)
    target = hour_floor(now - SEAL_AFTER)
    if sealed is None or target <= sealed:
        return
    con.execute(_INSERT, {"first": sealed, "last": target})
    if latency.day_floor(target) > latency.day_floor(sealed):  # whole days sealed now
        con.execute(_LATENCY_INSERT, {"first": latency.day_floor(sealed), "last": latency.day_floor(target)})
    con.execute(f"UPDATE {STATE} SET complete_before = ?", [target])


def refresh(con: duckdb.DuckDBPyConnection, hours: Iterable[int]) -> None:
    """Sum again the sealed ones of `hours` (hours since the epoch) whose calls changed."""
    wanted = sorted(set(hours))
    if not wanted:
        return
    sealed = sealed_through(con)
    if sealed is None:
        return
    limit = (sealed - _EPOCH) // HOUR
    runs: list[list[int]] = []
    for hour in (hour for hour in wanted if hour < limit):
        if runs and runs[-1][1] == hour:
            runs[-1][1] = hour + 1
        else:
            runs.append([hour, hour + 1])
    for first, last in runs:
        bounds = {"first": _EPOCH + first * HOUR, "last": _EPOCH + last * HOUR}
        con.execute(f"DELETE FROM {TABLE} WHERE hour >= $first AND hour < $last", bounds)
        con.execute(_INSERT, bounds)
    days = {latency.day_floor(_EPOCH + hour * HOUR) for first, last in runs for hour in range(first, last)}
    for day in sorted(day for day in days if day + latency.DAY <= sealed):  # the whole days counted
        bounds = {"first": day, "last": day + latency.DAY}
        con.execute(f"DELETE FROM {latency.TABLE} WHERE day >= $first AND day < $last", bounds)
        con.execute(_LATENCY_INSERT, bounds)


def hour_of_ns(start_ns: int) -> int:
    return start_ns // (HOUR_US * 1000)


def hour_of(moment: datetime) -> int:
    return (moment - _EPOCH) // HOUR


def prune(con: duckdb.DuckDBPyConnection, before: datetime) -> None:
    """After the calls that started before `before` were deleted."""
    con.execute(f"DELETE FROM {TABLE} WHERE hour < ?", [hour_floor(before)])
    con.execute(f"DELETE FROM {latency.TABLE} WHERE day < ?", [latency.day_floor(before)])
    refresh(con, [hour_of(before)])
