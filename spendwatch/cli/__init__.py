"""The `spendwatch` command: a click group, one module per noun, each command thin — parse, call, print.

Owns only the command line: what each command does lives in its room (collector, rules, ui) or in the
shared modules beside them (reads, report). It may import any of them; nothing imports it. Heavy imports
(duckdb, grpc, apprise) happen inside the command that needs them, so that `spendwatch --help` is fast.

A user's mistake — a bad flag, bad SQL, a missing file, a daemon that does not answer — is one line on
stderr and exit code 2, never a traceback or a page of usage.
"""

from __future__ import annotations

import click

from spendwatch.cli import billing, calls, export, keys, prices, rules, serve
from spendwatch.errors import UserError
from spendwatch.version import __version__

_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click 8.2 and later


class SpendwatchGroup(click.Group):
    """Usage errors and `UserError`s as one line and exit code 2, like every other mistake."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        try:
            code = super().main(args, prog_name or "spendwatch", complete_var, standalone_mode=False, **extra)
            return code if isinstance(code, int) else 0
        except _NO_ARGS_IS_HELP as error:  # `spendwatch` alone: the help, as a mistake
            click.echo(error.ctx.get_help() if error.ctx is not None else "")
            return 2
        except click.UsageError as error:
            command = error.ctx.command_path if error.ctx is not None else "spendwatch"
            click.echo(f"{command}: {error.format_message()} (see {command} --help)", err=True)
            return 2
        except UserError as error:
            click.echo(f"spendwatch: {error}", err=True)
            return 2
        except click.exceptions.Exit as done:
            return done.exit_code
        except click.Abort:
            click.echo("aborted", err=True)
            return 1


@click.group(cls=SpendwatchGroup, help="What every LLM API call cost.")
@click.version_option(__version__, prog_name="spendwatch", message="%(prog)s %(version)s")
def cli() -> None:
    pass


for module in (serve, calls, rules, prices, keys, export, billing):
    for command in module.COMMANDS:
        cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0, or 2 for a user's mistake)."""
    return cli.main(argv)
