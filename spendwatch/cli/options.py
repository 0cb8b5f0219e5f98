"""The options many commands share, and reading the configuration they name."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import click

from spendwatch.errors import UserError

FORMATS = ("table", "json", "csv")


class Choice(click.Choice):
    """click's choice, failing with the words every other mistake here uses."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if value in self.choices:
            return value
        self.fail(f"invalid choice: {value!r} (choose from {', '.join(map(repr, self.choices))})", param, ctx)


def database(function: Callable) -> Callable:
    function = click.option(
        "--config", help="the TOML config (default $SPENDWATCH_CONFIG or $XDG_CONFIG_HOME/spendwatch/...)"
    )(function)
    return click.option("--db", help="the DuckDB file (default $SPENDWATCH_DB or $XDG_DATA_HOME/spendwatch/...)")(
        function
    )


def output_format(function: Callable) -> Callable:
    return click.option("--format", "output", type=Choice(FORMATS), default="table", show_default=True)(function)


def config_from(**flags: Any):
    """The configuration, flags first (None: not given), then environment, file, defaults."""
    from spendwatch.config import resolve

    return resolve({name: value for name, value in flags.items() if value is not None})


def since(text: str) -> timedelta | None:
    """`--since`: a duration such as 7d or 24h, or `all` (None)."""
    from spendwatch.durations import parse_duration

    if text == "all":
        return None
    try:
        return parse_duration(text)
    except ValueError as error:
        raise UserError(f"--since: {error}") from None
