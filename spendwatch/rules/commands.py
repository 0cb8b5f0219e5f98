"""`spendwatch rules check|run`, `spendwatch alerts` and `spendwatch notify test`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from spendwatch.config import Config
from spendwatch.errors import UserError

ALERTS_SQL = """
    SELECT id, created_at, rule, group_value, threshold, round(value, 4) AS value, limit_value, state, attempts,
           delivered_at, last_error, title
    FROM alerts {where}
    ORDER BY created_at DESC, id DESC
"""


def check(config: Config, out: TextIO) -> int:
    rules = config.rules
    print(
        f"{config.config}: {len(rules.rules)} rule(s), {len(rules.notifiers)} notifier(s), "
        f"{len(rules.keys)} key name(s): ok",
        file=out,
    )
    return 0


def parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"--now: expected an ISO 8601 time such as 2026-11-25T09:00:00Z, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run_once(config: Config, now: datetime, dry_run: bool, out: TextIO) -> int:
    """Evaluate every rule once at `now` and print what fires; unless dry, record and deliver."""
    from spendwatch.reads import query, running_daemon
    from spendwatch.rules.evaluate import evaluate

    if not dry_run and running_daemon(config.db) is not None:
        raise UserError("spendwatch up is running on this database and evaluates the rules itself; use --dry-run")
    if dry_run:

        def run(sql: str, params: Any) -> list[tuple]:
            return [tuple(row) for row in query(config.db, sql, list(params))[1]]

        findings = [f for rule in config.rules.rules for f in evaluate(rule, now, config.rules, run)]
        _print_findings(findings, out, "would fire")
        return 0
    from spendwatch.collector.maintenance import open_for_writing
    from spendwatch.rules.engine import RulesEngine

    con = open_for_writing(config.db)
    try:
        engine = RulesEngine(con, config.rules, clock=lambda: now)
        new = [alert_id for rule in config.rules.rules for alert_id in engine.tick(rule)]
        rows = con.execute(
            "SELECT rule, group_value, threshold, state, title FROM alerts WHERE id IN (SELECT unnest(?))", [new]
        ).fetchall()
    finally:
        con.close()
    for rule, group_value, threshold, state, title in rows:
        print(f"{rule}\t{group_value or '-'}\t{threshold:.0%}\t{state}\t{title}", file=out)
    if not rows:
        print("nothing fired", file=out)
    return 0


def _print_findings(findings: list, out: TextIO, verb: str) -> None:
    if not findings:
        print("nothing fires", file=out)
    for finding in findings:
        print(
            f"{verb}: {finding.rule.name}\t{finding.group_value or '-'}\t{finding.threshold:.0%}\t{finding.title}",
            file=out,
        )
        print("  " + finding.text().replace("\n", "\n  "), file=out)


def list_alerts(db: Path, since: Any) -> tuple[list[str], list[list[Any]]]:
    from spendwatch.reads import query

    if since is None:
        return query(db, ALERTS_SQL.format(where=""))
    return query(db, ALERTS_SQL.format(where="WHERE created_at >= ?"), [datetime.now(UTC) - since])


def notify_test(config: Config, name: str, out: TextIO) -> int:
    from spendwatch.rules.alerts import apprise_send

    urls = config.rules.notifiers.get(name)
    if urls is None:
        known = ", ".join(sorted(config.rules.notifiers)) or "none are defined"
        raise UserError(f"no notifier named {name!r} in {config.config} ({known})")
    error = apprise_send(urls, "spendwatch test", f"A test message from spendwatch to the notifier {name!r}.")
    if error is not None:
        raise UserError(f"{name}: delivery failed: {error}")
    print(f"sent a test message to {name}", file=out)
    return 0


KEY_INVENTORY_SQL = """
    WITH seen AS (
        SELECT api_key_id, min(start_time) AS first_seen FROM llm_calls
        WHERE api_key_id IS NOT NULL GROUP BY api_key_id
    )
    SELECT c.api_key_id, any_value(c.api_key_hint) AS hint,
           string_agg(DISTINCT c.provider, ',' ORDER BY c.provider) AS providers,
           any_value(seen.first_seen) AS first_seen, max(c.start_time) AS last_seen,
           string_agg(DISTINCT c.service_name, ',' ORDER BY c.service_name) AS services, count(*) AS calls,
           round(sum(c.cost_usd), 6) AS cost_usd
    FROM llm_calls AS c JOIN seen USING (api_key_id)
    WHERE c.start_time >= ?
    GROUP BY c.api_key_id
    ORDER BY cost_usd DESC NULLS LAST, calls DESC
"""


def key_inventory(config: Config, since: Any) -> tuple[list[str], list[list[Any]]]:
    """Every key seen since `since`: its name, hint, providers, first and last call, services, calls, spend."""
    from spendwatch.reads import query

    start = datetime(1970, 1, 1, tzinfo=UTC) if since is None else datetime.now(UTC) - since
    columns, rows = query(config.db, KEY_INVENTORY_SQL, [start])
    retired = {key for rule in config.rules.rules if rule.kind == "keys" for key in rule.retired}
    named = []
    for row in rows:
        key = row[0]
        named.append([key, config.rules.keys.get(key, ""), *row[1:], "retired, in use" if key in retired else ""])
    return [columns[0], "name", *columns[1:], "status"], named
