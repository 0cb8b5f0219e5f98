"""Alerts: recorded first, delivered after, retried until delivered or a day old.

A finding becomes an alert once: `(rule, group, window, threshold)` is unique in the `alerts` table, so
a later tick, a second evaluation or a restart cannot fire it again. When one tick crosses several
thresholds of the same group at once, only the highest is sent; the others are recorded as superseded.
Each notifier of an alert is delivered to on its own: a notifier that fails is retried with backoff on
later ticks without sending again to those that succeeded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import duckdb

from spendwatch.rules.config import mask_url
from spendwatch.rules.finding import Finding

logger = logging.getLogger("spendwatch.rules")

GIVE_UP_AFTER = timedelta(days=1)
MAX_BACKOFF = timedelta(hours=1)
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)

Send = Callable[[tuple[str, ...], str, str], str | None]  # (urls, title, body) -> error or None


def alert_states(findings: Iterable[Finding]) -> list[tuple[Finding, str]]:
    """Each finding with the state its alert starts in: `pending` (to send), or `superseded` by a higher
    threshold of the same group crossed in the same tick."""
    findings = list(findings)

    def key(finding: Finding) -> tuple:
        return (finding.rule.name, finding.kind, finding.group_value, finding.window_key)

    highest: dict[tuple, Finding] = {}
    for finding in findings:
        if key(finding) not in highest or finding.threshold > highest[key(finding)].threshold:
            highest[key(finding)] = finding
    return [(finding, "pending" if highest[key(finding)] is finding else "superseded") for finding in findings]


def retry_delay(retry_base: timedelta, attempts: int) -> timedelta:
    """How long after its `attempts`-th failure a delivery is tried again."""
    return min(retry_base * 2 ** (attempts - 1), MAX_BACKOFF)


def record(con: duckdb.DuckDBPyConnection, findings: Iterable[Finding], now: datetime) -> list[int]:
    """Insert the findings not yet recorded; returns the ids of the new alerts to deliver."""
    new_ids = []
    for finding, state in alert_states(findings):
        recorded = con.execute(
            "SELECT 1 FROM alerts WHERE rule = ? AND group_value = ? AND window_start = ? AND threshold = ?",
            [finding.rule.name, finding.group_value, finding.window_key, finding.threshold],
        ).fetchone()
        if recorded is not None:
            continue  # found again on a later tick: its alert exists
        row = con.execute(
            """INSERT INTO alerts (rule, kind, group_by, group_value, window_start, window_end, threshold, value,
                                   limit_value, title, message, created_at, state)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT DO NOTHING RETURNING id""",
            [
                finding.rule.name,
                finding.kind,
                finding.rule.group_label,
                finding.group_value,
                finding.window_key,
                finding.window_end,
                finding.threshold,
                finding.value,
                finding.limit,
                finding.title,
                finding.text(),
                now,
                state,
            ],
        ).fetchone()
        if row is None or state != "pending":
            continue
        (alert_id,) = row
        for notifier in finding.rule.notify:
            con.execute("INSERT INTO alert_deliveries (alert_id, notifier) VALUES (?, ?)", [alert_id, notifier])
        new_ids.append(alert_id)
    return new_ids


def deliver_due(
    con: duckdb.DuckDBPyConnection,
    notifiers: dict[str, tuple[str, ...]],
    now: datetime,
    send: Send,
    retry_base: Callable[[str], timedelta],
) -> int:
    """Send every delivery that is due; returns how many succeeded."""
    due = con.execute(
        """SELECT d.alert_id, d.notifier, d.attempts, a.rule, a.title, a.message, a.created_at
           FROM alert_deliveries AS d JOIN alerts AS a ON a.id = d.alert_id
           WHERE d.delivered_at IS NULL AND d.gave_up_at IS NULL AND coalesce(d.next_attempt_at, a.created_at) <= ?
           ORDER BY d.alert_id""",
        [now],
    ).fetchall()
    delivered = 0
    for alert_id, notifier, attempts, rule, title, message, created_at in due:
        urls = notifiers.get(notifier)
        error = "the notifier is no longer in the config" if urls is None else send(urls, title, message)
        attempts += 1
        if error is None:
            delivered += 1
            con.execute(
                "UPDATE alert_deliveries SET attempts = ?, delivered_at = ?, last_error = NULL "
                "WHERE alert_id = ? AND notifier = ?",
                [attempts, now, alert_id, notifier],
            )
        else:
            gave_up = now - created_at >= GIVE_UP_AFTER
            backoff = retry_delay(retry_base(rule), attempts)
            con.execute(
                "UPDATE alert_deliveries SET attempts = ?, last_error = ?, next_attempt_at = ?, gave_up_at = ? "
                "WHERE alert_id = ? AND notifier = ?",
                [attempts, error, now + backoff, now if gave_up else None, alert_id, notifier],
            )
            log = logger.error if gave_up else logger.warning
            log("alert %d (%s) to %s: %s%s", alert_id, rule, notifier, error, "; giving up" if gave_up else "")
        _summarise(con, alert_id)
    return delivered


def _summarise(con: duckdb.DuckDBPyConnection, alert_id: int) -> None:
    """The alert's own delivery columns, from its deliveries."""
    con.execute(
        """UPDATE alerts SET
               attempts = d.attempts, last_error = d.last_error, delivered_at = d.delivered_at, state = d.state
           FROM (SELECT sum(attempts) AS attempts, max(last_error) AS last_error,
                        CASE WHEN count(*) = count(delivered_at) THEN max(delivered_at) END AS delivered_at,
                        CASE WHEN count(*) = count(delivered_at) THEN 'delivered'
                             WHEN count(gave_up_at) > 0 THEN 'failed' ELSE 'pending' END AS state
                 FROM alert_deliveries WHERE alert_id = ?) AS d
           WHERE alerts.id = ?""",
        [alert_id, alert_id],
    )


def apprise_send(urls: tuple[str, ...], title: str, body: str) -> str | None:
    """Deliver through apprise; the error (URLs masked) or None."""
    import apprise

    notifier = apprise.Apprise()
    for url in urls:
        notifier.add(url)
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        ok = notifier.notify(title=title, body=body)
    if ok:
        return None
    text = captured.getvalue().strip().splitlines()
    reason = text[-1] if text else "apprise reported a failure"
    return _URL.sub(lambda match: mask_url(match.group(0)), reason)[:500]


ALERTS_SQL = """
    SELECT id, created_at, rule, group_value, threshold, round(value, 4) AS value, limit_value, state, attempts,
           delivered_at, last_error, title
    FROM alerts {where}
    ORDER BY created_at DESC, id DESC
"""


def alerts_sql(since: timedelta | None) -> tuple[str, list]:
    """The query `spendwatch alerts` runs: alerts raised within `since` (every one: None), newest first."""
    if since is None:
        return ALERTS_SQL.format(where=""), []
    return ALERTS_SQL.format(where="WHERE created_at >= ?"), [datetime.now(UTC) - since]
