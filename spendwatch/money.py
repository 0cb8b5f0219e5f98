"""Dollars as every part of spendwatch shows them: the report, the dashboard, the alerts."""

from __future__ import annotations

import math

# The column of a call's cost at list prices (`cost_usd` is what is paid, the config's discounts applied).
# Every export of list cost follows it: the metrics' `spendwatch_list_cost_usd_total`, FOCUS's ListCost.
LIST_COST_COLUMN = "list_cost_usd"


def usd(amount: float | None, missing: str = "") -> str:
    """Dollars to the cent from a dollar up; below, to two significant digits, at least to $0.0001 (a
    call costs fractions of a cent, and "$0.00" would say it was free). `missing` stands for no amount."""
    if amount is None:
        return missing
    if amount == 0 or abs(amount) >= 1:
        return f"${amount:,.2f}"
    decimals = min(8, max(4, 1 - math.floor(math.log10(abs(amount)))))
    return f"${amount:,.{decimals}f}"
