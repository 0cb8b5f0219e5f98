"""The report for people: a rich table with aligned money, a totals row and each row's spend per day as a
sparkline, then the budgets' standing, coloured as they near or pass their limits.

rich decides about escape codes: none when the output is not a terminal (a pipe, a file) or `NO_COLOR`
is set, colour when `FORCE_COLOR` asks for it. A pipe also gets the table at its natural width instead
of rich's 80 columns, so that lines are never wrapped for a script or a pager.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TextIO

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from spendwatch.money import usd
from spendwatch.report import Report, build_report
from spendwatch.rules.budget import BudgetStanding, budget_standings, scope_text
from spendwatch.rules.config import RulesConfig

if TYPE_CHECKING:
    from spendwatch.config import Config

SPARK_LEVELS = "▁▂▃▄▅▆▇█"
MAX_SPARK_POINTS = 31  # a longer period is drawn in buckets of several days
PIPE_WIDTH = 400
BAR_WIDTH = 10
# What a narrow terminal loses first: tokens, then cache hits and errors; never money, calls or the sparkline.
NARROW_DROPS = (
    frozenset(),
    frozenset({"input_tokens", "output_tokens"}),
    frozenset({"input_tokens", "output_tokens", "cache_hit_share", "errors"}),
)
LEVEL_STYLES = {"over": "bold red", "near": "yellow", "under": ""}
_HEADERS = {
    "calls": "calls",
    "errors": "errors",
    "input_tokens": "input tokens",
    "output_tokens": "output tokens",
    "cache_hit_share": "cache hits",
    "cost_usd": "cost",
    "unpriced_calls": "unpriced",
}


def console_for(out: TextIO) -> Console:
    console = Console(file=out, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH
    return console


def money(amount: float | None) -> str:
    return usd(amount)


def aligned_money(amounts: Sequence[float | None]) -> list[str]:
    """`money` for one column, padded on both sides to one width so that the decimal points line up.

    The padding is in the text, and the column is left-justified: rich trims a cell's trailing spaces
    before justifying it right, which would undo the alignment.
    """
    shown = [money(amount) for amount in amounts]
    decimals = [len(text.partition(".")[2]) for text in shown]
    widest = max(decimals, default=0)
    padded = [text + " " * (widest - places) if text else "" for text, places in zip(shown, decimals, strict=True)]
    width = max(map(len, padded), default=0)
    return [text.rjust(width) if text else "" for text in padded]


def sparkline(values: Sequence[float]) -> str:
    """One block per value, scaled to the largest; a day with no spend is a space, any spend at least ▁."""
    top = max(values, default=0)
    if top <= 0:
        return " " * len(values)
    return "".join(
        " " if value <= 0 else SPARK_LEVELS[max(1, math.ceil(value / top * len(SPARK_LEVELS))) - 1] for value in values
    )


def bucketed(values: Sequence[float], days_per_bucket: int) -> list[float]:
    """Sums of consecutive runs of `days_per_bucket` values, the last run possibly shorter."""
    return [sum(values[index : index + days_per_bucket]) for index in range(0, len(values), days_per_bucket)]


def print_report(
    out: TextIO,
    config: Config,
    by: list[str],
    since: timedelta | None,
    query: Callable[[str, list[Any]], tuple[list[str], list[list[Any]]]] | None = None,
    scope: str = "local",
) -> None:
    """`spendwatch report` in a table: the report, then the standing of every budget rule of `scope` in its
    current window. `query` reads the calls (default: this daemon's database; the fleet's for `--fleet`)."""
    if query is None:
        from spendwatch.reads import query as read_database

        query = partial(read_database, config.db)
    now = datetime.now(UTC)
    report = build_report(query, by, since, now)

    def rows(sql: str, params: Sequence[Any]) -> list[tuple]:
        return [tuple(row) for row in query(sql, list(params))[1]]

    budgets = [rule for rule in config.rules.of_scope(scope) if rule.kind == "budget"]
    standings = [standing for rule in budgets for standing in budget_standings(rule, now, config.rules, rows)]
    render_report(console_for(out), report, standings, config.rules)


def render_report(
    console: Console, report: Report, standings: Sequence[BudgetStanding] = (), rules: RulesConfig | None = None
) -> None:
    print_trimmed(console, lambda: _render(console, report, standings, rules))


def print_trimmed(console: Console, draw: Callable[[], None]) -> None:
    """Run `draw` on `console`; into a pipe or a file, without the padding rich leaves after a line's last cell."""
    if console.is_terminal:
        draw()
        return
    with console.capture() as captured:
        draw()
    console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def _render(console: Console, report: Report, standings: Sequence[BudgetStanding], rules: RulesConfig | None) -> None:
    key_names = rules.keys if rules is not None else {}
    if not report.rows:
        console.print(f"No calls {_period_text(report)}.")
    else:
        console.print(_table_that_fits(console, report, key_names))
    if report.unpriced_calls:
        console.print(
            Text(
                f"{report.unpriced_calls} call(s) have no known price and are not in the costs above; "
                "`spendwatch prices missing` names their models.",
                style="yellow",
            )
        )
    if report.usage_unknown_calls:
        console.print(
            Text(
                f"{report.usage_unknown_calls} call(s), usage unknown: their spans said a call was made and "
                "nothing of its tokens, so the costs above leave them out "
                '(`spendwatch query "SELECT * FROM llm_calls WHERE usage_unknown"`).',
                style="yellow",
            )
        )
    if standings and rules is not None:
        console.print()
        console.print(_budgets(standings, rules))


