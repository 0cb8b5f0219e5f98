"""Why a call costs what it costs: each component of its price, the tier, the discount, the data used.

The components are genai-prices' own: its price for the model (in the call's tier, at the call's time)
splits the usage into leaves — fresh input is the input that is not cache reads, cache writes, audio or
images priced apart; output includes reasoning unless reasoning has a price of its own — and prices each
leaf at its rate (a tiered rate once the prompt is over the tier's start). They add up to the list price;
the config's discount rule turns that into what is paid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from spendwatch import semconv
from spendwatch.collector import fees, pricing
from spendwatch.collector.pricing import CUSTOM_VERSION, Price, Pricer
from spendwatch.collector.providers import GENAI_PRICES_PROVIDER

# genai-prices' usage names, as the components are called
LABELS = {
    "input_tokens": "fresh input",
    "cache_read_tokens": "cache read",
    "cache_write_tokens": "cache write",
    "cache_write_5m_tokens": "cache write (5m)",
    "cache_write_1h_tokens": "cache write (1h)",
    "output_tokens": "output",
    "output_reasoning_tokens": "reasoning",
    "input_audio_tokens": "audio input",
    "cache_audio_read_tokens": "cached audio",
    "output_audio_tokens": "audio output",
    "input_image_tokens": "image input",
    "cache_image_read_tokens": "cached images",
    "output_image_tokens": "image output",
    "input_video_tokens": "video input",
    "web_searches": "web searches",
    "input_characters": "characters",
    "audio_seconds": "audio seconds",
    "requests": "per request",
}
_UNITS = {1_000_000: "per million", 1_000: "per thousand", 3_600: "per hour"}


def _number(value: Any) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


@dataclass
class Component:
    name: str
    quantity: float
    rate: str  # e.g. "$3 per million", "$6 per million (prompt over 200,000 tokens)"
    cost_usd: float


@dataclass
class Explanation:
    provider: str | None
    models: tuple[str | None, ...]
    at: datetime
    price: Price
    components: list[Component] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        price = self.price
        rule = price.rule
        return {
            "provider": self.provider,
            "model": price.model or next((model for model in self.models if model), None),
            "at": self.at.isoformat(),
            "tier": ", ".join(f"{key}={value}" for key, value in price.tier) or "standard",
            "list_cost_usd": price.list_cost_usd,
            "fees_usd": price.fees_usd,
            "discount": rule.describe() if rule is not None else "none: list price is what is paid",
            "cost_usd": price.cost_usd,
            "price_data_version": price.price_data_version,
            "price_data_source": price.price_data_source,
        }


def explain(
    pricer: Pricer,
    provider: str | None,
    models: tuple[str | None, ...],
    *,
    at: datetime,
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read_tokens: int | None = None,
    cache_write_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    attributes: Mapping[str, Any] | None = None,
    api_key_id: str | None = None,
    free_when_answered: bool = False,
) -> Explanation:
    attributes = attributes or {}
    price = pricer.price_call(
        provider,
        models,
        at=at,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_write_tokens=cache_write_tokens,
        reasoning_tokens=reasoning_tokens,
        attributes=attributes,
        api_key_id=api_key_id,
        free_when_answered=free_when_answered,
    )
    found = Explanation(provider, models, at, price)
    counts = (input_tokens or 0, output_tokens or 0, cache_read_tokens or 0, cache_write_tokens or 0)
    if price.model is None:
        names = ", ".join(model for model in models if model) or "no model"
        found.notes.append(f"no price is known for {names} ({provider}): the call is unpriced, not free")
        return found
    if price.price_data_version == CUSTOM_VERSION:
        found.components = _custom(pricer.overrides[price.model], counts)
    else:
        found.components = _from_genai_prices(provider, price, at, counts, reasoning_tokens, attributes)
        _tier_rules(found)
    if reasoning_tokens and not any(part.name == "reasoning" for part in found.components):
        found.notes.append(f"reasoning: {reasoning_tokens:,} tokens, billed as output (part of the output above)")
    listed = sum(part.cost_usd for part in found.components)
    if price.list_cost_usd is not None and abs(listed - price.list_cost_usd) > 1e-9 * max(1.0, price.list_cost_usd):
        found.notes.append(f"the components add up to ${listed:.6g}, the list price is ${price.list_cost_usd:.6g}")
    return found


def _tier_rules(found: Explanation) -> None:
    """The share of standard price a tier without a price in the data is charged at, and tiers not known."""
    price = found.price
    tiers = ", ".join(f"{key}={value}" for key, value in price.tier if (key, value) not in price.tier_unknown)
    if price.tier_share != 1.0:
        for part in found.components:
            if part.name != "web searches":
                part.cost_usd *= price.tier_share
                part.rate += f" x {price.tier_share:g} ({tiers})"
        found.notes.append(
            f"{tiers}: the price data has no such price for {price.model}; the provider's published share of "
            f"the standard price, {price.tier_share:g}, applies (collector/tiers.py)"
        )
    for key, value in price.tier_unknown:
        found.notes.append(
            f"{key}={value}: no price for this tier is known for {price.model}; priced at the standard rate"
        )


def _custom(rates: pricing.TokenRates, counts: tuple[int, int, int, int]) -> list[Component]:
    input_tokens, output_tokens, cache_read, cache_write = counts
    cache_read_rate = rates.input if rates.cache_read is None else rates.cache_read
    cache_write_rate = rates.input if rates.cache_write is None else rates.cache_write
    parts = [
        ("fresh input", max(input_tokens - cache_read - cache_write, 0), rates.input),
        ("cache read", cache_read, cache_read_rate),
        ("cache write", cache_write, cache_write_rate),
        ("output", output_tokens, rates.output),
    ]
    return [
        Component(name, quantity, f"${rate:g} per million (the config's price)", quantity * rate / 1_000_000)
        for name, quantity, rate in parts
        if quantity
    ]


def _from_genai_prices(
    provider: str | None,
    price: Price,
    at: datetime,
    counts: tuple[int, int, int, int],
    reasoning_tokens: int | None,
    attributes: Mapping[str, Any],
) -> list[Component]:
    from genai_prices import Usage
    from genai_prices.types import (
        TieredPrices,
        _collect_resolved_model_prices,
        _compute_registry_priced_counts,
        calc_unit_price,
    )
    from genai_prices.units import _get_registry

    assert price.model is not None
    parts, extra, fee_usage = fees.usage_counts(attributes)
    if reasoning_tokens:
        parts["output_reasoning_tokens"] = reasoning_tokens
    keys = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    usage: dict[str, Any] = {key: value for key, value in zip(keys, counts, strict=True) if value}
    usage.update(pricing._consistent(usage, parts))
    usage.update(extra)
    usage.update(fee_usage)
    provider_id = GENAI_PRICES_PROVIDER.get(provider or "", provider or "")
    components = []
    try:
        calculation = pricing.calculation(usage, price.model, provider_id, at, price.tier)
    except ValueError:  # parts that do not add up: priced without them, as the pricer does
        usage = {key: value for key, value in usage.items() if key in keys or key in extra or key in fee_usage}
        calculation = pricing.calculation(usage, price.model, provider_id, at, price.tier)
    except LookupError:
        calculation = None
    if calculation is not None:
        registry = _get_registry()
        resolved = _collect_resolved_model_prices(calculation.model_price, registry)
        values = {
            key: (int(value) if float(value).is_integer() else Decimal(str(value))) for key, value in usage.items()
        }
        leaves = _compute_registry_priced_counts(resolved, Usage(**values))
        prompt = usage.get("input_tokens", 0)
        by_lifetime = any(unit.usage_key == "cache_write_1h_tokens" for unit, _ in resolved)
        order = list(LABELS)
        resolved = sorted(
            resolved, key=lambda item: order.index(item[0].usage_key) if item[0].usage_key in order else 99
        )
        for unit, unit_price in resolved:
            quantity = leaves.get(unit.usage_key, 0)
            if not quantity:
                continue
            rate, tier_note = unit_price, ""
            if isinstance(unit_price, TieredPrices):
                rate = unit_price.base
                for tier in reversed(unit_price.tiers):
                    if prompt > tier.start:
                        rate, tier_note = tier.price, f" (prompt over {tier.start:,} tokens)"
                        break
            cost = calc_unit_price(unit_price, quantity, prompt, unit.per)
            per = _UNITS.get(unit.per, f"per {unit.per:,}")
            name = LABELS.get(unit.usage_key, unit.usage_key.replace("_", " "))
            if unit.usage_key == "cache_write_tokens" and by_lifetime:
                name = "cache write (5m)"  # the writes not said to be for an hour
            components.append(Component(name, _number(quantity), f"${rate:g} {per}{tier_note}", float(cost)))
    searches = fee_usage.get("web_searches")
    if searches and not any(part.name == "web searches" for part in components):
        fee = fees.web_search_fallback(price.model, searches)
        components.append(Component("web searches", searches, f"${fee / searches:g} each (collector/fees.py)", fee))
    image_cost = fees.per_image_cost(price.model, attributes)
    if image_cost and not components:
        images = attributes.get(semconv.SPENDWATCH_USAGE_IMAGES)
        components.append(Component("images", images, f"${image_cost / images:g} each (collector/fees.py)", image_cost))
    return components


CALL_SQL = """
    SELECT trace_id, span_id, start_time, provider, response_model, request_model, input_tokens, output_tokens,
           cache_read_tokens, cache_write_tokens, reasoning_tokens, attributes, api_key_id, operation, error_type,
           cost_usd, list_cost_usd, price_data_version, superseded
    FROM llm_call_spans
    WHERE span_id = lower(?) AND (? IS NULL OR trace_id = lower(?))
    ORDER BY start_time
