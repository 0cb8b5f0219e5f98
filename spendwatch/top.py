"""`spendwatch top`: the last minutes' spend by key and model, redrawn every few seconds.

Each frame is the report's own query over a short period (through the daemon's read API while it runs),
so `top` and `report` never disagree on what a call cost. `--once` prints one frame and exits: what a
script or a test wants.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TextIO

from rich import box
from rich.live import Live
from rich.table import Table
from rich.text import Text

from spendwatch.report import build_report
from spendwatch.report_table import aligned_money, console_for, group_cell, print_trimmed

if TYPE_CHECKING:
    from spendwatch.config import Config

MAX_ROWS = 20


def frame(config: Config, by: list[str], window: timedelta) -> Table:
    from spendwatch.reads import Reader

    now = datetime.now(UTC)
    with Reader(config.db) as reader:  # one per frame: the file is not held open between frames
        report = build_report(reader, by, window, now)
    minutes = window.total_seconds() / 60
    table = Table(
        title=f"Spend in the last {minutes:g} minutes, by {', '.join(by)}",
        title_justify="left",
        title_style="bold",
        caption=f"{now:%H:%M:%S} UTC",
        caption_justify="right",
        caption_style="dim",
        box=box.SIMPLE_HEAD,
    )
    for name in by:
        table.add_column(name, no_wrap=True)
    for header in ("calls", "errors", "tokens", "cost", "per minute"):
        table.add_column(Text(header, justify="right"), justify="left" if header in ("cost", "per minute") else "right")
    shown = report.rows[:MAX_ROWS]
    records = [*shown, report.total]
    costs = aligned_money([record["cost_usd"] for record in records])
    rates = aligned_money([None if record["cost_usd"] is None else record["cost_usd"] / minutes for record in records])
    for index, (record, cost, rate) in enumerate(zip(records, costs, rates, strict=True)):
        is_total = index == len(records) - 1
        if is_total:
            table.add_section()
            groups = ["total"] + [""] * (len(by) - 1)
        else:
            groups = [group_cell(name, record[name], config.rules.keys) for name in by]
        tokens = (record["input_tokens"] or 0) + (record["output_tokens"] or 0)
        table.add_row(
            *groups,
            f"{record['calls']:,}",
            Text(f"{record['errors'] or 0:,}", style="red" if record["errors"] else "dim"),
            f"{tokens:,}",
            cost,
            rate,
            style="bold" if is_total else None,
        )
    if len(report.rows) > MAX_ROWS:
        table.add_row(Text(f"... and {len(report.rows) - MAX_ROWS} more", style="dim"))
    if report.usage_unknown_calls:
        table.caption = f"{report.usage_unknown_calls:,} calls, usage unknown · {table.caption}"
    return table


def run_top(out: TextIO, config: Config, by: list[str], window: timedelta, interval: float, once: bool) -> int:
    console = console_for(out)
    if once:
        print_trimmed(console, lambda: console.print(frame(config, by, window)))
        return 0
    try:
        with Live(frame(config, by, window), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(interval)  # the refresh period, not a wait for anything
                live.update(frame(config, by, window), refresh=True)
    except KeyboardInterrupt:
        return 0
