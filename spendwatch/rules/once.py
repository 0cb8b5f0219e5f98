"""Evaluating every rule once, outside the daemon's schedule: what `spendwatch rules run` does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from spendwatch.errors import UserError
from spendwatch.rules.config import RulesConfig
from spendwatch.rules.finding import Finding

Run = Callable[[str, Any], list[tuple]]


def parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"--now: expected an ISO 8601 time such as 2026-11-25T09:00:00Z, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def would_fire(run: Run, config: RulesConfig, now: datetime) -> list[Finding]:
    """What every local rule finds at `now`, through `run(sql, params)`; nothing is recorded or sent."""
    from spendwatch.rules.evaluate import evaluate

    return [finding for rule in config.of_scope("local") for finding in evaluate(rule, now, config, run)]


def record_once(con: Any, config: RulesConfig, now: datetime) -> list[tuple]:
    """Tick every rule at `now` on a writable connection: alerts recorded and delivered as the daemon would.
    Returns (rule, group value, threshold, state, title) of each new alert."""
    from spendwatch.rules.engine import RulesEngine

    engine = RulesEngine(con, config, clock=lambda: now)
    new = [alert_id for rule in engine.local_rules for alert_id in engine.tick(rule)]
    return con.execute(
        "SELECT rule, group_value, threshold, state, title FROM alerts WHERE id IN (SELECT unnest(?))", [new]
    ).fetchall()