def _table_that_fits(console: Console, report: Report, key_names: dict[str, str]) -> Table:
    """The whole table if it fits the terminal; else without the columns a narrow screen can spare."""
    for dropped in NARROW_DROPS:
        table = _table(report, key_names, dropped)
        natural = Measurement.get(console, console.options.update(max_width=10_000), table).maximum
        if natural <= console.width:
            break
    return table


def _table(report: Report, key_names: dict[str, str], dropped: frozenset[str] = frozenset()) -> Table:
    days_per_bucket = math.ceil(len(report.days) / MAX_SPARK_POINTS)
    spark_header = "per day" if days_per_bucket == 1 else f"per {days_per_bucket} days"
    table = Table(
        title=f"Spend{' by ' + ', '.join(report.by) if report.by else ''}, {_period_text(report)}",
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        caption=f"{_day_text(report.days[0])} → {_day_text(report.days[-1])}, UTC days" if report.days else None,
        caption_justify="right",
        caption_style="dim",
    )
    for name in report.by:
        table.add_column(name, no_wrap=True)
    records = [*report.rows, report.total] if report.by else report.rows
    series = [*report.daily, report.total_daily] if report.by else report.daily
    costs = aligned_money([record["cost_usd"] for record in records])
    measures = [measure for measure in _HEADERS if measure not in dropped]
    for measure in measures:
        _money_or_number_column(table, _HEADERS[measure], money=measure == "cost_usd")
    points = math.ceil(len(report.days) / days_per_bucket)
    table.add_column(spark_header, no_wrap=True, style="cyan", min_width=points)
    table.columns[len(report.by) + measures.index("cost_usd")].min_width = max(map(len, costs), default=0)
    for index, (record, cost, daily) in enumerate(zip(records, costs, series, strict=True)):
        is_total = report.by and index == len(records) - 1
        if is_total:
            table.add_section()
            groups = [Text("total")] + [Text("")] * (len(report.by) - 1)
        else:
            groups = [group_cell(name, record[name], key_names) for name in report.by]
        share = record["cache_hit_share"]
        cells = {
            "calls": _count(record["calls"]),
            "errors": _count(record["errors"], "red"),
            "input_tokens": _count(record["input_tokens"]),
            "output_tokens": _count(record["output_tokens"]),
            "cache_hit_share": Text("" if share is None else f"{share:.1%}"),
            "cost_usd": Text(cost),
            "unpriced_calls": _count(record["unpriced_calls"] or 0, "yellow"),
        }
        table.add_row(
            *groups,
            *(cells[measure] for measure in measures),
            sparkline(bucketed(daily, days_per_bucket)),
            style="bold" if is_total else None,
        )
    return table


def _money_or_number_column(table: Table, header: str, *, money: bool) -> None:
    """A right-aligned header; numbers justified right, money as `aligned_money` padded it."""
    table.add_column(Text(header, justify="right"), justify="left" if money else "right", no_wrap=True)


def group_cell(name: str, value: Any, key_names: dict[str, str]) -> Text:
    """A group's value; a key with a name in `[keys]` shows it beside its id."""
    if value is None:
        return Text("(none)", style="dim")
    cell = Text(str(value))
    if name == "api_key_id" and value in key_names:
        cell.append(f" {key_names[value]}", style="dim")
    return cell


def _count(value: int | None, style_when_nonzero: str = "") -> Text:
    if value is None:
        return Text("")
    return Text(f"{value:,}", style=style_when_nonzero if value else "dim" if style_when_nonzero else "")


def _period_text(report: Report) -> str:
    if report.start is None:
        return "since the first call"
    seconds = (report.end - report.start).total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"in the last {count} {unit}{'s' if count != 1 else ''}"
    return f"since {report.start:%Y-%m-%d %H:%M} UTC"


def _day_text(day: date) -> str:
    return f"{day:%a %Y-%m-%d}"


def _budgets(standings: Sequence[BudgetStanding], rules: RulesConfig) -> Table:
    table = Table(
        title="Budgets, in their current windows",
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("rule", no_wrap=True)
    table.add_column("scope")
    table.add_column("window", no_wrap=True)
    _money_or_number_column(table, "spent", money=True)
    _money_or_number_column(table, "limit", money=True)
    table.add_column("", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    _money_or_number_column(table, "forecast", money=True)
    spent = aligned_money([standing.spent for standing in standings])
    limits = aligned_money([standing.rule.limit_usd for standing in standings])
    forecasts = aligned_money([standing.projected for standing in standings])
    for standing, spent_text, limit_text, forecast_text in zip(standings, spent, limits, forecasts, strict=True):
        style = LEVEL_STYLES[standing.level]
        over_by_forecast = standing.projected is not None and standing.projected > standing.rule.limit_usd
        table.add_row(
            standing.rule.name,
            scope_text(standing.rule, standing.group_value, rules),
            standing.window.label,
            spent_text,
            limit_text,
            _bar(standing.share),
            f"{standing.share:.0%}",
            Text(forecast_text, style="yellow" if over_by_forecast and standing.level == "under" else ""),
            style=style or None,
        )
    return table


def _bar(share: float) -> str:
    filled = min(BAR_WIDTH, round(share * BAR_WIDTH))
    return "█" * filled + "░" * (BAR_WIDTH - filled)
