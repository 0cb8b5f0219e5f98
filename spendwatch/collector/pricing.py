"""Pricing LLM calls: list price from genai-prices (or the config's own models), what is paid from the
config's discount rules.

`Pricer.price_call` prices one call from its usage — the token counts and the span's attributes, which
carry what is priced apart (cache writes by lifetime, audio and image tokens, characters, seconds, web
searches: `fees`) and how the call was served (`tier`: OpenAI's flex / priority, Gemini's, Anthropic's
batch and fast mode, a Batch API result). It gives a `Price`: `list_cost_usd`, `cost_usd` (what is paid:
list price less the first matching discount rule), `fees_usd` and the price data that priced it. It
imports nothing heavier than genai-prices, so anything that has a call's usage can price it.

genai-prices names providers its own way (`providers.GENAI_PRICES_PROVIDER`). A model it does not know
has no price (None), never a price of zero: an unpriced call must stay visible.

Each call's list price is genai-prices' `calc_price` with the call's usage, its `price_context` (the tier)
and its time — prices change over time, some by the hour (DeepSeek's off-peak rates). That takes ~100 µs,
too slow for every span of a busy fleet, so the common case is cached: a price that is linear in the four
token counts is reduced once to per-token rates, read off genai-prices itself and checked against it on a
sample, per (provider, model, tier, day — or minute, for prices that change within a day); calls with
anything more (modalities, lifetimes, fees, a tiered price above its first tier) go to `calc_price`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from spendwatch import semconv
from spendwatch.collector import discounts, fees, price_data, tiers
from spendwatch.collector.discounts import DiscountRule, TokenRates
from spendwatch.collector.providers import GENAI_PRICES_PROVIDER
from spendwatch.collector.rows import SpanRow

logger = logging.getLogger("spendwatch.collector")

_PER_MILLION = 1_000_000
PriceOverride = TokenRates  # a model of the config's own (`[prices.models]`), USD per million tokens
CUSTOM_VERSION = "config"  # the price data version of a call priced at the config's own prices
CUSTOM_SOURCE = "[prices.models]"


class Price(NamedTuple):
    """A call's price. `cost_usd` is what is paid; `list_cost_usd` list price; both None: no known price."""

    cost_usd: float | None
    list_cost_usd: float | None = None
    fees_usd: float | None = None  # the part of cost_usd that is per-use fees (web searches, grounding)
    price_data_version: str | None = None
    price_data_source: str | None = None
    model: str | None = None  # which of the call's models was priced
    tier: tuple[tuple[str, str], ...] = ()  # genai-prices' price context, such as (("service_tier", "flex"),)
    rule: DiscountRule | None = None  # the discount rule that applied
    tier_share: float = 1.0  # for a tier the data has no price for: the provider's share of standard (tiers.py)
    tier_unknown: tuple[tuple[str, str], ...] = ()  # a tier priced at standard: neither the data nor a rule knows it


NO_PRICE = Price(None)

# Where the span says how the call was served, and the price context genai-prices selects prices by.
SERVICE_TIER_ATTRIBUTES = semconv.SERVICE_TIER_ATTRIBUTES
_NO_TIER = frozenset({"", "standard", "default", "auto", "on_demand"})


