"""The `spendwatch` command. Heavy imports happen inside the command that needs them."""

from __future__ import annotations

import argparse
import sys

from spendwatch.errors import UserError
from spendwatch.version import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spendwatch", description="What every LLM API call cost.")
    parser.add_argument("--version", action="version", version=f"spendwatch {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="Instrument a sample app against a built-in stand-in provider, offline.")
    demo.set_defaults(run=_demo)
    up = commands.add_parser("up", help="Run the collector: receive OTLP, price and store LLM calls.")
    _database_flags(up)
    up.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--http-port", type=int, help="OTLP/HTTP port (default 4318)")
    up.add_argument("--grpc-port", type=int, help="OTLP/gRPC port (default 4317)")
    up.set_defaults(run=_up)
    prices = commands.add_parser("prices", help="Prices of stored calls.")
    price_commands = prices.add_subparsers(dest="prices_command", metavar="COMMAND", required=True)
    missing = price_commands.add_parser("missing", help="Models with calls but no known price.")
    _database_flags(missing)
    missing.add_argument("--format", choices=("table", "json", "csv"), default="table")
    missing.set_defaults(run=_prices_missing)
    reprice = commands.add_parser("reprice", help="Recompute stored costs after a price override or update.")
    _database_flags(reprice)
    reprice.add_argument("--since", default="30d", help="calls started within this long ago (e.g. 30d, 12h; 'all')")
    reprice.set_defaults(run=_reprice)
    keys = commands.add_parser("keys", help="API-key ids.")
    key_commands = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
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


def _config(args: argparse.Namespace):
    from spendwatch.config import resolve

    flags = {name: getattr(args, name, None) for name in ("db", "config", "host", "http_port", "grpc_port")}
    return resolve(flags)


def _up(args: argparse.Namespace) -> int:
    import logging

    from spendwatch.collector.daemon import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(_config(args))


def _prices_missing(args: argparse.Namespace) -> int:
    from spendwatch.collector.maintenance import missing_prices
    from spendwatch.output import write_rows

    columns, rows = missing_prices(_config(args).db)
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
