"""Pricing LLM calls from genai-prices' bundled data, offline.

genai-prices names providers its own way; `GENAI_PRICES_PROVIDER` maps the semconv names onto them. A
model it does not know has no price (None), never a price of zero: an unpriced call must stay visible.
Lookups are cached per (provider, model): resolving a model is the expensive part of a price.
"""

from __future__ import annotations

from functools import lru_cache

GENAI_PRICES_PROVIDER = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "azure.ai.openai": "azure",
    "groq": "groq",
    "mistral_ai": "mistral",
    "deepseek": "deepseek",
    "x_ai": "x-ai",
    "perplexity": "perplexity",
    "openrouter": "openrouter",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
}


def price_usd(
    provider: str,
    model: str | None,
    *,
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read_tokens: int | None = None,
    cache_write_tokens: int | None = None,
) -> float | None:
    """The call's cost in USD, or None when the model has no known price."""
    if not model or (input_tokens is None and output_tokens is None):
        return None
    price = _model_price(GENAI_PRICES_PROVIDER.get(provider, provider), model)
    if price is None:
        return None
    from genai_prices import Usage

    usage = Usage(
        input_tokens=input_tokens or 0,
        output_tokens=output_tokens or 0,
        cache_read_tokens=cache_read_tokens or 0,
        cache_write_tokens=cache_write_tokens or 0,
    )
    return float(price.calc_price(usage)["total_price"])


@lru_cache(maxsize=4096)
def _model_price(provider_id: str, model: str):  # -> genai_prices ModelPrice | None
    from genai_prices import Usage, calc_price

    try:
        return calc_price(Usage(input_tokens=0), model, provider_id=provider_id).model_price
    except LookupError:
        return None
