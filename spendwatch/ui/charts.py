"""SVG charts, drawn in Python on the server.

Server-side SVG needs nothing vendored, nothing from a CDN and no script: the page arrives with its
charts drawn, works with JavaScript off, and stays a few tens of kilobytes. The charts are simple
(stacked bars, horizontal budget bars), which is all SVG rectangles and a little arithmetic. Each bar
segment carries a `<title>`, which browsers show as a tooltip. Every string is escaped.
"""

from __future__ import annotations

import math
from datetime import datetime
from html import escape

from spendwatch.money import usd
from spendwatch.ui.panels import BudgetBar, SpendOverTime

# Colour-blind-safe (Okabe-Ito), then a grey for "other".
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442")
OTHER_COLOUR = "#9a9a9a"

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 10, 28


def series_colour(position: int, is_other: bool) -> str:
    return OTHER_COLOUR if is_other else PALETTE[position % len(PALETTE)]


def nice_ticks(maximum: float, count: int = 4) -> list[float]:
    """Round steps (1, 2 or 5 times a power of ten) from 0 up to at least `maximum`."""
    if maximum <= 0:
        return [0.0, 1.0]
    raw = maximum / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(multiple * power for multiple in (1, 2, 5, 10) if multiple * power >= raw)
    steps = math.ceil(maximum / step - 1e-9)
    return [round(step * index, 10) for index in range(steps + 1)]


def tick_label(amount: float, step: float) -> str:
    """Dollars with as many decimals as the axis's step needs (at least cents below a dollar)."""
    decimals = 0 if step >= 1 else max(2, -math.floor(math.log10(step)))
    return f"${amount:,.{decimals}f}"


def bucket_label(bucket: datetime, unit: str) -> str:
    return f"{bucket:%H:%M}" if unit == "hour" else f"{bucket:%b} {bucket.day}"


def spend_chart(data: SpendOverTime) -> str:
    """Stacked bars of dollars per bucket, one `<g class="bucket">` per bucket, with axes."""
    buckets = data.period.buckets
    totals = [sum(series.values[index] for series in data.series) for index in range(len(buckets))]
    ticks = nice_ticks(max(totals, default=0))
    top_value = ticks[-1]
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_width / len(buckets)
    bar_width = max(slot * 0.78, 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="Spend per {data.period.unit}, stacked by {escape(data.stack)}" '
        'xmlns="http://www.w3.org/2000/svg">'
    ]
    for tick in ticks:
        y = TOP + plot_height - tick / top_value * plot_height
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        label = tick_label(tick, ticks[1])
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    label_every = max(1, math.ceil(len(buckets) / 8))
    for index, bucket in enumerate(buckets):
        x = LEFT + index * slot + (slot - bar_width) / 2
        when = bucket_label(bucket, data.period.unit)
        parts.append(f'<g class="bucket" data-bucket="{bucket.isoformat()}" data-total="{totals[index]:.6f}">')
        y = TOP + plot_height
        for position, series in enumerate(data.series):
            value = series.values[index]
            if value <= 0:
                continue
            height = value / top_value * plot_height
            y -= height
            colour = series_colour(position, series.key is None)
            tooltip = f"{when} · {series.label}: {usd(value)}"
            parts.append(
                f'<rect x="{x:.2f}" y="{y:.2f}" width="{bar_width:.2f}" height="{height:.2f}" fill="{colour}" '
                f'data-series="{escape(series.label)}" data-value="{value:.6f}"><title>{escape(tooltip)}</title></rect>'
            )
        parts.append("</g>")
        if index % label_every == 0:
            centre = LEFT + index * slot + slot / 2
            parts.append(
                f'<text class="axis" x="{centre:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{escape(when)}</text>'
            )
    parts.append(
        f'<line class="baseline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_height}" y2="{TOP + plot_height}"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


BUDGET_WIDTH, BUDGET_HEIGHT = 400, 30


def budget_chart(bar: BudgetBar) -> str:
    """A horizontal bar: spent (coloured by how near the limit), the limit, threshold marks, the forecast."""
    scale = max(bar.limit_usd, bar.spent_usd, bar.forecast_usd or 0) * 1.05
    inner = BUDGET_WIDTH - 2

    def x(amount: float) -> float:
        return 1 + amount / scale * inner

    share = bar.spent_usd / bar.limit_usd
    level = "over" if share >= 1 else "near" if share >= min(bar.thresholds) else "ok"
    parts = [
        f'<svg class="budget-bar" viewBox="0 0 {BUDGET_WIDTH} {BUDGET_HEIGHT}" role="img" '
        f'aria-label="{escape(usd(bar.spent_usd))} of {escape(usd(bar.limit_usd))}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<rect class="track" x="1" y="6" width="{x(bar.limit_usd) - 1:.2f}" height="18" rx="3"/>',
    ]
    if bar.forecast_usd is not None and bar.forecast_usd > bar.spent_usd:
        parts.append(
            f'<rect class="forecast" x="1" y="6" width="{x(bar.forecast_usd) - 1:.2f}" height="18" rx="3">'
            f"<title>{escape(f'forecast at the end of the window: {usd(bar.forecast_usd)}')}</title></rect>"
        )
    if bar.spent_usd > 0:
        parts.append(
            f'<rect class="spent {level}" x="1" y="6" width="{x(bar.spent_usd) - 1:.2f}" height="18" rx="3">'
            f"<title>{escape(f'spent {usd(bar.spent_usd)} of {usd(bar.limit_usd)} ({share:.0%})')}</title></rect>"
        )
    for threshold in bar.thresholds:
        position = x(bar.limit_usd * threshold)
        parts.append(
            f'<line class="threshold" x1="{position:.2f}" x2="{position:.2f}" y1="2" y2="28">'
            f"<title>{threshold:.0%} threshold: {escape(usd(bar.limit_usd * threshold))}</title></line>"
        )
    parts.append("</svg>")
    return "".join(parts)
