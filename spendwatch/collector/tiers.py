"""Tiers genai-prices has no price for: the providers' own rule, where they publish one.

genai-prices prices a tier (OpenAI's flex and priority, a Batch API result, Anthropic's fast mode) with a
price variant of the model's, where its data has one. Where it has none, the call would be priced at the
standard rate — a flex or batch call at twice what it cost. Where the provider publishes its tier as a
fixed share of the standard price for every model, that share applies instead (to the tokens; per-use
fees stay as they are):

- OpenAI: the Batch API is 50% of standard; Flex processing is priced at Batch API rates
  (https://developers.openai.com/api/docs/pricing, .../guides/flex-processing);
- Anthropic: the Message Batches API is 50% of standard, prompt-caching multipliers stacking with it
  (https://platform.claude.com/docs/en/about-claude/pricing#batch-processing);
- Google (Gemini API and Vertex AI): Batch and Flex are a 50% discount
  (https://ai.google.dev/gemini-api/docs/optimization).

Priority tiers have no such rule (OpenAI's and Gemini's premiums differ by model): without a variant in
the data, a priority call is priced at the standard rate and `spendwatch prices explain` says so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

SHARE_OF_STANDARD: dict[tuple[str, str, str], float] = {
    ("openai", "processing", "batch"): 0.5,
    ("openai", "service_tier", "flex"): 0.5,
    ("azure", "processing", "batch"): 0.5,
    ("anthropic", "processing", "batch"): 0.5,
    ("google", "processing", "batch"): 0.5,
    ("google", "service_tier", "flex"): 0.5,
}


def unpriced_tiers(calculation: Any, context: tuple[tuple[str, str], ...], at: datetime) -> tuple[tuple[str, str], ...]:
    """The parts of the price context that no price variant of the model served (genai-prices' PriceCalculation)."""
    if not context:
        return ()
    model, provider = calculation.model, calculation.provider
    if not any(model is own for own in provider.models):  # a model of another provider's: genai-prices ignores tiers
        return context
    wanted = dict(context)
    served = set()
    for variant in model.price_variants or ():
        if variant.constraint is not None and not variant.constraint.active(at):
            continue
        if all(wanted.get(key) == value for key, value in variant.when.items()):
            served.update(variant.when.items())
    return tuple(item for item in context if item not in served)


def share(provider_id: str, missing: tuple[tuple[str, str], ...]) -> tuple[float, tuple[tuple[str, str], ...]]:
    """The share of the standard price for the tiers without a variant, and those of them with no known rule."""
    factor = 1.0
    unknown = []
    for key, value in missing:
        rule = SHARE_OF_STANDARD.get((provider_id, key, value))
        if rule is None:
            unknown.append((key, value))
        else:
            factor *= rule
    return factor, tuple(unknown)
