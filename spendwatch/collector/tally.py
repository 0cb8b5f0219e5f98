"""Counters of the calls stored, by label set, kept up to date from what each scrape adds: what `/metrics`
serves as Prometheus counters.

A scrape must not read the stored calls: at 10M calls a GROUP BY over all of them costs about a second of
CPU, every 15 seconds. So the counters start at zero when the daemon starts (as every Prometheus counter
does: `increase()` and `rate()` take a restart in their stride), and each refresh reads only the calls
committed since the one before — `received_at` grows in the order rows are stored, so DuckDB finds them
from its per-row-group min/max without reading older row groups.

A call is counted from its best span, as `llm_calls` shows it, once its spans have *settled*: received at
least `settle` ago (the rules' `[daemon] settle`, so spans of one call still in exporters' batches arrive
first). Two spans of one call that arrive within `settle` of each other are counted once, from the span
that won. When a span arrives later still and supersedes a span already counted, its call is counted
again under the new span's labels less what was counted under the old one: the counters never go down
(a Prometheus counter that falls is read as a restart) and the money adds up to the stored calls.
What that cannot undo: the old span's labels keep what they were given, and a call whose spans keep
arriving later than `settle` in chains of three or more may be off by the middle span.

Each refresh reads from a snapshot taken between two of the writer's commits (`ReadConnections.snapshot`),
so a commit is either wholly in it or wholly after it.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from spendwatch.collector.store import SAME_CALL_HORIZON
from spendwatch.money import LIST_COST_COLUMN

# What each counter sums, as SQL over `llm_calls` (the counted row) and over `llm_call_spans` (a span it
# superseded after that span was counted).
MEASURES: dict[str, str] = {
    "calls": "count(*)",
    "errors": "count(*) FILTER (error_type IS NOT NULL)",
    "cost_usd": "coalesce(sum(cost_usd), 0)",
    "list_cost_usd": f"coalesce(sum({LIST_COST_COLUMN}), 0)",
    "input_tokens": "coalesce(sum(input_tokens), 0)",
    "output_tokens": "coalesce(sum(output_tokens), 0)",
    "cache_read_tokens": "coalesce(sum(cache_read_tokens), 0)",
    "cache_write_tokens": "coalesce(sum(cache_write_tokens), 0)",
    "reasoning_tokens": "coalesce(sum(reasoning_tokens), 0)",
}
_SPAN_MEASURES = {
    "calls": "1",
    "errors": "CASE WHEN old.error_type IS NULL THEN 0 ELSE 1 END",
    "cost_usd": "coalesce(old.cost_usd, 0)",
    "list_cost_usd": f"coalesce(old.{LIST_COST_COLUMN}, 0)",
    **{name: f"coalesce(old.{name}, 0)" for name in list(MEASURES)[4:]},
}
HISTORY = 100_000  # refreshes remembered, to tell whether a span a late one superseded had been counted


@dataclass
class Totals:
    """The counters of one label set."""

    values: list[float] = field(default_factory=lambda: [0.0] * len(MEASURES))

    def add(self, values: Sequence[float]) -> None:
        for index, value in enumerate(values):
            self.values[index] += value


class CallTally:
    """`refresh()` brings the counters up to the calls settled now; `snapshot()` is {labels: Totals}."""

    def __init__(
        self,
        labels: dict[str, str],
        snapshot: Callable[[], Any],
        settle: Callable[[], timedelta],
        started_at: datetime,
    ) -> None:
        """`labels`: {label name: SQL over llm_calls}; `snapshot()`: a context manager giving a cursor that
        sees the writes committed so far and the time it was taken (`ReadConnections.snapshot(lock)`)."""
        self.labels = labels
        self._snapshot = snapshot
        self._settle = settle
        self._started_at = started_at
        self._counted_through = started_at  # calls received before it are counted (or predate the daemon)
        self._lock = threading.Lock()
        self._totals: dict[tuple, Totals] = {}
        # (until, seen as of): every call received before `until` was counted by a refresh whose snapshot
        # held the writes received up to `seen as of`.
        self._history_until: list[datetime] = []
        self._history_as_of: list[datetime] = []
        self.corrections = 0  # calls counted again because a later span superseded a counted one

    def snapshot(self) -> dict[tuple, list[float]]:
        with self._lock:
            return {labels: list(totals.values) for labels, totals in self._totals.items()}

    def refresh(self, now: datetime | None = None) -> None:
        with self._lock:
            now = now or datetime.now(UTC)
            with self._snapshot() as (cursor, taken_at):
                self._refresh(cursor, min(now, taken_at), taken_at)

    def _refresh(self, cursor: Any, now: datetime, taken_at: datetime) -> None:
        since = self._counted_through
        until = now - self._settle()
        if until <= since:
            return
        groups = ", ".join(f"coalesce(CAST({sql} AS VARCHAR), '')" for sql in self.labels.values())
        measures = ", ".join(MEASURES.values())
        rows = cursor.execute(
            f"""SELECT {groups}, {measures}, min(start_time), max(start_time) FROM llm_calls
                WHERE received_at >= $since AND received_at < $until GROUP BY ALL""",
            {"since": since, "until": until},
        ).fetchall()
        width = len(self.labels)
        added: dict[tuple, list[float]] = {}
        for row in rows:
            added[tuple(row[:width])] = [float(value) for value in row[width : width + len(MEASURES)]]
        if rows:
            first = min(row[-2] for row in rows) - SAME_CALL_HORIZON
            last = max(row[-1] for row in rows) + SAME_CALL_HORIZON
            self._take_back(cursor, added, since, until, first, last)
        for labels, values in added.items():
            self._totals.setdefault(labels, Totals()).add(values)
        self._counted_through = until
        self._history_until.append(until)
        self._history_as_of.append(taken_at)
        if len(self._history_until) > HISTORY:
            del self._history_until[: HISTORY // 10], self._history_as_of[: HISTORY // 10]

    def _take_back(self, cursor, added, since, until, first, last) -> None:
        """From the calls just counted, what their spans superseded after it had been counted."""
        groups = ", ".join(f"coalesce(CAST({sql} AS VARCHAR), '') AS label_{index}" for index, sql in
                           enumerate(self.labels.values()))  # fmt: skip
        labels = ", ".join(f"new.label_{index}" for index in range(len(self.labels)))
        measures = ", ".join(_SPAN_MEASURES.values())
        rows = cursor.execute(
            f"""SELECT {labels}, {measures}, old.received_at, new.received_at
                FROM llm_call_spans AS old
                JOIN (SELECT span_id, received_at, {groups} FROM llm_calls
                      WHERE received_at >= $since AND received_at < $until) AS new
                  ON old.superseded_by = new.span_id
                WHERE old.superseded AND old.received_at < $since AND old.start_time BETWEEN $first AND $last""",
            {"since": since, "until": until, "first": first, "last": last},
        ).fetchall()
        width = len(self.labels)
        for row in rows:
            old_received, new_received = row[-2], row[-1]
            if not self._was_counted(old_received, new_received):
                continue
            labels = tuple(row[:width])
            values = added.get(labels)
            if values is None:
                continue
            for index, value in enumerate(row[width : width + len(MEASURES)]):
                values[index] = max(0.0, values[index] - float(value))
            self.corrections += 1

    def _was_counted(self, received: datetime, superseded_at: datetime) -> bool:
        """Whether the refresh that counted spans received at `received` saw the span still standing: its
        snapshot was taken before the write at `superseded_at` that superseded it."""
        if received < self._started_at:
            return False  # stored before this daemon started: its counters never held it
        index = bisect.bisect_right(self._history_until, received)
        if index == len(self._history_until):
            return False  # not counted yet
        return superseded_at >= self._history_as_of[index]
