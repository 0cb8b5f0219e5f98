"""What an import brings back, before it is written: usage buckets, cost buckets, keys, per stream."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal


@dataclass
class UsageRow:
    """One result of one usage bucket, in `llm_calls`' terms: input includes cache reads and writes."""

    provider: str
    source: str  # the provider's usage endpoint: completions, embeddings, ..., messages
    bucket_start: datetime
    bucket_end: datetime
    model: str | None
    provider_key_id: str | None
    project_id: str | None  # OpenAI's project, Anthropic's workspace
    service_tier: str | None
    requests: int | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    units: float | None = None  # what a non-token endpoint counts: images, characters, seconds, bytes, sessions
    unit: str | None = None
    cost_usd: float | None = None  # priced by spendwatch, as observed calls are


@dataclass
class CostRow:
    """Dollars as the provider bills them, under one grouping of one cost bucket."""

    provider: str
    bucket_start: datetime
    bucket_end: datetime
    grouping: str  # the group_by asked for, e.g. "line_item,project_id": rows of two groupings never add up
    line_item: str | None
    model: str | None
    project_id: str | None
    provider_key_id: str | None
    amount_usd: Decimal
    currency: str


@dataclass
class KeyRow:
    provider: str
    provider_key_id: str
    name: str | None
    redacted_value: str | None
    hint: str | None  # the key's last four characters, when the redacted value shows them
    project_id: str | None
    status: str | None


@dataclass
class Stream:
    """One endpoint's buckets from `start` on: what replaces the stored rows of that stream from `start`."""

    provider: str
    name: str  # "usage/completions", "costs", "costs/api_key_id", "usage/messages", "cost_report"
    start: datetime
    usage: list[UsageRow] = field(default_factory=list)
    costs: list[CostRow] = field(default_factory=list)
    buckets: int = 0
    pages: int = 0
    complete_through: datetime | None = None  # buckets before it are final: the next import starts there


def day_floor(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def hint_of(redacted_value: str | None) -> str | None:
    """The last four characters of a key from its redacted form (`sk-proj-...9f2c`, `sk-ant-api03-R2D...igAA`),
    when it shows at least four after the mask; else None (such keys are mapped in the config)."""
    if not redacted_value or not any(mask in redacted_value for mask in _MASKS):
        return None  # nothing hidden: a shape spendwatch does not know, not a key's ends
    visible = redacted_value
    for mask in _MASKS:
        visible = visible.rsplit(mask, 1)[-1]
    return visible[-4:] if len(visible) >= 4 else None


_MASKS = ("...", "…", "*")


ONE_DAY = timedelta(days=1)
