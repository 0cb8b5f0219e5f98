"""The rules engine inside `spendwatch up`: APScheduler runs each rule at its interval.

Each tick evaluates one rule over the daemon's database (on a cursor of its own, beside ingest), records
what fired, and delivers what is due. Ticks of different rules may overlap in time, so recording and
delivering hold one lock: a delivery is attempted by one tick at a time. The clock is injectable, which
is how the tests move time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import duckdb

from spendwatch.rules.alerts import Send, apprise_send, deliver_due, record
from spendwatch.rules.budget import exhausted_groups, windows_to_check
from spendwatch.rules.config import Rule, RulesConfig
from spendwatch.rules.evaluate import evaluate

logger = logging.getLogger("spendwatch.rules")

DELIVERY_INTERVAL = timedelta(seconds=10)
UNPRICED_MODELS_SQL = """
    SELECT DISTINCT provider, model FROM llm_calls WHERE unpriced
"""


def utc_now() -> datetime:
    return datetime.now(UTC)


class RulesEngine:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection | Callable[[], duckdb.DuckDBPyConnection],
        config: RulesConfig,
        *,
        clock: Callable[[], datetime] = utc_now,
        send: Send = apprise_send,
    ) -> None:
        # The daemon passes a function: its store may reopen the database after a failed write.
        self._connection = con if callable(con) else (lambda: con)
        self.config = config
        self._clock = clock
        self._send = send
        self._lock = threading.Lock()
        # The fleet's rules are evaluated by the fleet's lease holder, over the shared table (spendwatch/fleet).
        self.local_rules = config.of_scope("local")
        self._rules = {rule.name: rule for rule in self.local_rules}
        self._scheduler = None
        self._unpriced_seen: set[tuple[str, str]] | None = None
        self.evaluations = 0  # rule ticks done: what `spendwatch status` shows, and tests wait on
        self._exhausted: dict[str, list[tuple[str | None, ...]]] = {}  # enforced budgets: the groups spent
        self.delivery_rounds = 0

    def start(self) -> None:
        self.notice("spendwatch up started", f"{len(self.config.rules)} rule(s) loaded.")
        if not self.local_rules and not self.config.daemon_notify:
            return
        from apscheduler.schedulers.background import BackgroundScheduler

        self._scheduler = BackgroundScheduler(timezone=UTC)
        now = utc_now()
        for rule in self.local_rules:
            self._scheduler.add_job(
                self.tick,
                "interval",
                args=[rule],
                seconds=rule.every.total_seconds(),
                next_run_time=now,
                id=rule.name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        interval = min([DELIVERY_INTERVAL, *(rule.every for rule in self.local_rules)])
        if self.config.daemon_notify:
            interval = min(interval, timedelta(seconds=2))
        self._scheduler.add_job(
            self.deliver,
            "interval",
            seconds=interval.total_seconds(),
            id="deliveries",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        self._scheduler.start()
        logger.info("rules: %d loaded", len(self.local_rules))

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None

    def tick(self, rule: Rule) -> list[int]:
        """Evaluate `rule` now, record what fired, deliver what is due; the new alerts' ids."""
        now = self._clock()
        try:
            with self._lock:
                cursor = self._connection().cursor()
                try:
                    findings = evaluate(rule, now, self.config, _query_on(cursor))
                    new_ids = record(cursor, findings, now)
                    self._deliver(cursor, now)
                    if getattr(rule, "enforce", False):
                        window = windows_to_check(rule, now, self.config)[-1]
                        self._exhausted[rule.name] = exhausted_groups(rule, window, _query_on(cursor))
                finally:
                    cursor.close()
        except Exception as error:
            logger.exception("rule %r could not be evaluated", rule.name)
            self.notice(f"rule {rule.name} failed", f"The rule could not be evaluated: {type(error).__name__}.")
            return []
        finally:
            self.evaluations += 1
        return new_ids

    def budget_state(self) -> dict:
        """What the instrumentation refuses (GET /v1/spendwatch/budgets): for each enforced budget rule, its
        filters, its groups and the groups that have spent their limit in the current window."""
        blocks = []
        for rule in self.config.rules:
            if not getattr(rule, "enforce", False) or rule.name not in self._exhausted:
                continue
            blocks.append(
                {
                    "rule": rule.name,
                    "limit_usd": rule.limit_usd,
                    "where": {column: list(values) for column, values in rule.where},
                    "group_by": list(rule.group_by),
                    "exhausted": [list(group) for group in self._exhausted[rule.name]],
                }
            )
        enforced = [rule.every.total_seconds() for rule in self.config.rules if getattr(rule, "enforce", False)]
        return {
            "generated_at": utc_now().isoformat(),
            "refresh_seconds": min(enforced, default=60.0),
            "blocks": blocks,
        }

    def deliver(self) -> int:
        """Send what is due, and tell the daemon's notifiers about models that appeared without a price."""
        now = self._clock()
        try:
            with self._lock:
                cursor = self._connection().cursor()
                try:
                    delivered = self._deliver(cursor, now)
                    unpriced = set(cursor.execute(UNPRICED_MODELS_SQL).fetchall())
                finally:
                    cursor.close()
        except Exception:
            logger.exception("alert deliveries failed")
            return 0
        new = sorted(unpriced - self._unpriced_seen) if self._unpriced_seen is not None else []
        self._unpriced_seen = unpriced
        if new:
            models = ", ".join(f"{model} ({provider})" for provider, model in new)
            self.notice("unpriced models", f"Calls to {models} have no known price: add them under [prices].")
        self.delivery_rounds += 1
        return delivered

    def notice(self, title: str, body: str) -> None:
        """The daemon's own news: to its log, and to `[daemon] notify` if named — never to a rule's."""
        logger.info("%s: %s", title, body)
        for name in self.config.daemon_notify:
            error = self._send(self.config.notifiers[name], f"spendwatch: {title}", body)
            if error is not None:
                logger.warning("daemon notice to %s failed: %s", name, error)

    def _deliver(self, cursor: duckdb.DuckDBPyConnection, now: datetime) -> int:
        return deliver_due(cursor, self.config.notifiers, now, self._send, self._retry_base)

    def _retry_base(self, rule_name: str) -> timedelta:
        rule = self._rules.get(rule_name)
        return rule.every if rule is not None else timedelta(minutes=1)


def _query_on(cursor: duckdb.DuckDBPyConnection):
    def query(sql: str, params) -> list[tuple]:
        return cursor.execute(sql, list(params)).fetchall()

    return query
