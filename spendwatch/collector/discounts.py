"""What the user pays, from list price: the config's discounts, markups and committed-use rates.

Providers invoice list price less what a contract says: an enterprise discount on everything from one
provider, a committed-use rate for one model, a reseller's or gateway's markup on one key. spendwatch keeps
both figures — `list_cost_usd` (list price, FinOps' ListCost) and `cost_usd` (what is paid, EffectiveCost)
— so a discount never hides what the same calls would cost at list.

A rule matches a call by provider, key id and model (each optional; a model may be a shell pattern such
as `gpt-5*`), and by date (`from`, `until`: a contract's term). The first rule that matches applies — put
the specific ones first — and does one thing:

- `discount = 0.15`: 15% off list price;
- `markup = 0.05`: 5% on top of list price;
- `input`, `output`, `cache_read`, `cache_write` (USD per million tokens): a committed-use rate that
  replaces list price for the tokens; per-use fees (web searches) stay at list price.

No rule: what is paid is list price.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import date, datetime

_PER_MILLION = 1_000_000


@dataclass(frozen=True)
class TokenRates:
    """USD per million tokens; a cache rate left out is the input rate."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None

    def cost(self, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int) -> float:
        uncached = max(input_tokens - cache_read - cache_write, 0)
        cache_read_rate = self.input if self.cache_read is None else self.cache_read
        cache_write_rate = self.input if self.cache_write is None else self.cache_write
        return (
            uncached * self.input
            + cache_read * cache_read_rate
            + cache_write * cache_write_rate
            + output_tokens * self.output
        ) / _PER_MILLION


@dataclass(frozen=True)
class DiscountRule:
    name: str
    provider: str | None = None
    api_key_id: str | None = None
    model: str | None = None  # exact, or a shell pattern (`gpt-5*`)
    starts: date | None = None  # `from`: the first day it applies (UTC)
    ends: date | None = None  # `until`: the last day it applies (UTC)
    discount: float | None = None  # a fraction of list price taken off
    markup: float | None = None  # a fraction of list price added
    rates: TokenRates | None = None  # committed-use rates for the tokens

    def matches(self, provider: str | None, model: str | None, api_key_id: str | None, at: datetime) -> bool:
        if self.provider is not None and self.provider != provider:
            return False
        if self.api_key_id is not None and self.api_key_id != api_key_id:
            return False
        if self.model is not None and not (model and fnmatch.fnmatchcase(model, self.model)):
            return False
        day = at.date()
        return (self.starts is None or day >= self.starts) and (self.ends is None or day <= self.ends)

    def describe(self) -> str:
        if self.discount is not None:
            effect = f"{self.discount:.4g} off list price ({self.discount * 100:.4g}%)"
        elif self.markup is not None:
            effect = f"{self.markup:.4g} on top of list price ({self.markup * 100:.4g}%)"
        else:
            assert self.rates is not None
            rates = self.rates
            effect = f"committed rates: input ${rates.input:g}, output ${rates.output:g}"
            if rates.cache_read is not None:
                effect += f", cache read ${rates.cache_read:g}"
            if rates.cache_write is not None:
                effect += f", cache write ${rates.cache_write:g}"
            effect += " per million tokens"
        return f"{self.name}: {effect}"


def first_match(
    rules: tuple[DiscountRule, ...], provider: str | None, model: str | None, api_key_id: str | None, at: datetime
) -> DiscountRule | None:
    for rule in rules:
        if rule.matches(provider, model, api_key_id, at):
            return rule
    return None


def effective(
    rule: DiscountRule | None,
    list_cost: float | None,
    fees: float | None,
    tokens: tuple[int, int, int, int] | None,
) -> tuple[float | None, float | None]:
    """(what is paid, the part of it that is fees) for a call listed at `list_cost` with `fees` in it.

    `tokens` (input, output, cache read, cache write) are what a committed rate prices; None when the call
    was not billed by tokens, which a committed rate then leaves at list price.
    """
    if rule is None or list_cost is None:
        return list_cost, fees
    if rule.discount is not None or rule.markup is not None:
        factor = 1 - rule.discount if rule.discount is not None else 1 + (rule.markup or 0.0)
        return list_cost * factor, None if fees is None else fees * factor
    if rule.rates is None or tokens is None:
        return list_cost, fees
    return rule.rates.cost(*tokens) + (fees or 0.0), fees
