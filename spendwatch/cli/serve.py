"""The daemon and what runs beside it: `up`, `ui`, `status`, `run`, `demo`."""

from __future__ import annotations

import json
import sys

import click

from spendwatch.cli.options import Choice, config_from, database


@click.command(help="Run the collector: receive OTLP, price and store LLM calls.")
@database
@click.option("--host", help="address to listen on (default 127.0.0.1)")
@click.option("--http-port", type=int, help="OTLP/HTTP port (default 4318)")
@click.option("--grpc-port", type=int, help="OTLP/gRPC port (default 4317)")
@click.option("--ui-port", type=int, help="the dashboard's port on 127.0.0.1 (default 4320; 0: any free port)")
@click.option("--no-ui", "ui", flag_value=False, default=None, help="serve no dashboard (also SPENDWATCH_UI=off)")
@click.option("--ingest-token", help="require this bearer token on OTLP (needed beyond loopback)")
@click.option("--metrics-endpoint", help="export the daemon's own counters over OTLP/HTTP to this URL")
@click.option("--metrics-port", type=int, help="also serve /metrics on this port of 127.0.0.1 (0: any free port)")
@click.option("--log-level", type=Choice(("debug", "info", "warning", "error")), default="info")
@click.option("--log-format", type=Choice(("plain", "json")), default="plain")
def up(log_level: str, log_format: str, **flags) -> int:
    from spendwatch.daemon import run
    from spendwatch.logs import configure_logging

    configure_logging(log_level, log_format)
    return run(config_from(**flags), reload=lambda: config_from(**flags))


@click.command(help="Print the dashboard's address (with its token) and open it in a browser.")
@database
@click.option("--no-open", is_flag=True, help="only print the address")
def ui(db: str | None, config: str | None, no_open: bool) -> int:
    from spendwatch.ui.opener import dashboard_address, open_in_browser

    address = dashboard_address(config_from(db=db, config=config).db)
    click.echo(address)
    if not no_open:
        open_in_browser(address)
    return 0


@click.command(help="Is a daemon running on this database, and what has it stored.")
@database
@click.option("--format", "output", type=Choice(("table", "json")), default="table")
def status(db: str | None, config: str | None, output: str) -> int:
    from spendwatch.reads import database_status

    report = database_status(config_from(db=db, config=config).db)
    if output == "json":
        click.echo(json.dumps(report))
    else:
        width = max(len(key) for key in report)
        for key, value in report.items():
            click.echo(f"{key.replace('_', ' '):<{width}}  {'' if value is None else value}")
    return 0


@click.command(
    help="Run a program under the instrumentation, reporting to the collector: spendwatch run [--endpoint URL] -- CMD",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option("--endpoint", help="OTLP endpoint (default: the running daemon's, else localhost:4317)")
@click.option("--db", help="find the daemon of this database (default as for `up`)")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run(endpoint: str | None, db: str | None, command: tuple[str, ...]) -> int:
    from spendwatch.run import budgets_url, default_endpoint, exec_instrumented

    program = list(command[1:] if command[:1] == ("--",) else command)
    database = config_from(db=db).db
    exec_instrumented(program, endpoint or default_endpoint(database), None if endpoint else budgets_url(database))
    return 0  # not reached: the program replaced this process


@click.command(help="Instrument a sample app against a built-in stand-in provider, offline.")
def demo() -> int:
    from spendwatch.demo import run_demo

    return run_demo(sys.stdout)


COMMANDS = (up, ui, status, run, demo)
