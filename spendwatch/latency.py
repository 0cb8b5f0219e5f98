"""Exact latency percentiles of the spenders without sorting every call: the daily latency histogram.

`llm_calls_daily_latency` counts the calls per UTC day, group (`GROUPINGS`: the keys, models and
services the dashboard's top tables and alerts name) and latency bucket, for every whole day before the
hourly rollup's `complete_before` (spendwatch/hourly.py). It is kept by the collector's writer with the
rollup, on the same occasions (collector/rollup.py).

A percentile read from it is the one `quantile_cont` gives over the raw rows, not an estimate: the
histogram — the whole days from the table, the rest of the range from the raw rows — says which bucket
holds each of the two ranks the percentile interpolates between, and where in the bucket; one pass over
the range's calls whose latency falls in those buckets (a range on `duration_ms`, cheap to test) gives
the values at those ranks. Buckets are logarithmic, `RESOLUTION` to a factor of e (each about 2% wide),
so a second's bucket holds the calls between 1,000 and 1,020 ms whatever the latencies are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from spendwatch.groups import SPENDERS, grouping_sets

TABLE = "llm_calls_daily_latency"
DAY = timedelta(days=1)
DAY_US = 86_400_000_000
RESOLUTION = 50
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LOWEST, _HIGHEST = -(2**31), 2**31 - 1  # latency <= 0 (a skewed clock); infinite or NaN
BUCKET_SQL = (
    f"CASE WHEN duration_ms > 0 AND isfinite(duration_ms) THEN CAST(floor(ln(duration_ms) * {RESOLUTION}) AS INTEGER) "
    f"WHEN duration_ms > 0 THEN {_HIGHEST} ELSE {_LOWEST} END"
)
# Below this many calls in the range, sorting them all costs less than reading the histogram (at 1M stored
# calls: 25 ms against 49 for a week of 233k calls, even at a month of 1M; at 10M, 102 against 74 ms for a
# week of 2.3M calls).
SORT_BELOW = 1_000_000
# Steps a hundred times finer than the buckets, to find a rank inside its bucket without sorting it all.
_FINE = (
    f"CASE WHEN duration_ms > 0 AND isfinite(duration_ms) THEN CAST(floor(ln(duration_ms) * {RESOLUTION * 100}) "
    "AS BIGINT) ELSE 0 END"
)
# What the histogram is kept for: each grouping's name and the column of `llm_calls` it groups by.
GROUPINGS = SPENDERS
NONE = "(none)"
_WHICH, _GROUP, _SETS = grouping_sets(GROUPINGS, within=("day", "bucket"))
# The histogram of the calls that started in [$first, $last): the sum of the table's rows there once
# every day of it is whole and sealed.
HISTOGRAM_SQL = f"""
    SELECT day, {_WHICH} AS what, {_GROUP} AS grp, bucket, count(*) AS calls
    FROM (
        SELECT *, to_timestamp(epoch_us(start_time) // {DAY_US} * 86400) AS day, {BUCKET_SQL} AS bucket
        FROM llm_calls
        WHERE start_time >= $first AND start_time < $last AND duration_ms IS NOT NULL
    )
    GROUP BY {_SETS}
"""

Query = Callable[[str, Sequence[Any]], list]


def day_floor(moment: datetime) -> datetime:
    return _EPOCH + ((moment - _EPOCH) // DAY) * DAY


def day_ceil(moment: datetime) -> datetime:
    floor = day_floor(moment)
    return floor if floor == moment else floor + DAY


def percentiles(
    query: Query,
    sealed: datetime | None,
    start: datetime,
    wanted: Iterable[tuple[str, str]],
    fraction: float = 0.95,
    calls: int | None = None,
) -> dict[tuple[str, str], float | None]:
    """`quantile_cont(duration_ms, fraction)` over the calls since `start` of each wanted (grouping, group)
    — a grouping of `GROUPINGS`, a group as the text the top tables show (NONE for NULL). `sealed` is the
    rollup's `complete_before`; None, a range with no whole sealed day, or fewer than `SORT_BELOW` `calls`
    in the range read the raw rows alone."""
    wanted = sorted(set(wanted))
    if not wanted:
        return {}
    first_day = day_ceil(start)
    last_day = day_floor(sealed) if sealed is not None else first_day
    if first_day >= last_day or (calls is not None and calls < SORT_BELOW):
        return _raw_percentiles(query, start, wanted, fraction)
    try:
        rows = query(
            f"""SELECT what, grp, bucket, CAST(sum(calls) AS BIGINT) FROM (
                    SELECT what, grp, bucket, calls FROM {TABLE} WHERE day >= ? AND day < ?
                    UNION ALL
                    SELECT what, grp, bucket, calls FROM ({_between("?", "?")})
                    UNION ALL
                    SELECT what, grp, bucket, calls FROM ({_between("?", "'infinity'::TIMESTAMPTZ")})
                ) GROUP BY ALL""",
            [first_day, last_day, start, first_day, last_day],
        )
    except Exception:  # a database opened read-only before the histogram's migration: the raw rows
        return _raw_percentiles(query, start, wanted, fraction)
    buckets: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for what, group, bucket, calls in rows:
        buckets.setdefault((what, group), []).append((bucket, calls))
    # The ranks each percentile needs, as (grouping, group, bucket, rank within the bucket).
    needs: dict[tuple[str, str], tuple[float, list[tuple[int, int]]]] = {}
    for pair in wanted:
        counts = sorted(buckets.get(pair, []))
        total = sum(calls for _, calls in counts)
        if not total:
            continue
        position = (total - 1) * fraction
        ranks = sorted({math.floor(position), math.ceil(position)})
        needs[pair] = (position, [_locate(counts, rank) for rank in ranks])
    values = _values_at(query, start, needs)
    if len(values) < sum(len(located) for _, located in needs.values()):
        # the histogram disagrees with the rows (written past the store and not summed again)
        return _raw_percentiles(query, start, wanted, fraction)
    result: dict[tuple[str, str], float | None] = dict.fromkeys(wanted)
    for pair, (position, located) in needs.items():
        found = [values[(*pair, *place)] for place in located]
        low = found[0]
        result[pair] = low if len(found) == 1 else low + (found[1] - low) * (position - math.floor(position))
    return result


def _between(first: str, last: str) -> str:
    return HISTOGRAM_SQL.replace("$first", first).replace("$last", last)


def _locate(counts: list[tuple[int, int]], rank: int) -> tuple[int, int]:
    """The bucket holding the `rank`-th smallest latency (from 0), and its rank within the bucket."""
    below = 0
    for bucket, calls in counts:
        if rank < below + calls:
            return bucket, rank - below
        below += calls
    raise ValueError(f"rank {rank} beyond {below} calls")


def _values_at(
    query: Query, start: datetime, needs: dict[tuple[str, str], tuple[float, list[tuple[int, int]]]]
) -> dict[tuple[str, str, int, int], float]:
    """The latency at each (grouping, group, bucket, rank) of `needs`, in one query: the calls since
    `start` in the buckets asked (a range on `duration_ms` finds them), joined to the groups that asked
    for each bucket; counted again in `_FINE` steps (a hundredth of a bucket), so that only the calls of
    the step that holds a rank are sorted to find it."""
    wanted = [(what, group, bucket, rank) for (what, group), (_, located) in needs.items() for bucket, rank in located]
    if not wanted:
        return {}
    ranges = " OR ".join(_bucket_range(bucket) for bucket in sorted({bucket for _, _, bucket, _ in wanted}))
    columns = ", ".join(
        f"coalesce(CAST({column} AS VARCHAR), '{NONE}') AS g_{what}" for what, column in GROUPINGS.items()
    )
    joins = " UNION ALL ".join(
        f"SELECT a.what, a.grp, a.bucket, c.fine, c.duration_ms FROM asked AS a "
        f"JOIN candidates AS c ON c.bucket = a.bucket AND c.g_{what} = a.grp WHERE a.what = '{what}'"
        for what in GROUPINGS
    )
    asked = sorted({(what, group, bucket) for what, group, bucket, _ in wanted})
    marks = ", ".join("(?, ?, ?, ?)" for _ in wanted)
    rows = query(
        f"""WITH candidates AS MATERIALIZED (
                SELECT {columns}, bucket, {_FINE} AS fine, duration_ms FROM (
                    SELECT *, {BUCKET_SQL} AS bucket FROM llm_calls WHERE start_time >= ? AND ({ranges})
                )
            ), wanted(what, grp, bucket, rank) AS (VALUES {marks}),
            asked(what, grp, bucket) AS (VALUES {", ".join("(?, ?, ?)" for _ in asked)}),
            joined AS MATERIALIZED ({joins}),
            steps AS (
                SELECT what, grp, bucket, fine, count(*) AS calls,
                       sum(count(*)) OVER (PARTITION BY what, grp, bucket ORDER BY fine) - count(*) AS below
                FROM joined GROUP BY what, grp, bucket, fine
            ),
            targets AS (
                SELECT w.what, w.grp, w.bucket, w.rank, s.fine, w.rank - s.below AS place
                FROM wanted AS w JOIN steps AS s USING (what, grp, bucket)
                WHERE w.rank >= s.below AND w.rank < s.below + s.calls
            )
            SELECT t.what, t.grp, t.bucket, t.rank, j.duration_ms FROM targets AS t JOIN (
                SELECT *, row_number() OVER (PARTITION BY what, grp, bucket, fine ORDER BY duration_ms) - 1 AS place
                FROM joined WHERE (what, grp, bucket, fine) IN (SELECT (what, grp, bucket, fine) FROM targets)
            ) AS j USING (what, grp, bucket, fine, place)""",
        [start, *(value for row in wanted for value in row), *(value for row in asked for value in row)],
    )
    return {(what, group, bucket, rank): duration for what, group, bucket, rank, duration in rows}


def _bucket_range(bucket: int) -> str:
    """A test for `BUCKET_SQL = bucket` that begins with a range on `duration_ms`, which DuckDB tests first."""
    if bucket == _LOWEST:
        return "(duration_ms <= 0)"
    if bucket == _HIGHEST:
        return "(duration_ms > 0 AND NOT isfinite(duration_ms))"
    low = math.exp(bucket / RESOLUTION) * (1 - 1e-9)
    high = math.exp((bucket + 1) / RESOLUTION) * (1 + 1e-9)
    return f"(duration_ms >= {low!r} AND duration_ms < {high!r} AND {BUCKET_SQL} = {bucket})"


def _raw_percentiles(
    query: Query, start: datetime, wanted: list[tuple[str, str]], fraction: float
) -> dict[tuple[str, str], float | None]:
    _, _, sets = grouping_sets(GROUPINGS)  # the label and value above hold for these sets too
    found = {
        (what, group): value
        for what, group, value in query(
            f"""SELECT {_WHICH}, {_GROUP}, quantile_cont(duration_ms, {fraction!r})
                FROM llm_calls WHERE start_time >= ? GROUP BY {sets}""",
            [start],
        )
    }
    return {pair: found.get(pair) for pair in wanted}
