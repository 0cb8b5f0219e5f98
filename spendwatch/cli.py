"""The `spendwatch` command. Heavy imports happen inside the command that needs them."""

from __future__ import annotations

import argparse
import sys

from spendwatch.errors import UserError
from spendwatch.version import __version__


class _Parser(argparse.ArgumentParser):
    """A usage mistake is one line and exit code 2, like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="spendwatch", description="What every LLM API call cost.")
    parser.add_argument("--version", action="version", version=f"spendwatch {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    demo = commands.add_parser("demo", help="Instrument a sample app against a built-in stand-in provider, offline.")
    demo.set_defaults(run=_demo)
    up = commands.add_parser("up", help="Run the collector: receive OTLP, price and store LLM calls.")
    _database_flags(up)
    up.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--http-port", type=int, help="OTLP/HTTP port (default 4318)")
    up.add_argument("--grpc-port", type=int, help="OTLP/gRPC port (default 4317)")
    up.add_argument("--ui-port", type=int, help="the dashboard's port on 127.0.0.1 (default 4320; 0: any free port)")
    up.add_argument(
        "--no-ui", dest="ui", action="store_const", const=False, help="serve no dashboard (also SPENDWATCH_UI=off)"
    )
    up.add_argument("--ingest-token", help="require this bearer token on OTLP (needed beyond loopback)")
    up.add_argument("--metrics-endpoint", help="export the daemon's own counters over OTLP/HTTP to this URL")
    up.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    up.add_argument("--log-format", choices=("plain", "json"), default="plain")
    up.set_defaults(run=_up)
    ui = commands.add_parser("ui", help="Print the dashboard's address (with its token) and open it in a browser.")
    _database_flags(ui)
    ui.add_argument("--no-open", action="store_true", help="only print the address")
    ui.set_defaults(run=_ui)
    query = commands.add_parser("query", help="Run read-only SQL over the stored calls (llm_calls).")
    _database_flags(query)
    _format_flag(query)
    query.add_argument("sql", help="one SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN statement")
    query.set_defaults(run=_query)
    explain = commands.add_parser("explain", help="A trace's model-call spans: which were merged, by which rule.")
    _database_flags(explain)
    _format_flag(explain)
    explain.add_argument("trace_id", help="the trace id, 32 hex digits")
    explain.set_defaults(run=_explain)
    report = commands.add_parser("report", help="Spend, tokens, calls, errors and cache hits per group.")
    _database_flags(report)
    _format_flag(report)
    report.add_argument("--since", default="7d", help="calls started within this long ago (e.g. 7d, 24h; 'all')")
    report.add_argument("--by", default="provider,model", help="groups: provider, model, api_key_id, service_name, day")
    report.set_defaults(run=_report)
    top = commands.add_parser("top", help="A live view of the last minutes' spend by key and model.")
    _database_flags(top)
    top.add_argument("--minutes", type=int, default=15, help="how far back each frame looks (default 15)")
    top.add_argument("--by", default="api_key_id,model", help="groups, as for report (default api_key_id,model)")
    top.add_argument("--interval", type=float, default=2.0, help="seconds between frames (default 2)")
    top.add_argument("--once", action="store_true", help="print one frame and exit")
    top.set_defaults(run=_top)
    status = commands.add_parser("status", help="Is a daemon running on this database, and what has it stored.")
    _database_flags(status)
    status.add_argument("--format", choices=("table", "json"), default="table")
    status.set_defaults(run=_status)
    run = commands.add_parser("run", help="Run a program under the instrumentation, reporting to the collector.")
    run.add_argument("--endpoint", help="OTLP endpoint (default: the running daemon's, else localhost:4317)")
    run.add_argument("--db", help="find the daemon of this database (default as for `up`)")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ...")
    run.set_defaults(run=_run)
    rules = commands.add_parser("rules", help="Budget rules.")
    rule_commands = rules.add_subparsers(dest="rules_command", metavar="COMMAND", required=True)
    rules_check = rule_commands.add_parser("check", help="Validate the rules in the config file.")
    rules_check.add_argument("--config", help="the TOML config (default $SPENDWATCH_CONFIG or $XDG_CONFIG_HOME/...)")
    rules_check.set_defaults(run=_rules_check)
    rules_run = rule_commands.add_parser("run", help="Evaluate every rule once and print what fires.")
    _database_flags(rules_run)
    rules_run.add_argument("--dry-run", action="store_true", help="send and write nothing")
    rules_run.add_argument("--now", help="evaluate as of this ISO 8601 time (default: now)")
    rules_run.set_defaults(run=_rules_run)
    alerts = commands.add_parser("alerts", help="Alerts raised, with their delivery state.")
    _database_flags(alerts)
    _format_flag(alerts)
    alerts.add_argument("--since", default="7d", help="raised within this long ago (e.g. 7d; 'all')")
    alerts.set_defaults(run=_alerts)
    notify = commands.add_parser("notify", help="Notifiers.")
    notify_commands = notify.add_subparsers(dest="notify_command", metavar="COMMAND", required=True)
    notify_test = notify_commands.add_parser("test", help="Send a test message to one notifier.")
    notify_test.add_argument("name")
    notify_test.add_argument("--config", help="the TOML config")
    notify_test.set_defaults(run=_notify_test)
    prices = commands.add_parser("prices", help="Prices of stored calls.")
    price_commands = prices.add_subparsers(dest="prices_command", metavar="COMMAND", required=True)
    missing = price_commands.add_parser("missing", help="Models with calls but no known price.")
    _database_flags(missing)
    _format_flag(missing)
    missing.set_defaults(run=_prices_missing)
    reprice = commands.add_parser("reprice", help="Recompute stored costs after a price override or update.")
    _database_flags(reprice)
    reprice.add_argument("--since", default="30d", help="calls started within this long ago (e.g. 30d, 12h; 'all')")
    reprice.set_defaults(run=_reprice)
    keys = commands.add_parser("keys", help="The key inventory (or `keys id`: the id of a key you hold).")
    _database_flags(keys)
    _format_flag(keys)
    keys.add_argument("--since", default="30d", help="keys used within this long ago (e.g. 30d; 'all')")
    keys.set_defaults(run=_keys)
    key_commands = keys.add_subparsers(dest="keys_command", metavar="COMMAND")
    key_id = key_commands.add_parser("id", help="Print the id spendwatch gives an API key (read from stdin).")
    key_id.set_defaults(run=_key_id)
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except UserError as error:
        print(f"spendwatch: {error}", file=sys.stderr)
        return 2


def _database_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="the DuckDB file (default $SPENDWATCH_DB or $XDG_DATA_HOME/spendwatch/...)")
    parser.add_argument("--config", help="the TOML config (default $SPENDWATCH_CONFIG or $XDG_CONFIG_HOME/...)")


def _format_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table")


def _config(args: argparse.Namespace):
    from spendwatch.config import resolve

    names = ("db", "config", "host", "http_port", "grpc_port", "ui_port", "ui", "ingest_token", "metrics_endpoint")
    flags = {name: getattr(args, name, None) for name in names}
    return resolve(flags)


def _up(args: argparse.Namespace) -> int:
    from spendwatch.collector.daemon import run
    from spendwatch.logs import configure_logging

    configure_logging(args.log_level, args.log_format)
    return run(_config(args), reload=lambda: _config(args))


def _ui(args: argparse.Namespace) -> int:
    from spendwatch.ui.opener import dashboard_address, open_in_browser

    address = dashboard_address(_config(args).db)
    print(address)
    if not args.no_open:
        open_in_browser(address)
    return 0


def _query(args: argparse.Namespace) -> int:
    from spendwatch.output import write_rows
    from spendwatch.reads import query

    columns, rows = query(_config(args).db, args.sql)
    write_rows(sys.stdout, columns, rows, args.format)
    return 0


def _explain(args: argparse.Namespace) -> int:
    from functools import partial

    from spendwatch.explain import explain, summary
    from spendwatch.output import write_rows
    from spendwatch.reads import query

    columns, rows = explain(partial(query, _config(args).db), args.trace_id)
    write_rows(sys.stdout, columns, rows, args.format)
    if args.format == "table":
        print("\n" + summary(columns, rows))
    return 0


def _report(args: argparse.Namespace) -> int:
    from functools import partial

    from spendwatch.reads import query
    from spendwatch.report import build_report, parse_groups, write_csv, write_json

    config, by, since = _config(args), parse_groups(args.by), _since(args.since)
    if args.format == "table":
        from spendwatch.report_table import print_report

        print_report(sys.stdout, config, by, since)
    else:
        report = build_report(partial(query, config.db), by, since)
        (write_json if args.format == "json" else write_csv)(sys.stdout, report)
    return 0


def _top(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from spendwatch.report import parse_groups
    from spendwatch.top import run_top

    if args.minutes <= 0 or args.interval <= 0:
        raise UserError("--minutes and --interval: expected numbers above 0")
    by = parse_groups(args.by)
    if not by:
        raise UserError("--by: name at least one group")
    return run_top(sys.stdout, _config(args), by, timedelta(minutes=args.minutes), args.interval, args.once)


def _since(text: str):
    from spendwatch.collector.maintenance import parse_duration

    if text == "all":
        return None
    try:
        return parse_duration(text)
    except ValueError as error:
        raise UserError(f"--since: {error}") from None


def _status(args: argparse.Namespace) -> int:
    import json

    from spendwatch.reads import daemon_status, query

    db = _config(args).db
    status = daemon_status(db)
    if status is None:
        status = {"running": False, "db": str(db)}
        if db.exists():
            _, ((calls, last, unpriced),) = query(
                db,
                "SELECT count(*), max(start_time), count(DISTINCT coalesce(response_model, request_model)) "
                "FILTER (cost_usd IS NULL AND coalesce(input_tokens, output_tokens) IS NOT NULL) FROM llm_calls",
            )
            status.update(calls_stored=calls, last_call_at=last, unpriced_models=unpriced)
    else:
        status = {"running": True, **status}
    if args.format == "json":
        print(json.dumps(status))
    else:
        width = max(len(key) for key in status)
        for key, value in status.items():
            print(f"{key.replace('_', ' '):<{width}}  {'' if value is None else value}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from spendwatch.run import default_endpoint, exec_instrumented

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    endpoint = args.endpoint or default_endpoint(_config(args).db)
    exec_instrumented(command, endpoint)
    return 0  # not reached: the program replaced this process


def _rules_check(args: argparse.Namespace) -> int:
    from spendwatch.rules.commands import check

    return check(_config(args), sys.stdout)


def _rules_run(args: argparse.Namespace) -> int:
    from spendwatch.rules.commands import parse_now, run_once

    return run_once(_config(args), parse_now(args.now), args.dry_run, sys.stdout)


def _alerts(args: argparse.Namespace) -> int:
    from spendwatch.output import write_rows
    from spendwatch.rules.commands import list_alerts

    columns, rows = list_alerts(_config(args).db, _since(args.since))
    write_rows(sys.stdout, columns, rows, args.format)
    return 0


def _notify_test(args: argparse.Namespace) -> int:
    from spendwatch.rules.commands import notify_test

    return notify_test(_config(args), args.name, sys.stdout)


def _prices_missing(args: argparse.Namespace) -> int:
    from spendwatch.collector.maintenance import MISSING_PRICES_SQL
    from spendwatch.output import write_rows
    from spendwatch.reads import query

    columns, rows = query(_config(args).db, MISSING_PRICES_SQL)
    write_rows(sys.stdout, columns, rows, args.format)
    return 0


def _reprice(args: argparse.Namespace) -> int:
    from spendwatch.collector.maintenance import reprice

    config = _config(args)
    changed, total = reprice(config.db, config.prices, args.since, progress=sys.stderr)
    print(f"repriced {total} calls: {changed} changed cost")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from spendwatch.demo import run_demo

    return run_demo(sys.stdout)


def _keys(args: argparse.Namespace) -> int:
    from spendwatch.output import write_rows
    from spendwatch.rules.commands import key_inventory

    columns, rows = key_inventory(_config(args), _since(args.since))
    write_rows(sys.stdout, columns, rows, args.format)
    return 0


def _key_id(args: argparse.Namespace) -> int:
    """Reads the key from stdin, so that it never appears in the shell history or the process list."""
    from spendwatch.instrumentation.keys import api_key_id

    key = sys.stdin.readline().strip()
    if not key:
        print("spendwatch keys id: no key on stdin", file=sys.stderr)
        return 2
    print(api_key_id(key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