def price_context(attributes: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """genai-prices' price context for a call: its service tier, batch processing, fast mode."""
    context: dict[str, str] = {}
    for name in SERVICE_TIER_ATTRIBUTES:
        tier = attributes.get(name)
        if isinstance(tier, str):
            tier = tier.strip().lower()
            if tier == "batch":  # Anthropic says a Message Batches result's tier is `batch`
                context["processing"] = "batch"
            elif tier not in _NO_TIER:
                context["service_tier"] = tier
            break
    if attributes.get(semconv.SPENDWATCH_REQUEST_BATCH) is True:
        context["processing"] = "batch"
    speed = attributes.get(semconv.SPENDWATCH_RESPONSE_SPEED)
    if isinstance(speed, str) and speed.strip().lower() not in _NO_TIER:
        context["speed"] = speed.strip().lower()
    return tuple(sorted(context.items()))


@dataclass
class _Resolved:
    model_price: Any  # genai_prices ModelPrice for this provider, model, tier and time
    rates: tuple[Decimal, Decimal, Decimal, Decimal] | None  # per token, where the price is linear
    up_to: float  # input tokens up to which `rates` hold (a tiered price's first tier)
    share: float = 1.0  # of the standard price, for a tier without a price variant (tiers.py)
    unknown_tiers: tuple[tuple[str, str], ...] = ()


class Pricer:
    def __init__(
        self,
        overrides: Mapping[str, TokenRates] | None = None,
        discount_rules: Iterable[DiscountRule] = (),
    ) -> None:
        self.overrides = dict(overrides or {})
        self.discount_rules = tuple(discount_rules)
        self._snapshot: Any = None
        self._data: price_data.PriceData | None = None
        self._resolved: dict[tuple, _Resolved | None] = {}
        self._intraday: dict[tuple[str, str], bool] = {}

    # -- the price data in force --------------------------------------------------------------------

    def data(self) -> price_data.PriceData:
        """The price data genai-prices prices with now; the caches follow it when it changes."""
        current = price_data.current()
        if current.snapshot is not self._snapshot:
            self._snapshot = current.snapshot
            self._resolved.clear()
            self._intraday.clear()
        if self._data is None or self._data.snapshot is not current.snapshot:
            self._data = current
        return self._data

    # -- list price -----------------------------------------------------------------------------------

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
        """The list price in USD of a call billed by tokens alone; None if none of `models` has a price."""
        return self.price_call(
            provider,
            models,
            at=at,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
        ).list_cost_usd

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
        reasoning_tokens: int | None = None,
        attributes: Mapping[str, Any] | None = None,
        api_key_id: str | None = None,
        free_when_answered: bool = False,
    ) -> Price:
        """One call's price from its usage; `attributes` are its span's (what is priced apart, its tier).

        `free_when_answered`: an answered call of an API billed by nothing it reports (moderations) costs
        what its model's price says for no usage, zero, rather than nothing known.
        """
        at = at or datetime.now(UTC)
        attributes = attributes or {}
        data = self.data()
        tokens = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_tokens": cache_read_tokens,
            "cache_write_tokens": cache_write_tokens,
        }
        has_tokens = input_tokens is not None or output_tokens is not None
        parts, extra, fee_usage = fees.usage_counts(attributes)
        if reasoning_tokens:
            parts["output_reasoning_tokens"] = reasoning_tokens
        images = attributes.get(semconv.SPENDWATCH_USAGE_IMAGES)
        if not (has_tokens or extra or fee_usage or images or free_when_answered):
            return NO_PRICE
        context = price_context(attributes)
        provider_id = GENAI_PRICES_PROVIDER.get(provider or "", provider or "")
        for model in models:
            if not model:
                continue
            override = self.overrides.get(model)
            if override is not None:
                if not has_tokens:
                    continue
                counts = _counts(tokens)
                listed = override.cost(*counts)
                return self._paid(provider, model, api_key_id, at, listed, None, counts, CUSTOM_VERSION, CUSTOM_SOURCE)
            resolved = self._resolve(provider_id, model, at, context)
            image_cost = fees.per_image_cost(model, attributes)
            if resolved is None and image_cost is None:
                continue
            fee = 0.0
            if fee_usage and resolved is not None:
                fee = fees.calc(resolved.model_price, fee_usage)
            share = resolved.share if resolved is not None else 1.0
            listed: float | None = None
            if resolved is not None and (has_tokens or extra or free_when_answered):
                # with a fee genai-prices knows, one sum of everything, as genai-prices makes it
                one_sum = bool(fee) and share == 1.0
                priced = {**extra, **fee_usage} if one_sum else extra
                listed = self._list_price(provider_id, model, at, context, resolved, tokens, parts, priced)
                if listed is not None and share != 1.0:
                    listed *= share  # the tier's share of the standard price, for the usage, not the fees
                if listed is not None and one_sum:
                    counts = _counts(tokens) if has_tokens else None
                    return self._paid(
                        provider,
                        model,
                        api_key_id,
                        at,
                        listed,
                        fee,
                        counts,
                        data.version,
                        data.source,
                        context,
                        resolved,
                    )
                if listed == 0 and extra and not has_tokens:
                    listed = None  # its price has no rate for what it used (gpt-4o-mini-tts by characters)
            if listed is None or (listed == 0 and image_cost):
                listed = image_cost
            if fee_usage and fee == 0.0:  # a model genai-prices prices without its search fee: the documented table
                fee = fees.web_search_fallback(model, fee_usage["web_searches"])
            if listed is None and not fee:
                return NO_PRICE
            listed = (listed or 0.0) + fee
            counts = _counts(tokens) if has_tokens else None
            return self._paid(
                provider,
                model,
                api_key_id,
                at,
                listed,
                fee or None,
                counts,
                data.version,
                data.source,
                context,
                resolved,
            )
        return NO_PRICE

    def knows(self, provider: str | None, models: tuple[str | None, ...], *, at: datetime | None = None) -> bool:
        """Whether any of `models` has a price: the config's, genai-prices' or a per-image table's."""
        at = at or datetime.now(UTC)
        self.data()
        provider_id = GENAI_PRICES_PROVIDER.get(provider or "", provider or "")
        return any(
            model
            and (
                model in self.overrides
                or model in fees.PER_IMAGE_USD
                or self._resolve(provider_id, model, at, ()) is not None
            )
            for model in models
        )

    def resolved(
        self, provider: str | None, model: str, *, at: datetime, context: tuple[tuple[str, str], ...] = ()
    ) -> tuple[_Resolved | None, bool]:
        """genai-prices' price of the model for this provider, tier and time (None: it has none), and
        whether that price changes within the day (rate_cards.py)."""
        provider_id = GENAI_PRICES_PROVIDER.get(provider or "", provider or "")
        self.data()
        found = self._resolve(provider_id, model, at, context)
        return found, bool(self._intraday.get((provider_id, model)))

    def _paid(
        self,
        provider: str | None,
        model: str,
        api_key_id: str | None,
        at: datetime,
        listed: float,
        fee: float | None,
        counts: tuple[int, int, int, int] | None,
        version: str,
        source: str,
        context: tuple[tuple[str, str], ...] = (),
        resolved: _Resolved | None = None,
    ) -> Price:
        rule = discounts.first_match(self.discount_rules, provider, model, api_key_id, at)
        paid, paid_fees = discounts.effective(rule, listed, fee, counts)
        share, unknown = (resolved.share, resolved.unknown_tiers) if resolved is not None else (1.0, ())
        return Price(paid, listed, paid_fees, version, source, model, context, rule, share, unknown)

    def _list_price(
        self,
        provider_id: str,
        model: str,
        at: datetime,
        context: tuple[tuple[str, str], ...],
        resolved: _Resolved,
        tokens: dict[str, int | None],
        parts: dict[str, float],
        extra: dict[str, float],
    ) -> float | None:
        """List price without per-use fees; None when genai-prices cannot apply the price to this usage."""
        counts = _counts(tokens)
        rates = resolved.rates
        if not parts and not extra and rates is not None and counts[2] + counts[3] <= counts[0] <= resolved.up_to:
            return float(_apply(rates, *counts))
        usage = {key: value for key, value in tokens.items() if value}
        detailed = {**usage, **_consistent(usage, parts), **extra}
        for attempt in (detailed, {**usage, **extra}):  # the parts, and without them if they do not add up
            try:
                return float(_calc_price(attempt, model, provider_id, at, context))
            except ValueError:
                continue
            except LookupError:
                return None
        return None

    def _resolve(
        self, provider_id: str, model: str, at: datetime, context: tuple[tuple[str, str], ...]
    ) -> _Resolved | None:
        """genai-prices' price for the model at `at` in this tier, cached; None for a model it does not know."""
        if not provider_id:
            return None
        intraday = self._intraday.get((provider_id, model))
        key = (provider_id, model, context, at.date(), (at.hour, at.minute) if intraday else None)
        if intraday is not None and key in self._resolved:
            return self._resolved[key]
        try:
            found = calculation({}, model, provider_id, at, context)
        except LookupError:
            self._intraday[(provider_id, model)] = False
            self._resolved[key] = None
            return None
        if intraday is None:
            intraday = _changes_within_a_day(found.model)
            self._intraday[(provider_id, model)] = intraday
            key = (provider_id, model, context, at.date(), (at.hour, at.minute) if intraday else None)
        rates, up_to = _linear_rates(found.model_price)
        share, unknown = tiers.share(provider_id, tiers.unpriced_tiers(found, context, at))
        resolved = self._resolved[key] = _Resolved(found.model_price, rates, up_to, share, unknown)
        if len(self._resolved) > 20_000:  # a bound, whatever the variety of models and minutes
            self._resolved.clear()
        return resolved

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
        self.data()
        provider_id = GENAI_PRICES_PROVIDER.get(provider or "", provider or "")
        resolved = self._resolve(provider_id, model, at or datetime.now(UTC), ())
        if resolved is None:
            return None
        if resolved.rates is not None and counts[2] + counts[3] <= counts[0]:
            return float(_apply(resolved.rates, *counts))
        return float(_calc_exact(resolved.model_price, *counts))


