"""The dashboard page: panel data in, one complete HTML document out.

The page carries its data, its charts and its stylesheet, so one GET is all it takes to see everything
(and all a benchmark needs to time). The period and the chart's grouping are links; the page reloads
itself every minute with a `<meta>` refresh, so no script is needed at all. Everything that comes from
the database (service, model and key names are chosen by users) is escaped.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from spendwatch.money import usd
from spendwatch.ui.charts import budget_chart, series_colour, spend_chart
from spendwatch.ui.panels import PERIODS, STACKS, Dashboard, TopRow
from spendwatch.ui.style import CSS

REFRESH_SECONDS = 60
TOP_TITLES = {"keys": ("Top keys", "Key"), "models": ("Top models", "Model"), "services": ("Top services", "Service")}


def money(amount: float | None) -> str:
    return usd(amount, missing="—")


def count(number: int | None) -> str:
    return "—" if number is None else f"{number:,}"


def share(fraction: float | None) -> str:
    return "—" if fraction is None else f"{fraction:.1%}"


def latency(milliseconds: float | None) -> str:
    return "—" if milliseconds is None else f"{milliseconds:,.0f} ms"


def render(data: Dashboard) -> str:
    zone = ZoneInfo(data.timezone)
    spend = data.spend
    period = spend.period
    unpriced = f', <strong id="total-unpriced">{count(spend.unpriced_calls)}</strong> unpriced'
    unknown = (
        f', <strong id="total-usage-unknown">{count(spend.usage_unknown_calls)}</strong> calls, usage unknown'
        if spend.usage_unknown_calls
        else ""
    )
    body = [
        "<header><h1>spendwatch</h1>",
        f'<p class="summary">Last {escape(period.name)}: <strong id="total-spend">{money(spend.total_usd)}</strong>'
        f' over <strong id="total-calls">{count(spend.calls)}</strong> calls'
        + (unpriced if spend.unpriced_calls else "")
        + unknown
        + f" · as of {_when(data.now, zone)} {escape(data.timezone)}</p></header>",
        _controls(period.name, spend.stack),
        "<main>",
        _spend_panel(data),
        _budgets_panel(data),
        *(_top_panel(what, rows) for what, rows in data.tops.items()),
        _alerts_panel(data, zone),
        _unpriced_panel(data, zone),
        _new_keys_panel(data, zone),
        _bill_panel(data),
        "</main>",
        f"<footer>Refreshes every {REFRESH_SECONDS} s. Spend counts priced calls; "
        "unpriced ones are listed until a price is set under [prices].</footer>",
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        f"<title>spendwatch · {money(spend.total_usd)} in {escape(period.name)}</title>"
        f"<style>{CSS}</style></head><body>" + "".join(body) + "</body></html>"
    )


def _controls(period: str, stack: str) -> str:
    def links(label: str, name: str, options, current: str) -> str:
        items = []
        for option in options:
            query = urlencode({"period": period, "stack": stack, name: option})
            mark = ' class="current" aria-current="true"' if option == current else ""
            items.append(f'<a href="?{query}"{mark}>{escape(option)}</a>')
        return f'<div class="{name}"><span>{label}</span>{"".join(items)}</div>'

    return (
        '<nav class="controls">'
        + links("Period", "period", PERIODS, period)
        + links("Stack by", "stack", STACKS, stack)
        + "</nav>"
    )


def _panel(ident: str, title: str, content: str, wide: bool = False) -> str:
    classes = "panel wide" if wide else "panel"
    return f'<section class="{classes}" id="{ident}"><h2>{escape(title)}</h2>{content}</section>'


def _empty(text: str) -> str:
    return f'<p class="empty">{escape(text)}</p>'


def _spend_panel(data: Dashboard) -> str:
    spend = data.spend
    title = f"Spend per {spend.period.unit}, by {spend.stack}"
    if not spend.series:
        return _panel("spend", title, _empty(f"No priced calls in the last {spend.period.name}."), wide=True)
    legend = "".join(
        f'<li data-series="{escape(series.label)}" data-value="{series.total:.6f}">'
        f'<i style="background:{series_colour(position, series.key is None)}"></i>'
        f'{escape(series.label)} <span class="num">{money(series.total)}</span></li>'
        for position, series in enumerate(spend.series)
    )
    return _panel("spend", title, spend_chart(spend) + f'<ul class="legend">{legend}</ul>', wide=True)


def _budgets_panel(data: Dashboard) -> str:
    if not data.budgets:
        return _panel("budgets", "Budgets", _empty('No budget rules: add [[rules]] with kind = "budget".'))
    items = []
    for bar in data.budgets:
        name = bar.rule + (f" · {bar.group}" if bar.group else "")
        forecast = (
            f' · forecast <span class="forecast-value">{money(bar.forecast_usd)}</span>'
            if bar.forecast_usd is not None
            else ""
        )
        unpriced = f" · {bar.unpriced_calls:,} unpriced calls not counted" if bar.unpriced_calls else ""
        items.append(
            f'<div class="budget" data-rule="{escape(bar.rule)}" data-spent="{bar.spent_usd:.6f}" '
            f'data-limit="{bar.limit_usd:.6f}">'
            f'<div class="head"><span class="name">{escape(name)}</span>'
            f'<span class="figures"><span class="spent-value">{money(bar.spent_usd)}</span> of '
            f'<span class="limit-value">{money(bar.limit_usd)}</span>'
            f" ({bar.spent_usd / bar.limit_usd:.0%})</span></div>"
            + budget_chart(bar)
            + f'<div class="window">{escape(bar.window)}{forecast}{escape(unpriced)}</div></div>'
        )
    return _panel("budgets", "Budgets", "".join(items))


def _top_panel(what: str, rows: list[TopRow]) -> str:
    title, column = TOP_TITLES[what]
    if not rows:
        return _panel(f"top-{what}", title, _empty("No calls in this period."))
    head = (
        f"<tr><th>{column}</th><th class=num>Spend</th><th class=num>Tokens</th><th class=num>Requests</th>"
        "<th class=num>Errors</th><th class=num>p95</th><th class=num>Cache hits</th></tr>"
    )
    lines = [
        f'<tr><td class="name">{escape(row.label)}</td>'
        + _number(money(row.spent_usd), row.spent_usd)
        + _number(count(row.tokens), row.tokens)
        + _number(count(row.requests), row.requests)
        + _number(share(row.error_rate), row.error_rate)
        + _number(latency(row.p95_latency_ms), row.p95_latency_ms)
        + _number(share(row.cache_hit_share), row.cache_hit_share)
        + "</tr>"
        for row in rows
    ]
    return _panel(f"top-{what}", title, _scroll_table(head, lines))


def _number(text: str, value: float | int | None) -> str:
    raw = "" if value is None else f' data-value="{value}"'
    return f'<td class="num"{raw}>{escape(text)}</td>'


def _alerts_panel(data: Dashboard, zone: ZoneInfo) -> str:
    if not data.alerts:
        return _panel("alerts", "Recent alerts", _empty("No alerts yet."))
    lines = [
        f"<tr><td class=num>{_when(alert.created_at, zone)}</td>"
        f"<td class=name><span class=title>{escape(alert.title)}</span>"
        f"<br><small>{escape(alert.rule)} · {escape(alert.kind)}</small></td>"
        f'<td><span class="state state-{escape(alert.state)}">{escape(alert.state)}</span>'
        f"<br><small>{escape(alert.deliveries)}"
        + (f" · {escape(alert.last_error)}" if alert.last_error else "")
        + "</small></td></tr>"
        for alert in data.alerts
    ]
    head = "<tr><th>Raised</th><th>Alert</th><th>Delivery</th></tr>"
    return _panel("alerts", "Recent alerts", _scroll_table(head, lines))


def _unpriced_panel(data: Dashboard, zone: ZoneInfo) -> str:
    title = "Unpriced models"
    if not data.unpriced:
        return _panel("unpriced", title, _empty("Every model with calls has a price."))
    lines = [
        f"<tr><td class=name>{escape(row.model or '(none)')}</td><td>{escape(row.provider or '(none)')}</td>"
        + _number(count(row.calls), row.calls)
        + f"<td class=num>{_when(row.last_call, zone)}</td></tr>"
        for row in data.unpriced
    ]
    head = "<tr><th>Model</th><th>Provider</th><th class=num>Calls</th><th class=num>Last call</th></tr>"
    hint = '<p class="empty">Set their prices under [prices], then run <code>spendwatch reprice</code>.</p>'
    return _panel("unpriced", title, _scroll_table(head, lines) + hint)


def _new_keys_panel(data: Dashboard, zone: ZoneInfo) -> str:
    title = "New keys (first call in the last day)"
    if not data.new_keys:
        return _panel("new-keys", title, _empty("No key made its first call in the last day."))
    lines = [
        f"<tr><td class=name>{escape(key.label)}</td><td>{escape(key.provider or '(none)')}</td>"
        f"<td class=name>{escape(key.services)}</td><td class=num>{_when(key.first_call, zone)}</td>"
        + _number(count(key.calls), key.calls)
        + _number(money(key.spent_usd), key.spent_usd)
        + "</tr>"
        for key in data.new_keys
    ]
    head = (
        "<tr><th>Key</th><th>Provider</th><th>Services</th><th class=num>First call</th>"
        "<th class=num>Calls</th><th class=num>Spend</th></tr>"
    )
    return _panel("new-keys", title, _scroll_table(head, lines))


def _bill_panel(data: Dashboard) -> str:
    title = "Billed vs observed"
    bill = data.bill
    if bill is None:
        return _panel(
            "bill",
            title,
            _empty("No provider bill imported: give spendwatch an admin key under [billing] to compare."),
            wide=True,
        )
    parts = []
    if bill.missing_keys:
        items = "".join(
            f'<li class="missing-key" data-key="{escape(key["provider_key_id"])}">'
            f"<strong>{escape(key['provider'])} {escape(key['provider_key_id'])}</strong> "
            f"{escape(' '.join(part for part in (key['name'], key['redacted_value']) if part))}: "
            f'<span class="num" data-value="{key["billed_cost_usd"]}">{money(key["billed_cost_usd"])}</span> billed, '
            f"{count(key['billed_tokens'])} tokens, no instrumented call</li>"
            for key in bill.missing_keys
        )
        parts.append(f'<p class="alert">Keys billed with no instrumented call:</p><ul class="missing">{items}</ul>')
    head = (
        "<tr><th>Provider</th><th class=num>Billed</th><th class=num>Provider's bill</th>"
        "<th class=num>Observed</th><th class=num>Capture</th><th class=num>Gap</th></tr>"
    )
    lines = [
        f'<tr data-provider="{escape(total["provider"])}"><td class=name>{escape(total["provider"])}</td>'
        + _number(money(total["billed_cost_usd"]), total["billed_cost_usd"])
        + _number(money(total["provider_cost_usd"]), total["provider_cost_usd"])
        + _number(money(total["observed_cost_usd"]), total["observed_cost_usd"])
        + _number(share(total["capture_rate"]), total["capture_rate"])
        + _number(money(total["gap_usd"]), total["gap_usd"])
        + "</tr>"
        for total in bill.totals
    ]
    parts.append(_scroll_table(head, lines))
    if bill.rows:
        head = (
            "<tr><th>Day</th><th>Provider</th><th>Model</th><th>Key</th><th class=num>Billed</th>"
            "<th class=num>Observed</th><th class=num>Capture</th><th class=num>Gap</th></tr>"
        )
        lines = [
            f"<tr><td class=num>{escape(row['day'])}</td><td>{escape(row['provider'])}</td>"
            f"<td class=name>{escape(row['model'] or '(none)')}</td>"
            f"<td class=name>{escape(row['api_key_id'] or row['provider_key_id'] or '(no key)')}</td>"
            + _number(money(row["billed_cost_usd"]), row["billed_cost_usd"])
            + _number(money(row["observed_cost_usd"]), row["observed_cost_usd"])
            + _number(share(row["capture_rate"]), row["capture_rate"])
            + _number(money(row["gap_usd"]), row["gap_usd"])
            + "</tr>"
            for row in bill.rows
        ]
        parts.append("<h3>Largest gaps</h3>" + _scroll_table(head, lines))
    return _panel("bill", title, "".join(parts), wide=True)


def _scroll_table(head: str, lines: list[str]) -> str:
    """A table that scrolls sideways inside its panel on a narrow screen instead of widening the page."""
    return f'<div class="scroll"><table>{head}{"".join(lines)}</table></div>'


def _when(moment: datetime, zone: ZoneInfo) -> str:
    return escape(f"{moment.astimezone(zone):%Y-%m-%d %H:%M}")