"""


@dataclass
class StoredCall:
    """A stored call's columns as `explain` reads them, with what it was priced at when stored."""

    trace_id: str
    span_id: str
    start_time: datetime
    provider: str | None
    response_model: str | None
    request_model: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    reasoning_tokens: int | None
    attributes: dict[str, Any]
    api_key_id: str | None
    operation: str | None
    error_type: str | None
    stored_cost_usd: float | None
    stored_list_cost_usd: float | None
    stored_price_data_version: str | None
    superseded: bool


def explain_stored(pricer: Pricer, call: StoredCall) -> Explanation:
    found = explain(
        pricer,
        call.provider,
        (call.response_model, call.request_model),
        at=call.start_time,
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        cache_read_tokens=call.cache_read_tokens,
        cache_write_tokens=call.cache_write_tokens,
        reasoning_tokens=call.reasoning_tokens,
        attributes=call.attributes,
        api_key_id=call.api_key_id,
        free_when_answered=call.operation in pricing.FREE_OPERATIONS and call.error_type is None,
    )
    if call.superseded:
        found.notes.append("this span is superseded: another span of the same call is the one counted")
    if (call.stored_cost_usd, call.stored_price_data_version) != (found.price.cost_usd, found.price.price_data_version):
        stored = "no price" if call.stored_cost_usd is None else f"${call.stored_cost_usd:.6g}"
        found.notes.append(
            f"stored at {stored} with {call.stored_price_data_version or 'unrecorded price data'}; "
            "priced again above with today's data and config (`spendwatch reprice` stores that)"
        )
    return found