def _counts(tokens: Mapping[str, int | None]) -> tuple[int, int, int, int]:
    return (
        tokens["input_tokens"] or 0,
        tokens["output_tokens"] or 0,
        tokens["cache_read_tokens"] or 0,
        tokens["cache_write_tokens"] or 0,
    )


def _consistent(usage: Mapping[str, int], parts: Mapping[str, float]) -> dict[str, float]:
    """The parts, with the totals they are parts of made at least their sum (a cache write count that
    another instrumentation left out while sending its lifetimes, for instance)."""
    found = dict(parts)
    lifetimes = found.get("cache_write_5m_tokens", 0) + found.get("cache_write_1h_tokens", 0)
    if lifetimes > usage.get("cache_write_tokens", 0):
        found["cache_write_tokens"] = lifetimes
    return found


def _calc_price(
    usage: Mapping[str, Any], model: str, provider_id: str, at: datetime, context: tuple[tuple[str, str], ...]
) -> Decimal:
    return calculation(usage, model, provider_id, at, context).total_price


def calculation(
    usage: Mapping[str, Any], model: str, provider_id: str, at: datetime, context: tuple[tuple[str, str], ...]
) -> Any:
    """genai-prices' `calc_price` for a usage in its own names, at a time, in a tier (its PriceCalculation)."""
    from genai_prices import Usage, calc_price

    values = {key: (int(value) if float(value).is_integer() else Decimal(str(value))) for key, value in usage.items()}
    return calc_price(
        Usage(**values),
        model,
        provider_id=provider_id,
        genai_request_timestamp=at,
        price_context=dict(context) or None,
    )


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
    if len(_linear) > 20_000:
        _linear.clear()
    _linear[id(model_price)] = (model_price, rates, up_to)
    return rates, up_to


