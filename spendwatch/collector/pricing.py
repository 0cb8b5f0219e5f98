"""Pricing LLM calls: genai-prices' bundled data (offline), or the config's own `[prices]`.

genai-prices names providers its own way; `GENAI_PRICES_PROVIDER` maps the semconv names onto them. A
model it does not know has no price (None), never a price of zero: an unpriced call must stay visible.

Resolving a model to its price is the slow part (~80 µs); a price can change over time (genai-prices
knows the dates), so resolutions are cached per (provider, model, day of the call). Tiered prices are
applied to each call's own usage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

GENAI_PRICES_PROVIDER = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "azure.ai.openai": "azure",
    "aws.bedrock": "aws",
    "groq": "groq",
    "mistral_ai": "mistral",
    "deepseek": "deepseek",
    "x_ai": "x-ai",
    "perplexity": "perplexity",
    "openrouter": "openrouter",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "cohere": "cohere",
}

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
                from genai_prices import Usage

                usage = Usage(
                    input_tokens=counts[0],
                    output_tokens=counts[1],
                    cache_read_tokens=counts[2],
                    cache_write_tokens=counts[3],
                )
                return float(model_price.calc_price(usage)["total_price"])
        return None


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
