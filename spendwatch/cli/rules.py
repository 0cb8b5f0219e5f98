"""Rules and what they raise: `rules check|run`, `alerts`, `notify test`."""

from __future__ import annotations

import sys

import click

from spendwatch.cli.options import config_from, database, output_format, since
from spendwatch.errors import UserError


@click.group(help="Budget, anomaly and key rules.")
def rules() -> None:
    pass


@rules.command(help="Validate the rules in the config file.")
@click.option("--config", help="the TOML config (default $SPENDWATCH_CONFIG or $XDG_CONFIG_HOME/...)")
def check(config: str | None) -> int:
    settings = config_from(config=config)
    found = settings.rules
    click.echo(
        f"{settings.config}: {len(found.rules)} rule(s), {len(found.notifiers)} notifier(s), "
        f"{len(found.keys)} key name(s): ok"
    )
    return 0


@rules.command("run", help="Evaluate every rule once and print what fires.")
@database
@click.option("--dry-run", is_flag=True, help="send and write nothing")
@click.option("--now", help="evaluate as of this ISO 8601 time (default: now)")
def run_rules(db: str | None, config: str | None, dry_run: bool, now: str | None) -> int:
    from spendwatch.reads import query, running_daemon
    from spendwatch.rules.once import parse_now, record_once, would_fire

    settings = config_from(db=db, config=config)
    moment = parse_now(now)
    if dry_run:

        def run(sql: str, params) -> list[tuple]:
            return [tuple(row) for row in query(settings.db, sql, list(params))[1]]

        findings = would_fire(run, settings.rules, moment)
        if not findings:
            click.echo("nothing fires")
        for finding in findings:
            group = finding.group_value or "-"
            click.echo(f"would fire: {finding.rule.name}\t{group}\t{finding.threshold:.0%}\t{finding.title}")
            click.echo("  " + finding.text().replace("\n", "\n  "))
        return 0
    if running_daemon(settings.db) is not None:
        raise UserError("spendwatch up is running on this database and evaluates the rules itself; use --dry-run")
    from spendwatch.collector.maintenance import open_for_writing

    con = open_for_writing(settings.db)
    try:
        fired = record_once(con, settings.rules, moment)
    finally:
        con.close()
    for rule, group_value, threshold, state, title in fired:
        click.echo(f"{rule}\t{group_value or '-'}\t{threshold:.0%}\t{state}\t{title}")
    if not fired:
        click.echo("nothing fired")
    return 0


@click.command(help="Alerts raised, with their delivery state.")
@database
@output_format
@click.option("--since", "period", default="7d", help="raised within this long ago (e.g. 7d; 'all')")
def alerts(db: str | None, config: str | None, output: str, period: str) -> int:
    from spendwatch.output import write_rows
    from spendwatch.reads import query
    from spendwatch.rules.alerts import alerts_sql

    sql, params = alerts_sql(since(period))
    columns, rows = query(config_from(db=db, config=config).db, sql, params)
    write_rows(sys.stdout, columns, rows, output)
    return 0


@click.group(help="Notifiers.")
def notify() -> None:
    pass


@notify.command("test", help="Send a test message to one notifier.")
@click.argument("name")
@click.option("--config", help="the TOML config")
def notify_test(name: str, config: str | None) -> int:
    from spendwatch.rules.alerts import apprise_send

    settings = config_from(config=config)
    urls = settings.rules.notifiers.get(name)
    if urls is None:
        known = ", ".join(sorted(settings.rules.notifiers)) or "none are defined"
        raise UserError(f"no notifier named {name!r} in {settings.config} ({known})")
    error = apprise_send(urls, "spendwatch test", f"A test message from spendwatch to the notifier {name!r}.")
    if error is not None:
        raise UserError(f"{name}: delivery failed: {error}")
    click.echo(f"sent a test message to {name}")
    return 0


COMMANDS = (rules, alerts, notify)
