"""The providers' bills: `billing import`, `billing keys`, and `reconcile` — billed against observed."""

from __future__ import annotations

import sys

import click

from spendwatch.cli.options import config_from, database, output_format, since
from spendwatch.errors import UserError


@click.group(help="The providers' bills: import them, map their keys.")
def billing() -> None:
    pass


@billing.command("import", help="Import the providers' usage and costs (only new and still-open buckets).")
@database
@output_format
@click.option("--since", "period", help="import again from this long ago, e.g. 7d (default: where the last one ended)")
def import_bills(db: str | None, config: str | None, output: str, period: str | None) -> int:
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
    if answer["rows"] or output != "table":
        write_rows(sys.stdout, answer["columns"], answer["rows"], output)
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


@billing.command("keys", help="The providers' keys: which spendwatch key each is, and the unmatched ones.")
@database
@output_format
@click.option("--since", "period", default="30d", help="billed or observed within this long ago (e.g. 30d; 'all')")
def billing_keys(db: str | None, config: str | None, output: str, period: str) -> int:
    from spendwatch.billing.reconcile import KEY_COLUMNS
    from spendwatch.output import write_rows

    settings = config_from(db=db, config=config)
    result = _reconcile(settings, period)
    columns = [*KEY_COLUMNS, "status"]
    rows = [[*key.values(), _key_status(key)] for key in result.keys]
    write_rows(sys.stdout, columns, rows, output)
    return 0


@click.command(help="Billed against observed, per day, provider, model and key: capture rate and gap.")
@database
@output_format
@click.option("--since", "period", default="7d", help="UTC days from this long ago (e.g. 7d, 30d; 'all')")
def reconcile(db: str | None, config: str | None, output: str, period: str) -> int:
    import json

    from spendwatch.billing.reconcile import ROW_COLUMNS, document
    from spendwatch.output import write_rows

    settings = config_from(db=db, config=config)
    result = _reconcile(settings, period)
    if output == "json":
        json.dump(document(result), sys.stdout)
        sys.stdout.write("\n")
    elif output == "csv":
        missing = {(key["provider"], key["provider_key_id"]) for key in result.missing_keys}
        rows = [[*row.values(), (row["provider"], row["provider_key_id"]) in missing] for row in result.rows]
        write_rows(sys.stdout, [*ROW_COLUMNS, "never_observed"], rows, "csv")
    else:
        _print_table(result, settings.rules.keys)
    return 0


def _reconcile(settings, period: str):
    from datetime import UTC, datetime

    from spendwatch.billing.reconcile import Period
    from spendwatch.billing.reconcile import reconcile as reconcile_bill
    from spendwatch.reads import query

    def run(sql: str, params) -> list:
        return query(settings.db, sql, list(params))[1]

    return reconcile_bill(run, Period.ending(datetime.now(UTC), since(period)), settings.rules.billed_keys)


def _key_status(key: dict) -> str:
    if key["billed_tokens"] and not key["observed_calls"]:
        return "billed, never observed"
    if key["api_key_id"] is None:
        return "ambiguous hint: map it in [billing] keys" if key["matched_by"] == "ambiguous hint" else "unmatched"
    return f"matched by {key['matched_by']}"


def _print_table(result, names: dict[str, str]) -> None:
    from spendwatch.money import usd
    from spendwatch.output import write_rows

    def share(value) -> str:
        return "" if value is None else f"{value:.1%}"

    def key(row: dict) -> str:
        if row["api_key_id"]:
            return names.get(row["api_key_id"], row["api_key_id"])
        return row["provider_key_id"] or "(no key)"

    out = sys.stdout
    out.write(
        f"Billed against observed, {result.period.since:%Y-%m-%d} to {result.period.until:%Y-%m-%d %H:%M} UTC\n\n"
    )
    if result.missing_keys:
        out.write("Keys with billed usage and no instrumented call (a service nobody instrumented, or a leaked key):\n")
        for item in result.missing_keys:
            label = " ".join(part for part in (item["name"], item["redacted_value"]) if part)
            out.write(
                f"  {item['provider']} {item['provider_key_id']} ({label}): {usd(item['billed_cost_usd'])} billed, "
                f"{item['billed_tokens']:,} tokens, {item['first_day']} to {item['last_day']}\n"
            )
        out.write("\n")
    columns = ["day", "provider", "model", "key", "billed tokens", "observed tokens", "billed", "observed",
               "capture", "gap"]  # fmt: skip
    rows = [
        [row["day"], row["provider"], row["model"] or "", key(row),
         row["billed_input_tokens"] + row["billed_output_tokens"],
         row["observed_input_tokens"] + row["observed_output_tokens"],
         usd(row["billed_cost_usd"], "—"), usd(row["observed_cost_usd"]), share(row["capture_rate"]),
         usd(row["gap_usd"], "—")]
        for row in result.rows
    ]  # fmt: skip
    if rows:
        write_rows(out, columns, rows, "table")
    else:
        out.write("Nothing billed or observed in this period (has `spendwatch billing import` run?).\n")
    for total in result.totals:
        provider_bill = total["provider_cost_usd"]
        out.write(
            f"\n{total['provider']}: {usd(total['billed_cost_usd'])} billed"
            + (f" ({usd(provider_bill)} on the provider's own cost report)" if provider_bill is not None else "")
            + f", {usd(total['observed_cost_usd'])} observed over {total['observed_calls']:,} calls: capture "
            f"{share(total['capture_rate']) or '—'}, gap {usd(total['gap_usd'])}"
            + (
                f"; {total['unpriced_groups']} billed group(s) spendwatch cannot price"
                if total["unpriced_groups"]
                else ""
            )
        )
    out.write("\n" if result.totals else "")


COMMANDS = (billing, reconcile)
