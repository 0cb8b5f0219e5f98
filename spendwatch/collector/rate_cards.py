"""Rate cards: what a call costs per token as the daemon prices it, for the app to price its own calls.

An app that shows its customer what a request cost needs the cost when the call returns, not when the
daemon has stored it, and must make no network call to learn it. So the instrumentation asks the daemon,
in the background (`POST /v1/spendwatch/prices` on the OTLP/HTTP port), for the rate card of each
(provider, models, key id, tier) its calls used, and prices each call with it as it ends
(`spendwatch/instrumentation/prices.py`).

A card is the daemon's own arithmetic taken apart: genai-prices' per-token rates as exact Decimals (or
the config's `[prices.models]` rates), the share of standard price a tier without its own price is charged
at, then the first discount rule that matches the key (a factor, or committed rates). Priced with the same
steps in the same order, a call costs in the app to the last bit what `Pricer.price_call` stores for it.

There is no card — the app leaves the cost out and the daemon's row is the only figure — where the price
is more than per-token rates: per-use fees, audio or image tokens, characters or seconds, prices that
change within the day, a tiered price above its first tier (the card says up to which input count it
holds), reasoning tokens priced apart. A model nobody prices gets `{"unpriced": true}`, so the app stops
asking. Cards are for one UTC day (`day`): prices and contracts change by the day.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from spendwatch import semconv
from spendwatch.collector import discounts, fees, providers
from spendwatch.collector.pricing import CUSTOM_VERSION, Pricer, price_context

PRICES_PATH = "/v1/spendwatch/prices"
MAX_CARDS_PER_REQUEST = 256
MAX_TEXT = 256
_UNPRICED = {"unpriced": True}
_NONE: dict[str, Any] = {}  # a call whose price is more than a card can say: priced by the daemon alone


def answer(pricer: Pricer, document: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """The cards for a request `{"calls": [{"provider", "models", "api_key_id", "tier", "extra"}, ...]}`,
    in its order. Raises ValueError for a request that is not one."""
    calls = document.get("calls") if isinstance(document, dict) else None
    if not isinstance(calls, list) or len(calls) > MAX_CARDS_PER_REQUEST:
        raise ValueError(f"expected {{'calls': [...]}} with at most {MAX_CARDS_PER_REQUEST} calls")
    now = now or datetime.now(UTC)
    return {
        "day": now.date().isoformat(),
        "price_data": pricer.data().version,
        "cards": [card(pricer, call, now) if isinstance(call, dict) else _NONE for call in calls],
    }


def card(pricer: Pricer, call: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    provider_raw = _text(call.get("provider"))
    models = [_text(model) for model in call.get("models") or () if _text(model)][:2]
    if not provider_raw or not models:
        return _NONE
    provider = providers.normalize(provider_raw)
    key_id = _text(call.get("api_key_id")) or None
    tier = call.get("tier") if isinstance(call.get("tier"), dict) else {}
    extra = [name for name in call.get("extra") or () if isinstance(name, str)]
    if semconv.SPENDWATCH_USAGE_IMAGES in extra or any(fees.usage_counts(dict.fromkeys(extra, 1))):
        return _NONE  # priced apart: fees, modalities, characters, seconds
    context = price_context(tier)
    for model in models:
        override = pricer.overrides.get(model)
        if override is not None:
            found = {"model": model, "per_million": _token_rates(override), "version": CUSTOM_VERSION}
            return _with_discount(found, pricer, provider, model, key_id, at)
        resolved, intraday = pricer.resolved(provider, model, at=at, context=context)
        if resolved is None:
            continue
        if resolved.rates is None or intraday:
            return _NONE
        found = {
            "model": model,
            "rates": [str(rate) for rate in resolved.rates],
            "up_to": resolved.up_to if resolved.up_to != float("inf") else None,
            "share": resolved.share,
            "reasoning_apart": any("reasoning" in name for name in vars(resolved.model_price)),
            "version": pricer.data().version,
        }
        return _with_discount(found, pricer, provider, model, key_id, at)
    return _UNPRICED


def _with_discount(
    found: dict[str, Any], pricer: Pricer, provider: str, model: str, key_id: str | None, at: datetime
) -> dict[str, Any]:
    rule = discounts.first_match(pricer.discount_rules, provider, model, key_id, at)
    if rule is not None and (rule.discount is not None or rule.markup is not None):
        found["factor"] = 1 - rule.discount if rule.discount is not None else 1 + (rule.markup or 0.0)
    elif rule is not None and rule.rates is not None:
        found["committed_per_million"] = _token_rates(rule.rates)
    return found


def _token_rates(rates: discounts.TokenRates) -> list[float | None]:
    return [rates.input, rates.output, rates.cache_read, rates.cache_write]


def _text(value: Any) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else ""
