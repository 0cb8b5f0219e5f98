"""`GET /metrics`: the daemon's numbers in Prometheus's exposition format, through prometheus-client.

What a scrape costs is what decides the design: nothing here reads the stored calls. Spend, tokens, calls
and errors are counters kept by the daemon (`collector/tally.py`), brought up to date from the calls
committed since the last scrape; budget standings are the rules' own (`rules/budget.py`), read at most once
per rule's `every`; alerts and deliveries come from their own small tables; ingest and forwarding counters
are the daemon's in memory.

Names follow Prometheus's conventions: counters end in `_total`, money is `_usd`, ratios `_ratio`, and
each counter counts from the daemon's start (`spendwatch_start_time_seconds` says when), so `increase()`
and `rate()` are the questions to ask: `sum by (model) (increase(spendwatch_cost_usd_total[1d]))` is the
spend per model in the last day.

Cardinality guard: each spend label (provider, model, service, key, the attribution dimensions) shows at
most `top` values — at the first scrape, the ones with the most spend in the last 7 days, then new values
as they appear while there is room — and every other value is `[other]`; and each spend metric has at most
`max_series` label sets, a set beyond them counting under the one whose labels are all `[other]`. A
value and a label set keep their place for the daemon's life, so every series only ever grows, as a
counter must; the sum over all series is always all the spend.

New series start at zero: Prometheus takes a series' first sample as its start, so `increase()` would
never count the call that made a series appear (a new model, key or service, an alert's first firing).
A counter series is served at 0 for one scrape interval (`metrics_scrape_interval`, Prometheus's default
1m) from when it appears, then with its value, so that every scraper sees it rise from 0.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from spendwatch.collector.tally import MEASURES, CallTally
from spendwatch.groups import GROUPS
from spendwatch.rules.budget import BudgetStanding, budget_standings, grouping_sets
from spendwatch.rules.config import BudgetRule, RulesConfig
from spendwatch.version import __version__

OTHER = "[other]"
DEFAULT_TOP = 25
DEFAULT_MAX_SERIES = 500  # label sets per spend metric: what a scrape encodes (~13 us a sample) and Prometheus keeps
SEED_PERIOD = timedelta(days=7)
TOKEN_KINDS = ("input", "output", "cache_read", "cache_write", "reasoning")
# (status key, metric name without _total, help)
INGEST_COUNTERS = (
    ("spans_received", "spendwatch_spans_received", "Spans received over OTLP (traces)."),
    ("spans_stored", "spendwatch_spans_stored", "Model-call spans stored."),
    ("spans_dropped", "spendwatch_spans_dropped", "Spans received that were not model calls, not stored."),
    ("spans_rejected", "spendwatch_spans_rejected", "Spans refused as malformed or unstorable."),
    ("duplicates_ignored", "spendwatch_spans_duplicate", "Spans received again and stored once."),
)
INGEST_GAUGES = (
    ("spans_queued", "spendwatch_ingest_queue_spans", "Spans waiting for the writer (the ingest queue's depth)."),
    ("exports_in_flight", "spendwatch_ingest_exports_in_flight", "OTLP/HTTP exports being received or committed."),
)

Query = Callable[[str, list[Any]], tuple[list[str], list[list[Any]]]]


class CardinalityGuard:
    """At most `top` values per label, the rest `[other]`; and at most `max_series` label sets, any set
    beyond going to the one whose labels are all `[other]`. What is admitted stays admitted."""

    def __init__(self, labels: Sequence[str], top: int, max_series: int = DEFAULT_MAX_SERIES) -> None:
        self.labels = tuple(labels)
        self.top = top
        self.max_series = max_series
        self._admitted: list[set[str]] = [set() for _ in labels]
        self._series: set[tuple[str, ...]] = set()
        self._lock = threading.Lock()

    def seed(self, label: str, values: Sequence[str]) -> None:
        with self._lock:
            admitted = self._admitted[self.labels.index(label)]
            for value in values:
                if len(admitted) < self.top:
                    admitted.add(value)

    def guard(self, values: tuple[str, ...]) -> tuple[str, ...]:
        with self._lock:
            guarded = []
            for value, admitted in zip(values, self._admitted, strict=True):
                if value not in admitted and len(admitted) < self.top:
                    admitted.add(value)
                guarded.append(value if value in admitted else OTHER)
            series = tuple(guarded)
            if series not in self._series:
                if len(self._series) >= self.max_series:
                    return (OTHER,) * len(values)
                self._series.add(series)
            return series


class _Cached:
    """A value recomputed at most once per `ttl`."""

    def __init__(self, compute: Callable[[], Any], ttl: Callable[[], float]) -> None:
        self._compute, self._ttl = compute, ttl
        self._value: Any = None
        self._at = float("-inf")

    def get(self) -> Any:
        if time.monotonic() - self._at >= self._ttl():
            self._value = self._compute()
            self._at = time.monotonic()
        return self._value


class DaemonMetrics:
    """A prometheus-client collector of the daemon's numbers; `exposition(accept)` is what /metrics answers."""

    def __init__(
        self,
        tally: CallTally,
        query: Query,
        rules: Callable[[], RulesConfig],
        counters: Callable[[], dict[str, float]],
        forwarding: Callable[[], list[dict[str, Any]]] = list,
        top: int = DEFAULT_TOP,
        max_series: int = DEFAULT_MAX_SERIES,
        started_at: datetime | None = None,
        scrape_interval: timedelta = timedelta(minutes=1),
    ) -> None:
        self.tally = tally
        self.query = query
        self.rules = rules
        self.counters = counters
        self.forwarding = forwarding
        self.guard = CardinalityGuard(tuple(tally.labels), top, max_series)
        self.created = (started_at or datetime.now(UTC)).timestamp()
        self._seeded = False
        self._lock = threading.Lock()  # one scrape at a time: two Prometheus servers share one refresh
        self._budgets: dict[BudgetRule, _Cached] = {}
        self.scrape_interval = scrape_interval.total_seconds()
        self._first_seen: dict[tuple, float] = {}  # (family, labels): when the series first had a value
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def exposition(self, accept: str) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        with self._lock:
            return encoder(self.registry), content_type

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: the families are made at each scrape

    def collect(self) -> Iterator[Metric]:
        if not self._seeded:
            self._seed()
        self.tally.refresh()
        yield from self._spend()
        yield from self._budget()
        yield from self._alerts()
        yield from self._ingest()
        yield from self._forwarding()
        info = GaugeMetricFamily("spendwatch_build_info", "The running spendwatch.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield GaugeMetricFamily(
            "spendwatch_start_time_seconds", "When the daemon started counting, in Unix time.", value=self.created
        )

    def _counter(self, family: CounterMetricFamily, labels: Sequence[str], value: float) -> None:
        """Add a sample to a counter family: 0 while the series is newer than one scrape interval."""
        key = (family.name, tuple(labels))
        first = self._first_seen.setdefault(key, time.monotonic()) if value else None
        young = first is not None and time.monotonic() - first < self.scrape_interval
        family.add_metric(labels, 0.0 if young else value)

    def _seed(self) -> None:
        """The labels' values with the most spend in the last week take the first places."""
        groups = {label: GROUPS.get(label, label) for label in self.tally.labels}
        label_sql, value_sql, sets = grouping_sets(groups)
        _, rows = self.query(
            f"""SELECT {label_sql} AS label, {value_sql} AS value, coalesce(sum(cost_usd), 0) AS spent
                FROM llm_calls WHERE start_time >= ? GROUP BY {sets}""",
            [datetime.now(UTC) - SEED_PERIOD],
        )
        for label in self.tally.labels:
            ranked = sorted((row for row in rows if row[0] == label), key=lambda row: (-row[2], row[1]))
            self.guard.seed(label, ["" if value == "(none)" else value for _, value, _ in ranked])
        self._seeded = True

    def _spend(self) -> Iterator[Metric]:
        labels = list(self.tally.labels)
        totals: dict[tuple, list[float]] = {}
        for raw, values in self.tally.snapshot().items():
            guarded = totals.setdefault(self.guard.guard(raw), [0.0] * len(MEASURES))
            for index, value in enumerate(values):
                guarded[index] += value
        index = {name: position for position, name in enumerate(MEASURES)}
        families = {
            "cost_usd": CounterMetricFamily(
                "spendwatch_cost_usd", "Spend on LLM calls (effective cost: what is paid), USD.", labels=labels
            ),
            "list_cost_usd": CounterMetricFamily(
                "spendwatch_list_cost_usd", "Spend on LLM calls at list prices, USD.", labels=labels
            ),
            "calls": CounterMetricFamily("spendwatch_calls", "LLM calls, each counted once.", labels=labels),
            "errors": CounterMetricFamily("spendwatch_call_errors", "LLM calls that failed.", labels=labels),
        }
        tokens = CounterMetricFamily(
            "spendwatch_tokens",
            "Tokens by kind: input (cached included), output (reasoning included), and the cached, "
            "cache-write and reasoning parts of them.",
            labels=[*labels, "kind"],
        )
        for label_values, values in sorted(totals.items()):
            for name, family in families.items():
                self._counter(family, label_values, values[index[name]])
            for kind in TOKEN_KINDS:
                self._counter(tokens, [*label_values, kind], values[index[f"{kind}_tokens"]])
        yield from families.values()
        yield tokens

    def _budget(self) -> Iterator[Metric]:
        config = self.rules()
        ratio = GaugeMetricFamily(
            "spendwatch_budget_usage_ratio",
            "Spend in a budget rule's current window over its limit (1 is the limit), per group.",
            labels=["rule", "group"],
        )
        spent = GaugeMetricFamily(
            "spendwatch_budget_spent_usd", "Spend in a budget rule's current window.", labels=["rule", "group"]
        )
        limit = GaugeMetricFamily("spendwatch_budget_limit_usd", "A budget rule's limit.", labels=["rule"])
        for rule in config.rules:
            if not isinstance(rule, BudgetRule):
                continue
            limit.add_metric([rule.name], rule.limit_usd)
            for standing in self._standings(rule, config)[: self.guard.top]:
                ratio.add_metric([rule.name, standing.group_value], standing.share)
                spent.add_metric([rule.name, standing.group_value], standing.spent)
        yield from (ratio, spent, limit)

    def _standings(self, rule: BudgetRule, config: RulesConfig) -> list[BudgetStanding]:
        cached = self._budgets.get(rule)
        if cached is None:  # a new rule, or one changed by a reload
            cached = self._budgets[rule] = _Cached(
                lambda: budget_standings(rule, datetime.now(UTC), self.rules(), self._rows),
                lambda: rule.every.total_seconds(),
            )
        return cached.get()

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        return [tuple(row) for row in self.query(sql, list(params))[1]]

    def _alerts(self) -> Iterator[Metric]:
        fired = CounterMetricFamily("spendwatch_alerts", "Alerts fired, by rule and kind.", labels=["rule", "kind"])
        for rule, kind, count in self._rows("SELECT rule, kind, count(*) FROM alerts GROUP BY ALL ORDER BY ALL", []):
            self._counter(fired, [rule, kind], count)
        failures = CounterMetricFamily(
            "spendwatch_alert_delivery_failures", "Failed alert delivery attempts.", labels=["notifier"]
        )
        failing = GaugeMetricFamily(
            "spendwatch_alert_deliveries_failing", "Alert deliveries not delivered after an attempt, or given up."
        )
        pending = 0
        for notifier, failed, stuck in self._rows(
            """SELECT notifier, sum(attempts - CASE WHEN delivered_at IS NULL THEN 0 ELSE 1 END),
                      count(*) FILTER (gave_up_at IS NOT NULL OR (delivered_at IS NULL AND attempts > 0))
               FROM alert_deliveries GROUP BY ALL ORDER BY ALL""",
            [],
        ):
            self._counter(failures, [notifier], failed)
            pending += stuck
        failing.add_metric([], pending)
        yield from (fired, failures, failing)

    def _ingest(self) -> Iterator[Metric]:
        counters = self.counters()
        for key, name, help_text in INGEST_COUNTERS:
            family = CounterMetricFamily(name, help_text)
            family.add_metric([], counters.get(key, 0))
            yield family
        for key, name, help_text in INGEST_GAUGES:
            yield GaugeMetricFamily(name, help_text, value=counters.get(key, 0))

    def _forwarding(self) -> Iterator[Metric]:
        stats = self.forwarding()
        names = (
            ("forwarded", CounterMetricFamily, "spendwatch_forward_spans", "Spans forwarded upstream and accepted."),
            ("retried", CounterMetricFamily, "spendwatch_forward_retries", "Exports to upstream tried again."),
            ("dropped", CounterMetricFamily, "spendwatch_forward_dropped_spans", "Spans given up on, never sent."),
            ("queued", GaugeMetricFamily, "spendwatch_forward_queue_exports", "Exports waiting to be forwarded."),
        )
        for key, kind, name, help_text in names:
            family = kind(name, help_text, labels=["endpoint"])
            for upstream in stats:
                if kind is CounterMetricFamily:
                    self._counter(family, [upstream["endpoint"]], upstream[key])
                else:
                    family.add_metric([upstream["endpoint"]], upstream[key])
            yield family
