"""Prices of the stored calls: `prices missing`, `reprice`."""

from __future__ import annotations

import sys

import click

from spendwatch.cli.options import config_from, database, output_format, since


@click.group(help="Prices of stored calls.")
def prices() -> None:
    pass


@prices.command(help="Models with calls but no known price.")
@database
@output_format
def missing(db: str | None, config: str | None, output: str) -> int:
    from spendwatch.collector.maintenance import MISSING_PRICES_SQL
    from spendwatch.output import write_rows
    from spendwatch.reads import query

    columns, rows = query(config_from(db=db, config=config).db, MISSING_PRICES_SQL)
    write_rows(sys.stdout, columns, rows, output)
    return 0


@click.command(help="Recompute stored costs after a price override or update.")
@database
@click.option("--since", "period", default="30d", help="calls started within this long ago (e.g. 30d, 12h; 'all')")
def reprice(db: str | None, config: str | None, period: str) -> int:
    from spendwatch.collector.maintenance import reprice as reprice_calls

    settings = config_from(db=db, config=config)
    changed, total = reprice_calls(settings.db, settings.pricer(), since(period), progress=sys.stderr)
    click.echo(f"repriced {total} calls: {changed} changed cost")
    return 0


COMMANDS = (prices, reprice)
