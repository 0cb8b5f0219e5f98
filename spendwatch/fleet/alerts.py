"""The fleet rules' alerts, in the catalog's database: raised once for the whole fleet, delivered once.

The same promise as a daemon's own alerts (rules/alerts.py), kept where every daemon sees it: an alert
is `(rule, group, window, threshold)`, unique in `spendwatch_fleet_alerts`, so a second evaluation, a
second holder after a failover, or a restart finds it recorded and raises nothing. It is written before
it is sent. Each delivery is claimed before it is sent (`claimed_until`, on the database's clock), so two
daemons that both believe they hold the lease cannot both send it; a sender that dies between sending and
recording leaves a claim that expires, and the next holder sends again — the one case of a message
arriving twice, as for a daemon's own alerts killed at that moment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from spendwatch.fleet.records import ALERTS, DELIVERIES, database_now, loaded_time, stored_time
from spendwatch.rules.alerts import GIVE_UP_AFTER, Send, alert_states, retry_delay
from spendwatch.rules.finding import Finding

logger = logging.getLogger("spendwatch.fleet")

CLAIM_SECONDS = 120.0  # longer than any delivery takes


def record(engine: Engine, findings: Iterable[Finding], now: datetime, raised_by: str) -> list[int]:
    """Record the findings no daemon has recorded yet; the ids of the new alerts to deliver."""
    new_ids = []
    for finding, state in alert_states(findings):
        identity = and_(
            ALERTS.c.rule == finding.rule.name,
            ALERTS.c.group_value == finding.group_value,
            ALERTS.c.window_start == stored_time(finding.window_key),
            ALERTS.c.threshold == finding.threshold,
        )
        with engine.begin() as conn:
            if conn.execute(select(ALERTS.c.id).where(identity)).first() is not None:
                continue  # found again: its alert exists
        try:
            with engine.begin() as conn:
                alert_id = conn.execute(
                    insert(ALERTS)
                    .values(
                        rule=finding.rule.name,
                        kind=finding.kind,
                        group_by=finding.rule.group_label,
                        group_value=finding.group_value,
                        window_start=stored_time(finding.window_key),
                        window_end=stored_time(finding.window_end),
                        threshold=finding.threshold,
                        value=finding.value,
                        limit_value=finding.limit,
                        title=finding.title,
                        message=finding.text(),
                        created_at=stored_time(now),
                        state=state,
                        raised_by=raised_by,
                    )
                    .returning(ALERTS.c.id)
                ).scalar_one()
                if state == "pending":
                    for notifier in finding.rule.notify:
                        conn.execute(insert(DELIVERIES).values(alert_id=alert_id, notifier=notifier, attempts=0))
        except IntegrityError:
            continue  # another daemon recorded it between the look and the insert
        if state == "pending":
            new_ids.append(alert_id)
    return new_ids


def deliver_due(
    engine: Engine,
    notifiers: dict[str, tuple[str, ...]],
    now: datetime,
    send: Send,
    retry_base: Callable[[str], timedelta],
    sender: str,
) -> int:
    """Claim and send every fleet delivery that is due; how many succeeded."""
    with engine.begin() as conn:
        due = conn.execute(
            select(
                DELIVERIES.c.alert_id,
                DELIVERIES.c.notifier,
                DELIVERIES.c.attempts,
                ALERTS.c.rule,
                ALERTS.c.title,
                ALERTS.c.message,
                ALERTS.c.created_at,
            )
            .join(ALERTS, ALERTS.c.id == DELIVERIES.c.alert_id)
            .where(
                DELIVERIES.c.delivered_at.is_(None),
                DELIVERIES.c.gave_up_at.is_(None),
                func.coalesce(DELIVERIES.c.next_attempt_at, ALERTS.c.created_at) <= stored_time(now),
            )
            .order_by(DELIVERIES.c.alert_id)
        ).all()
    delivered = 0
    for alert_id, notifier, attempts, rule, title, message, created_at in due:
        this = and_(DELIVERIES.c.alert_id == alert_id, DELIVERIES.c.notifier == notifier)
        with engine.begin() as conn:
            clock = database_now(conn)
            claimed = conn.execute(
                update(DELIVERIES)
                .where(
                    this,
                    DELIVERIES.c.delivered_at.is_(None),
                    or_(DELIVERIES.c.claimed_until.is_(None), DELIVERIES.c.claimed_until < clock),
                )
                .values(claimed_by=sender, claimed_until=clock + CLAIM_SECONDS)
            ).rowcount
        if not claimed:
            continue
        urls = notifiers.get(notifier)
        error = "the notifier is not in this daemon's config" if urls is None else send(urls, title, message)
        attempts += 1
        values: dict[str, Any] = {"attempts": attempts, "claimed_until": None}
        if error is None:
            delivered += 1
            values.update(delivered_at=stored_time(now), last_error=None)
        else:
            gave_up = now - (loaded_time(created_at) or now) >= GIVE_UP_AFTER
            values.update(
                last_error=error,
                next_attempt_at=stored_time(now + retry_delay(retry_base(rule), attempts)),
                gave_up_at=stored_time(now) if gave_up else None,
            )
            log = logger.error if gave_up else logger.warning
            log("fleet alert %d (%s) to %s: %s%s", alert_id, rule, notifier, error, "; giving up" if gave_up else "")
        with engine.begin() as conn:
            conn.execute(update(DELIVERIES).where(this).values(**values))
            _summarise(conn, alert_id)
    return delivered


def _summarise(conn, alert_id: int) -> None:
    rows = conn.execute(
        select(DELIVERIES.c.delivered_at, DELIVERIES.c.gave_up_at).where(DELIVERIES.c.alert_id == alert_id)
    ).all()
    if all(delivered is not None for delivered, _ in rows):
        state = "delivered"
    elif any(gave_up is not None for _, gave_up in rows):
        state = "failed"
    else:
        state = "pending"
    conn.execute(update(ALERTS).where(ALERTS.c.id == alert_id).values(state=state))


def alerts_of(engine: Engine, rule: str | None = None, since: datetime | None = None) -> list[dict[str, Any]]:
    """The fleet's alerts (of one rule, raised since a time), newest first."""
    query = select(ALERTS).order_by(ALERTS.c.created_at.desc(), ALERTS.c.id.desc())
    if rule is not None:
        query = query.where(ALERTS.c.rule == rule)
    if since is not None:
        query = query.where(ALERTS.c.created_at >= stored_time(since))
    with engine.begin() as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
    for row in rows:
        for name in ("window_start", "window_end", "created_at"):
            row[name] = loaded_time(row[name])
    return rows
