"""Reading the stored calls: `query`, `report`, `top`, `explain`."""

from __future__ import annotations

import sys
from datetime import timedelta
from functools import partial

import click

from spendwatch.cli.options import config_from, database, output_format, since
from spendwatch.errors import UserError


def fleet_settings(config):
    """`[fleet]` of the config, for `--fleet`: the shared table every daemon appends to."""
    if config.fleet is None:
        raise UserError(f"--fleet: {config.config} has no [fleet] section (the shared table's catalog and warehouse)")
    return config.fleet


fleet_option = click.option(
    "--fleet", is_flag=True, help="over the fleet's shared table (every daemon's calls; [fleet] in the config)"
)


@click.command(help="Run read-only SQL over the stored calls (llm_calls).")
@database
@output_format
@fleet_option
@click.argument("sql")
def query(db: str | None, config: str | None, output: str, fleet: bool, sql: str) -> int:
    from spendwatch.output import write_rows

    settings = config_from(db=db, config=config)
    if fleet:
        from spendwatch.collector.readonly import MAX_RESULT_ROWS, check_read_only
        from spendwatch.fleet.reads import query as fleet_query

        check_read_only(sql)
        columns, rows, truncated = fleet_query(fleet_settings(settings), sql, max_rows=MAX_RESULT_ROWS)
        if truncated:
            click.echo(
                f"spendwatch: the result was cut at {len(rows):,} rows (the limit of what one query returns); "
                "narrow it with WHERE, LIMIT or GROUP BY",
                err=True,
            )
    else:
        from spendwatch.reads import query as run_query

        columns, rows = run_query(settings.db, sql)
    write_rows(sys.stdout, columns, rows, output)
    return 0


@click.command(help="Spend, tokens, calls, errors and cache hits per group.")
@database
@output_format
@click.option("--since", "period", default="7d", help="calls started within this long ago (e.g. 7d, 24h; 'all')")
@click.option("--by", default="provider,model", help="groups: provider, model, api_key_id, service_name, day")
@fleet_option
def report(db: str | None, config: str | None, output: str, period: str, by: str, fleet: bool) -> int:
    from spendwatch.report import build_report, parse_groups, write_csv, write_json

    settings, groups, window = config_from(db=db, config=config), parse_groups(by), since(period)
    connection = None
    if fleet:
        connection = _fleet_connection(settings, window, output == "table")
        from spendwatch.fleet.reads import query_on

        run_query = query_on(connection)
    else:
        from spendwatch.reads import Reader

        connection = run_query = Reader(settings.db)
    try:
        if output == "table":
            from spendwatch.report_table import print_report

            print_report(sys.stdout, settings, groups, window, run_query, "fleet" if fleet else "local")
        else:
            built = build_report(run_query, groups, window)
            (write_json if output == "json" else write_csv)(sys.stdout, built)
    finally:
        if connection is not None:
            connection.close()
    return 0


def _fleet_connection(settings, window: timedelta | None, with_budgets: bool):
    """The fleet's calls the report reads: of the period, and of the fleet budgets' windows for a table."""
    from datetime import UTC, datetime

    from spendwatch.fleet.reads import connect
    from spendwatch.fleet.table import FleetUnavailable
    from spendwatch.rules.budget import windows_to_check

    now = datetime.now(UTC)
    starts = [None if window is None else now - window]
    if with_budgets:
        for rule in settings.rules.of_scope("fleet"):
            if rule.kind == "budget":
                starts.append(windows_to_check(rule, now, settings.rules)[0].start)
    earliest = None if None in starts else min(starts)
    try:
        return connect(fleet_settings(settings), earliest)
    except FleetUnavailable as error:
        raise UserError(str(error)) from None


@click.command(help="A live view of the last minutes' spend by key and model.")
@database
@click.option("--minutes", type=int, default=15, help="how far back each frame looks (default 15)")
@click.option("--by", default="api_key_id,model", help="groups, as for report (default api_key_id,model)")
@click.option("--interval", type=float, default=2.0, help="seconds between frames (default 2)")
@click.option("--once", is_flag=True, help="print one frame and exit")
def top(db: str | None, config: str | None, minutes: int, by: str, interval: float, once: bool) -> int:
    from spendwatch.report import parse_groups
    from spendwatch.top import run_top

    if minutes <= 0 or interval <= 0:
        raise UserError("--minutes and --interval: expected numbers above 0")
    groups = parse_groups(by)
    if not groups:
        raise UserError("--by: name at least one group")
    settings = config_from(db=db, config=config)
    return run_top(sys.stdout, settings, groups, timedelta(minutes=minutes), interval, once)


@click.command(help="A trace's model-call spans: which were merged, by which rule.")
@database
@output_format
@click.argument("trace_id")
def explain(db: str | None, config: str | None, output: str, trace_id: str) -> int:
    from spendwatch.explain import explain as explain_trace
    from spendwatch.explain import summary
    from spendwatch.output import write_rows
    from spendwatch.reads import query as run_query

    columns, rows = explain_trace(partial(run_query, config_from(db=db, config=config).db), trace_id)
    write_rows(sys.stdout, columns, rows, output)
    if output == "table":
        click.echo("\n" + summary(columns, rows))
    return 0


COMMANDS = (query, report, top, explain)
