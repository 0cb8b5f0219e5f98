"""The providers' bills: `billing import`, `billing keys`, and `reconcile` — billed against observed."""

from __future__ import annotations

import sys

import click

from spendwatch.cli.options import config_from, database, since
from spendwatch.errors import UserError


@click.group(help="The providers' bills: import them, map their keys.")
def billing() -> None:
    pass


@billing.command("import", help="Import the providers' usage and costs (only new and still-open buckets).")
@database
@click.option("--since", "period", help="import again from this long ago, e.g. 7d (default: where the last one ended)")
def import_bills(db: str | None, config: str | None, period: str | None) -> int:
    from spendwatch.output import write_rows
    from spendwatch.reads import daemon_job

    settings = config_from(db=db, config=config)
    window = None
    if period is not None:
        window = since(period)
        if window is None:
            raise UserError("--since: expected a duration such as 30d (the providers keep a limited history)")
    payload = {"since_seconds": window.total_seconds() if window else None}
    answer = daemon_job(settings.db, "billing-import", payload)
    if answer is None:  # no daemon: import on a connection of our own
        answer = _import_here(settings, window)
    if answer["rows"]:
        write_rows(sys.stdout, answer["columns"], answer["rows"], "table")
    if answer["errors"]:
        raise UserError("\n".join(answer["errors"]))
    return 0


def _import_here(settings, window):
    from spendwatch.billing.importer import run_import, summary
    from spendwatch.collector.maintenance import open_for_writing
    from spendwatch.collector.pricing import Pricer

    if not settings.billing.providers:
        raise UserError(
            "no admin key to import a bill with: set OPENAI_ADMIN_KEY or ANTHROPIC_ADMIN_KEY, "
            f"or admin_key under [billing.openai] / [billing.anthropic] in {settings.config}"
        )
    con = open_for_writing(settings.db)
    try:
        reports = run_import(
            settings.billing, lambda work: work(con), Pricer(settings.prices).price_total, since=window
        )
    finally:
        con.close()
    return summary(reports)


COMMANDS = (billing,)
