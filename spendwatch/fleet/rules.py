"""The fleet's rules: budgets and anomaly rules with `scope = "fleet"`, over every daemon's calls.

The same evaluation as a daemon's own rules (rules/evaluate.py), over the shared table instead of the
database: each tick reads the days the rule looks at (its windows, or its baseline) through
`reads.connect`, and the alerts it raises go to the catalog's database (`alerts.py`). Only the lease
holder ticks, so a rule is evaluated by one daemon at a time; an alert is unique there, so even two
holders at once (one stalled past its lease) raise it once.

The table lags each daemon by its sink's `settle` and `every`; a call that lands late still counts
toward its own window, as the rules look at the previous window for six hours after it ends.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from spendwatch.fleet import alerts
from spendwatch.fleet.reads import connect
from spendwatch.fleet.settings import FleetConfig
from spendwatch.rules.alerts import Send
from spendwatch.rules.anomaly import MAX_EPISODE_BUCKETS
from spendwatch.rules.budget import windows_to_check
from spendwatch.rules.config import Rule, RulesConfig
from spendwatch.rules.evaluate import evaluate

logger = logging.getLogger("spendwatch.fleet")


def looks_back_to(rule: Rule, now: datetime, config: RulesConfig) -> datetime:
    """The earliest start of a call the rule's evaluation at `now` can read: the days to plan."""
    if rule.kind == "budget":
        return windows_to_check(rule, now, config)[0].start
    return now - config.settle - rule.baseline - (MAX_EPISODE_BUCKETS + 2) * rule.bucket


class FleetRules:
    def __init__(self, settings: FleetConfig, config: RulesConfig, engine: Engine, daemon: str, send: Send) -> None:
        self.settings = settings
        self.config = config
        self.engine = engine
        self.daemon = daemon
        self.send = send
        self.rules = config.of_scope("fleet")
        self.evaluations = 0
        self.alerts_raised = 0
        self.deliveries = 0

    def tick(self, rule: Rule, now: datetime, table) -> list[int]:
        """Evaluate `rule` at `now` over the fleet's calls, record what it found; the new alerts' ids."""
        import pyarrow as pa

        extra = {}
        if rule.kind == "anomaly":  # a lasting spike alerts once: the rule reads the alerts it raised
            raised = alerts.alerts_of(self.engine, rule=rule.name)
            extra["alerts"] = pa.table(
                {
                    "rule": pa.array([row["rule"] for row in raised], pa.string()),
                    "kind": pa.array([row["kind"] for row in raised], pa.string()),
                    "group_value": pa.array([row["group_value"] for row in raised], pa.string()),
                    "window_start": pa.array([row["window_start"] for row in raised], pa.timestamp("us", tz="UTC")),
                }
            )
        con = connect(self.settings, looks_back_to(rule, now, self.config), table=table, extra=extra)
        try:

            def query(sql: str, params) -> list[tuple]:
                return con.execute(sql, list(params)).fetchall()

            findings = evaluate(rule, now, self.config, query)
            # while the connection is open: a new budget alert's message reads its top spenders
            new = alerts.record(self.engine, findings, now, self.daemon)
        finally:
            con.close()
            self.evaluations += 1
        self.alerts_raised += len(new)
        if new:
            logger.info("fleet rule %r raised %d alert(s)", rule.name, len(new))
        return new

    def deliver(self, now: datetime) -> int:
        delivered = alerts.deliver_due(
            self.engine, self.config.notifiers, now, self.send, self._retry_base, sender=self.daemon
        )
        self.deliveries += delivered
        return delivered

    def _retry_base(self, rule_name: str) -> timedelta:
        for rule in self.rules:
            if rule.name == rule_name:
                return rule.every
        return timedelta(minutes=1)