def _changes_within_a_day(model_info: Any) -> bool:
    """Whether the model has prices by time of day (DeepSeek's off-peak hours)."""
    from genai_prices.types import TimeOfDateConstraint

    conditional = model_info.prices if isinstance(model_info.prices, list) else []
    constraints = [price.constraint for price in conditional] + [
        variant.constraint for variant in model_info.price_variants or ()
    ]
    return any(isinstance(constraint, TimeOfDateConstraint) for constraint in constraints)


FREE_OPERATIONS = frozenset({"moderation"})  # answered, they cost nothing: zero, not unknown
# A row whose stored attributes say what it used besides tokens, or how it was served: only those are
# parsed again to be priced.
_PRICED_MARKS = ("spendwatch.usage.", "spendwatch.request.", "spendwatch.response.", "service_tier")


def price_rows(rows: Iterable[SpanRow], pricer: Pricer) -> list[SpanRow]:
    """The pricing stage: each row parsed from a span, with its cost, list cost, fees and price data."""
    return [price_row(row, pricer) for row in rows]


def price_row(row: SpanRow, pricer: Pricer) -> SpanRow:
    price = price_of(
        pricer,
        provider=row.provider,
        response_model=row.response_model,
        request_model=row.request_model,
        start=datetime.fromtimestamp(row.start_ns / 1e9, UTC),
        counts=(row.input_tokens, row.output_tokens, row.cache_read_tokens, row.cache_write_tokens),
        reasoning_tokens=row.reasoning_tokens,
        attributes=row.attributes,
        api_key_id=row.api_key_id,
        free=row.operation in FREE_OPERATIONS and row.error_type is None,
    )
    return row._replace(
        cost_usd=price.cost_usd,
        fees_usd=price.fees_usd,
        list_cost_usd=price.list_cost_usd,
        price_data_version=price.price_data_version,
        price_data_source=price.price_data_source,
    )


def price_of(
    pricer: Pricer,
    *,
    provider: str | None,
    response_model: str | None,
    request_model: str | None,
    start: datetime,
    counts: tuple[int | None, int | None, int | None, int | None],
    reasoning_tokens: int | None,
    attributes: str | None,
    api_key_id: str | None,
    free: bool,
) -> Price:
    """The price of a stored call (a row's columns, its attributes as stored JSON text)."""
    kept = json.loads(attributes) if attributes and any(mark in attributes for mark in _PRICED_MARKS) else None
    try:
        return pricer.price_call(
            provider,
            (response_model, request_model),
            at=start,
            input_tokens=counts[0],
            output_tokens=counts[1],
            cache_read_tokens=counts[2],
            cache_write_tokens=counts[3],
            reasoning_tokens=reasoning_tokens,
            attributes=kept if isinstance(kept, dict) else None,
            api_key_id=api_key_id,
            free_when_answered=free,
        )
    except Exception as error:  # usage genai-prices refuses (a cache larger than the input): no known price
        logger.debug("a call could not be priced (%s)", type(error).__name__)
        return NO_PRICE
