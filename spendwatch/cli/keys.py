"""`keys`: the key inventory, and `keys id`: the id spendwatch gives a key you hold."""

from __future__ import annotations

import sys

import click

from spendwatch.cli.options import config_from, database, output_format, since


@click.group(invoke_without_command=True, help="The key inventory (or `keys id`: the id of a key you hold).")
@database
@output_format
@click.option("--since", "period", default="30d", help="keys used within this long ago (e.g. 30d; 'all')")
@click.pass_context
def keys(context: click.Context, db: str | None, config: str | None, output: str, period: str) -> int | None:
    if context.invoked_subcommand is not None:
        return None
    from spendwatch.output import write_rows
    from spendwatch.reads import Reader
    from spendwatch.rules.keys import key_inventory

    settings = config_from(db=db, config=config)
    with Reader(settings.db) as reader:
        columns, rows = key_inventory(reader, settings.rules, since(period))
    write_rows(sys.stdout, columns, rows, output)
    return 0


@keys.command("id", help="Print the id spendwatch gives an API key (read from stdin).")
def key_id() -> int:
    """Reads the key from stdin, so that it never appears in the shell history or the process list."""
    from spendwatch.instrumentation.keys import api_key_id

    key = sys.stdin.readline().strip()
    if not key:
        click.echo("spendwatch keys id: no key on stdin", err=True)
        return 2
    click.echo(api_key_id(key))
    return 0


COMMANDS = (keys,)
