"""Pricing LLM calls: genai-prices' bundled data (offline), or the config's own `[prices]`.

genai-prices names providers its own way; `providers.GENAI_PRICES_PROVIDER` maps the semconv names onto them. A
model it does not know has no price (None), never a price of zero: an unpriced call must stay visible.

Resolving a model to its price (~80 µs) and applying it (~100 µs) are too slow for every span of a
busy fleet, so both are cached: a price can change over time (genai-prices knows the dates), so per
(provider, model, day of the call). A price that is linear in the token counts — most are — is reduced
once to four per-token rates, read off genai-prices itself and checked against it on a sample usage;
tiered prices (and any price that fails that check) are applied by genai-prices to each call's usage.

A call that used more than tokens (web searches, characters, audio seconds, images: `fees`) is priced by
`price_call`, through genai-prices with the whole usage at once, or `fees`' tables where it cannot.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from spendwatch import semconv
from spendwatch.collector import fees
from spendwatch.collector.providers import GENAI_PRICES_PROVIDER
from spendwatch.collector.rows import SpanRow

_PER_MILLION = 1_000_000


@dataclass(frozen=True)
class PriceOverride:
    """USD per million tokens, from the config's `[prices]`; a missing rate falls back as described."""

    input: float
    output: float
    cache_read: float | None = None  # default: the input rate
    cache_write: float | None = None  # default: the input rate

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


class Pricer:
    def __init__(self, overrides: dict[str, PriceOverride] | None = None) -> None:
        self.overrides = overrides or {}

    def price(
        self,
        provider: str | None,
        models: tuple[str | None, ...],
        *,
        at: datetime | None = None,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
    ) -> float | None:
        """The call's cost in USD, from the first of `models` with a known price; None if none has one."""
        if input_tokens is None and output_tokens is None:
            return None
        counts = (input_tokens or 0, output_tokens or 0, cache_read_tokens or 0, cache_write_tokens or 0)
        day = (at or datetime.now(UTC)).date().isoformat()
        for model in models:
            if not model:
                continue
            override = self.overrides.get(model)
            if override is not None:
                return override.cost(*counts)
            model_price = _model_price(GENAI_PRICES_PROVIDER.get(provider or "", provider or ""), model, day)
            if model_price is not None:
                rates, up_to = _linear_rates(model_price)
                if rates is not None and counts[2] + counts[3] <= counts[0] <= up_to:
                    return float(_apply(rates, *counts))
                return _calc(model_price, *counts)
        return None

    def price_call(
        self,
        provider: str | None,
        models: tuple[str | None, ...],
        *,
        at: datetime | None = None,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        attributes: dict[str, Any] | None = None,
        free_when_answered: bool = False,
    ) -> tuple[float | None, float | None]:
        """(cost, fees) of a call with everything it used; fees are the per-use part of the cost.

        `free_when_answered`: an answered call of an API billed by nothing it reports (moderations) costs
        what its model's price says for no usage, zero, rather than nothing known.
        """
        attributes = attributes or {}
        extra, fee_usage = fees.usage_counts(attributes)
        per_use = extra or fee_usage or attributes.get(semconv.SPENDWATCH_USAGE_IMAGES) or free_when_answered
        tokens = dict(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
        )
        if not per_use:
            return self.price(provider, models, at=at, **tokens), None
        day = (at or datetime.now(UTC)).date().isoformat()
        provider_id = GENAI_PRICES_PROVIDER.get(provider or "", provider or "")
        for model in models:
            if not model:
                continue
            override = self.overrides.get(model)
            model_price = None if override is not None else _model_price(provider_id, model, day)
            image_cost = fees.per_image_cost(model, attributes)
            if override is None and model_price is None and image_cost is None:
                continue
            cost: float | None = None
            has_tokens = input_tokens is not None or output_tokens is not None
            if override is not None:
                cost = self.price(provider, (model,), at=at, **tokens) if has_tokens else None
            elif model_price is not None and (has_tokens or extra or free_when_answered):
                usage = {key: value for key, value in tokens.items() if value}
                cost = fees.calc(model_price, {**usage, **extra})
            if cost == 0 and extra and not has_tokens:
                cost = None  # its price has no rate for what it used (gpt-4o-mini-tts by characters): unknown, not 0
            if cost is None or (cost == 0 and image_cost):
                cost = image_cost
            fee = 0.0
            if fee_usage:
                fee = fees.calc(model_price, fee_usage) if model_price is not None else 0.0
                if fee and cost is not None and model_price is not None:  # one sum, as genai-prices makes it
                    usage = {key: value for key, value in tokens.items() if value}
                    return fees.calc(model_price, {**usage, **extra, **fee_usage}), fee
                if fee == 0.0:  # a model genai-prices prices without its search fee: the documented table
                    fee = fees.web_search_fallback(model, fee_usage["web_searches"])
            if cost is None and not fee:
                return None, None
            return (cost or 0.0) + fee, fee or None
        return None, None

    def price_total(
        self,
        provider: str | None,
        model: str | None,
        *,
        at: datetime | None = None,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float | None:
        """The cost of many calls' usage summed (a provider's usage bucket), at the rates each call got.

        A tiered price applies to each call's own input, so a day's millions of tokens are not one call
        past every tier: they are priced at the base rates, as calls below the first tier are.
        """
        if not model:
            return None
        counts = (input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)
        override = self.overrides.get(model)
        if override is not None:
            return override.cost(*counts)
        day = (at or datetime.now(UTC)).date().isoformat()
        model_price = _model_price(GENAI_PRICES_PROVIDER.get(provider or "", provider or ""), model, day)
        if model_price is None:
            return None
        rates, _ = _linear_rates(model_price)
        if rates is not None and counts[2] + counts[3] <= counts[0]:
            return float(_apply(rates, *counts))
        return _calc(model_price, *counts)


def _calc(model_price: Any, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int) -> float:
    return float(_calc_exact(model_price, input_tokens, output_tokens, cache_read, cache_write))


def _calc_exact(model_price: Any, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int) -> Decimal:
    from genai_prices import Usage

    usage = Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )
    return model_price.calc_price(usage)["total_price"]


