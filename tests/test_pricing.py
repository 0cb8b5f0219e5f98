"""The pricing cache gives what genai-prices gives, for every model it knows."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from genai_prices import Usage, calc_price, data

from spendwatch.collector import pricing
from spendwatch.collector.pricing import Pricer
from spendwatch.collector.providers import GENAI_PRICES_PROVIDER

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


def _genai(provider_id, model, **usage):
    from genai_prices import Usage as PricesUsage
    from genai_prices import calc_price

    return float(calc_price(PricesUsage(**usage), model, provider_id=provider_id).total_price)


@pytest.mark.parametrize(
    "provider,model,tokens,attributes,expected_cost,expected_fees",
    [
        (
            "openai",
            "tts-1",
            {},
            {"spendwatch.usage.input_characters": 1000},
            ("openai", {"input_characters": 1000}),
            None,
        ),
        ("openai", "whisper-1", {}, {"spendwatch.usage.audio_seconds": 12.5}, 0.00125, None),
        (
            "openai",
            "gpt-image-1",
            {"input_tokens": 50, "output_tokens": 4160},
            {"spendwatch.usage.input_image_tokens": 20, "spendwatch.usage.images": 1},
            ("openai", {"input_tokens": 50, "output_tokens": 4160, "input_image_tokens": 20}),
            None,
        ),
        (
            "openai",
            "dall-e-3",
            {},
            {
                "spendwatch.usage.images": 2,
                "spendwatch.request.image_size": "1024x1792",
                "spendwatch.request.image_quality": "hd",
            },
            0.24,
            None,
        ),
        (
            "openai",
            "dall-e-2",
            {},
            {"spendwatch.usage.images": 3, "spendwatch.request.image_size": "512x512"},
            0.054,
            None,
        ),
        (
            "openai",
            "gpt-5",
            {"input_tokens": 900, "output_tokens": 120},
            {"spendwatch.usage.web_search_calls": 2},
            ("openai", {"input_tokens": 900, "output_tokens": 120, "web_searches": 2}),
            0.02,
        ),
        (
            "gcp.gemini",
            "gemini-2.5-flash",
            {"input_tokens": 40, "output_tokens": 60},
            {"spendwatch.usage.web_search_calls": 1},
            ("google", {"input_tokens": 40, "output_tokens": 60, "web_searches": 1}),
            0.035,
        ),
    ],
)
def test_what_calls_use_besides_tokens(provider, model, tokens, attributes, expected_cost, expected_fees):
    price = Pricer().price_call(
        provider,
        (model,),
        input_tokens=tokens.get("input_tokens"),
        output_tokens=tokens.get("output_tokens"),
        attributes=attributes,
    )
    cost, fees_usd = price.cost_usd, price.fees_usd
    assert price.list_cost_usd == cost  # no discount rule: what is paid is list price
    if isinstance(expected_cost, tuple):
        expected_cost = _genai(expected_cost[0], model, **expected_cost[1])
    assert cost == pytest.approx(expected_cost, rel=1e-12)
    assert fees_usd == expected_fees


def test_a_search_fee_genai_prices_does_not_carry_comes_from_the_table():
    """genai-prices prices Claude on Bedrock without its web-search fee: $10 per 1,000 from the table."""
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    price = Pricer().price_call(
        "aws.bedrock",
        (model,),
        input_tokens=900,
        output_tokens=120,
        attributes={"spendwatch.usage.web_search_calls": 3},
    )
    cost, fees_usd = price.cost_usd, price.fees_usd
    assert fees_usd == pytest.approx(0.03)
    assert cost == pytest.approx(_genai("aws", model, input_tokens=900, output_tokens=120) + 0.03)


def test_moderations_are_free_and_unknown_models_stay_unpriced():
    pricer = Pricer()
    free = pricer.price_call(
        "openai", ("omni-moderation-latest",), input_tokens=None, output_tokens=None, free_when_answered=True
    )
    assert (free.cost_usd, free.list_cost_usd, free.fees_usd) == (0.0, 0.0, None)
    assert (
        pricer.price_call(
            "openai", ("dall-e-9",), input_tokens=None, output_tokens=None, attributes={"spendwatch.usage.images": 1}
        )
        == pricing.NO_PRICE
    )
    assert pricer.price_call("openai", ("tts-1",), input_tokens=None, output_tokens=None) == pricing.NO_PRICE
    # a model priced by tokens, called with characters only: unknown, not free
    assert (
        pricer.price_call(
            "openai",
            ("gpt-4o-mini-tts",),
            input_tokens=None,
            output_tokens=None,
            attributes={"spendwatch.usage.input_characters": 500},
        )
        == pricing.NO_PRICE
    )
