"""`export`: stored spend in the formats other tools read — `export focus`, FinOps cost rows (FOCUS)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from spendwatch.cli.options import Choice, config_from, database, since


@click.group(help="Stored spend in the formats other tools read.")
def export() -> None:
    pass


@export.command("focus", help="Cost rows in FOCUS 1.2, the FinOps Open Cost and Usage Specification.")
@database
@click.option("--since", "period", default="30d", help="calls started within this long ago (e.g. 30d; 'all')")
@click.option("--format", "output", type=Choice(("csv", "parquet")), default="csv", show_default=True)
@click.option("--output", "path", help="write to this file (default: stdout)")
@click.option("--period", "charge_period", type=Choice(("day", "hour")), default="day", show_default=True,
              help="each row's charge period, in UTC")  # fmt: skip
def focus(db: str | None, config: str | None, period: str, output: str, path: str | None, charge_period: str) -> int:
    from spendwatch.exports.focus import build_export, copy_file, write_csv, write_parquet
    from spendwatch.reads import Reader

    settings = config_from(db=db, config=config)
    with Reader(settings.db) as reader:
        built = build_export(reader, since(period), charge_period, settings.rules.keys)
    if output == "csv":
        if path is None:
            write_csv(sys.stdout, built)
        else:
            with open(path, "w", encoding="utf-8", newline="") as out:
                write_csv(out, built)
    elif path is not None:
        write_parquet(Path(path), built)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            file = Path(scratch) / "focus.parquet"
            write_parquet(file, built)
            copy_file(file, sys.stdout.buffer)
            sys.stdout.buffer.flush()
    if built.left_out_calls:
        click.echo(
            f"spendwatch: {built.left_out_calls} call(s) with no known price or usage are not in the export "
            "(FOCUS costs cannot be empty); `spendwatch prices missing` names their models",
            err=True,
        )
    return 0


COMMANDS = (export,)
