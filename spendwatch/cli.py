"""The `spendwatch` command. Heavy imports happen inside the command that needs them."""

from __future__ import annotations

import argparse
import sys

from spendwatch.version import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spendwatch", description="What every LLM API call cost.")
    parser.add_argument("--version", action="version", version=f"spendwatch {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="Instrument a sample app against a built-in stand-in provider, offline.")
    demo.set_defaults(run=_demo)
    keys = commands.add_parser("keys", help="API-key ids.")
    key_commands = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    key_id = key_commands.add_parser("id", help="Print the id spendwatch gives an API key (read from stdin).")
    key_id.set_defaults(run=_key_id)
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    return args.run(args)


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