# USD per token, as genai-prices' own Decimals: uncached input, output, cache read, cache write. In
# Decimal the sum is exact, so a call costs to the last bit what genai-prices would have said.
_Rates = tuple[Decimal, Decimal, Decimal, Decimal]


def _apply(rates: _Rates, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int) -> Decimal:
    uncached = input_tokens - cache_read - cache_write
    return uncached * rates[0] + output_tokens * rates[1] + cache_read * rates[2] + cache_write * rates[3]


_linear: dict[int, tuple[Any, _Rates | None, float]] = {}


def _linear_rates(model_price: Any) -> tuple[_Rates | None, float]:
    """The price's per-token rates where it is linear, and up to how many input tokens (cached per price).

    A tiered price is linear up to its first tier (genai-prices applies a tier's rate to all tokens
    once the input is above its start), so calls below that use the base rates.
    """
    cached = _linear.get(id(model_price))
    if cached is not None and cached[0] is model_price:
        return cached[1], cached[2]
    rates: _Rates | None = None
    up_to = float("inf")
    try:
        from genai_prices.types import TieredPrices

        for value in vars(model_price).values():
            if isinstance(value, TieredPrices) and value.tiers:
                up_to = min(up_to, float(value.tiers[0].start))
        probe = int(min(_PER_MILLION, up_to))
        rates = (
            _calc_exact(model_price, probe, 0, 0, 0) / probe,
            _calc_exact(model_price, 0, probe, 0, 0) / probe,
            _calc_exact(model_price, probe, 0, probe, 0) / probe,
            _calc_exact(model_price, probe, 0, 0, probe) / probe,
        )
        scale = probe / _PER_MILLION
        sample = (int(123_457 * scale), int(6_789 * scale), int(45_678 * scale), int(1_234 * scale))
        if _apply(rates, *sample) != _calc_exact(model_price, *sample):
            rates = None
    except Exception:  # a price genai-prices cannot apply to a probe: leave it to each call
        rates = None
    _linear[id(model_price)] = (model_price, rates, up_to)
    return rates, up_to


@lru_cache(maxsize=8192)
def _model_price(provider_id: str, model: str, day: str) -> Any:  # genai_prices ModelPrice | None
    from genai_prices import Usage, calc_price

    if not provider_id:
        return None
    timestamp = datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)
    try:
        return calc_price(Usage(), model, provider_id=provider_id, genai_request_timestamp=timestamp).model_price
    except LookupError:
        return None


FREE_OPERATIONS = frozenset({"moderation"})  # answered, they cost nothing: zero, not unknown
# A row whose stored attributes say what it used besides tokens: only those are parsed again to be priced.
_PER_USE_MARKS = ("spendwatch.usage.", "spendwatch.request.")


def price_rows(rows: Iterable[SpanRow], pricer: Pricer) -> list[SpanRow]:
    """The pricing stage: each row parsed from a span, with its cost and fees."""
    return [price_row(row, pricer) for row in rows]


def price_row(row: SpanRow, pricer: Pricer) -> SpanRow:
    attributes = json.loads(row.attributes) if any(mark in row.attributes for mark in _PER_USE_MARKS) else None
    cost, fees_usd = pricer.price_call(
        row.provider,
        (row.response_model, row.request_model),
        at=datetime.fromtimestamp(row.start_ns / 1e9, UTC),
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        cache_read_tokens=row.cache_read_tokens,
        cache_write_tokens=row.cache_write_tokens,
        attributes=attributes,
        free_when_answered=row.operation in FREE_OPERATIONS and row.error_type is None,
    )
    return row._replace(cost_usd=cost, fees_usd=fees_usd)
