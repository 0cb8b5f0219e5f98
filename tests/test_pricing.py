"""The pricing cache gives what genai-prices gives, for every model it knows."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from genai_prices import Usage, calc_price, data

from spendwatch.collector import pricing
from spendwatch.collector.pricing import GENAI_PRICES_PROVIDER, Pricer

PROVIDERS = sorted(set(GENAI_PRICES_PROVIDER.values()))


def known_models() -> list[tuple[str, str]]:
    return [
        (provider.id, model.id) for provider in data.providers if provider.id in PROVIDERS for model in provider.models
    ]


def test_every_known_model_prices_as_genai_prices_does():
    semconv_name = {ours: semconv for semconv, ours in reversed(GENAI_PRICES_PROVIDER.items())}
    pricer = Pricer()
    at = datetime(2026, 11, 1, 12, tzinfo=UTC)
    generator = random.Random(3)
    compared = 0
    for provider_id, model in known_models():
        for _ in range(3):
            input_tokens = generator.randrange(0, 400_000)
            cache_read = generator.randrange(0, input_tokens + 1)
            cache_write = generator.randrange(0, input_tokens - cache_read + 1)
            output_tokens = generator.randrange(0, 50_000)
            try:
                expected = calc_price(
                    Usage(
                        input_tokens=input_tokens,
                        output_tokens=output_tokens,
                        cache_read_tokens=cache_read,
                        cache_write_tokens=cache_write,
                    ),
                    model,
                    provider_id=provider_id,
                    genai_request_timestamp=at,
                ).total_price
            except (LookupError, ValueError):
                continue
            got = pricer.price(
                semconv_name[provider_id],
                (model,),
                at=at,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=cache_read,
                cache_write_tokens=cache_write,
            )
            assert got == float(expected), (provider_id, model)  # to the last bit
            compared += 1
    assert compared > 500  # the comparison really ran over the bundled data
    shortcut = [rates for _, rates, _ in pricing._linear.values() if rates is not None]
    assert len(shortcut) > 0.9 * len(pricing._linear)  # and most prices took the per-token shortcut


def test_a_tiered_price_is_applied_per_call():
    """Gemini 2.5 Pro costs more per token above 200k input tokens: no linear shortcut may flatten that."""
    pricer = Pricer()
    at = datetime(2026, 11, 1, 12, tzinfo=UTC)
    small = pricer.price("gcp.gemini", ("gemini-2.5-pro",), at=at, input_tokens=100_000, output_tokens=0)
    large = pricer.price("gcp.gemini", ("gemini-2.5-pro",), at=at, input_tokens=300_000, output_tokens=0)
    assert small is not None and large is not None
    assert large / 300_000 > small / 100_000
