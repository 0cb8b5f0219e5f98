"""What a call used besides its four token counts: parts priced apart, tool and grounding fees,
characters, audio seconds, images.

The instrumentation counts them on the span (`spendwatch.usage.*`); this module turns the counts into
genai-prices' own usage names: the parts of the token counts that are priced apart (cache writes by
lifetime, audio, image and video tokens, cached audio and images) — genai-prices prices each part at its
own rate and the rest of its total at the total's — and what is billed by other units, which it prices
wherever it can — web searches (OpenAI's web
search tool, Anthropic's server tool, Gemini's grounding), text-to-speech characters (tts-1), audio
seconds (whisper-1), image and audio input tokens (gpt-image, gpt-4o-transcribe) — and from the small
tables below where it cannot:

- `PER_IMAGE_USD`: DALL-E 2 and 3 are billed per image by size and quality, which genai-prices does not
  model (OpenAI's list prices).
- `WEB_SEARCH_USD`: a model genai-prices knows whose web-search fee it does not carry (Claude on
  Bedrock or Vertex, for instance): $10 per 1,000 searches for Anthropic's and OpenAI's web search,
  Gemini's grounding at $35 per 1,000 grounded prompts, Gemini 3's at $14 per 1,000 queries (list
  prices of 2026-11). The instrumentation already counts in each model's billed unit.

`fees_usd` is the part of `cost_usd` that is per-use fees (web searches); `cost_usd` includes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from spendwatch import semconv

# span attribute -> genai-prices usage key: parts of the token counts
PART_KEYS = {
    semconv.SPENDWATCH_USAGE_CACHE_WRITE_5M_TOKENS: "cache_write_5m_tokens",
    semconv.SPENDWATCH_USAGE_CACHE_WRITE_1H_TOKENS: "cache_write_1h_tokens",
    semconv.SPENDWATCH_USAGE_INPUT_IMAGE_TOKENS: "input_image_tokens",
    semconv.SPENDWATCH_USAGE_INPUT_AUDIO_TOKENS: "input_audio_tokens",
    semconv.SPENDWATCH_USAGE_INPUT_VIDEO_TOKENS: "input_video_tokens",
    semconv.SPENDWATCH_USAGE_CACHE_AUDIO_READ_TOKENS: "cache_audio_read_tokens",
    semconv.SPENDWATCH_USAGE_CACHE_IMAGE_READ_TOKENS: "cache_image_read_tokens",
    semconv.SPENDWATCH_USAGE_OUTPUT_AUDIO_TOKENS: "output_audio_tokens",
    semconv.SPENDWATCH_USAGE_OUTPUT_IMAGE_TOKENS: "output_image_tokens",
}
# ... what is billed by other units
USAGE_KEYS = {
    semconv.SPENDWATCH_USAGE_INPUT_CHARACTERS: "input_characters",
    semconv.SPENDWATCH_USAGE_AUDIO_SECONDS: "audio_seconds",
}
# ... and per-use fees
FEE_KEYS = {semconv.SPENDWATCH_USAGE_WEB_SEARCH_CALLS: "web_searches"}

PER_IMAGE_USD: dict[str, dict[tuple[str, str], float]] = {
    "dall-e-3": {
        ("standard", "1024x1024"): 0.04,
        ("standard", "1024x1792"): 0.08,
        ("standard", "1792x1024"): 0.08,
        ("hd", "1024x1024"): 0.08,
        ("hd", "1024x1792"): 0.12,
        ("hd", "1792x1024"): 0.12,
    },
    "dall-e-2": {("standard", "256x256"): 0.016, ("standard", "512x512"): 0.018, ("standard", "1024x1024"): 0.02},
}

# USD per billed search, by the first part of the model name found in it; the last row is the default.
WEB_SEARCH_USD: tuple[tuple[str, float], ...] = (
    ("claude", 0.010),
    ("gemini-3", 0.014),
    ("gemini", 0.035),
    ("", 0.010),
)

MAX_UNITS = 10**9


def usage_counts(attributes: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(parts, extra usage, fee usage) in genai-prices' names, from a span's attributes; odd values are
    ignored, and parts must be whole numbers."""
    parts: dict[str, float] = {}
    extra: dict[str, float] = {}
    fees: dict[str, float] = {}
    for names, found in ((PART_KEYS, parts), (USAGE_KEYS, extra), (FEE_KEYS, fees)):
        for attribute, key in names.items():
            value = attributes.get(attribute)
            if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= MAX_UNITS:
                if found is parts and not float(value).is_integer():
                    continue
                found[key] = value
    return parts, extra, fees


def per_image_cost(model: str | None, attributes: Mapping[str, Any]) -> float | None:
    """DALL-E's price for the images a call made, or None when the table does not know the model or size."""
    table = PER_IMAGE_USD.get(model or "")
    images = attributes.get(semconv.SPENDWATCH_USAGE_IMAGES)
    if table is None or not isinstance(images, int) or isinstance(images, bool) or not 0 < images <= 1000:
        return None
    size = attributes.get(semconv.SPENDWATCH_REQUEST_IMAGE_SIZE) or "1024x1024"
    quality = attributes.get(semconv.SPENDWATCH_REQUEST_IMAGE_QUALITY) or "standard"
    price = table.get(("hd" if quality == "hd" else "standard", size))
    return None if price is None else images * price


def web_search_fallback(model: str, searches: float) -> float:
    for prefix, price in WEB_SEARCH_USD:
        if prefix in model:
            return searches * price
    return 0.0


def calc(model_price: Any, usage: Mapping[str, float]) -> float:
    """genai-prices' price for one usage (all of its keys at once)."""
    from genai_prices import Usage

    values = {key: (int(value) if float(value).is_integer() else Decimal(str(value))) for key, value in usage.items()}
    return float(model_price.calc_price(Usage(**values))["total_price"])
