"""Who a call was for, as stored: five typed dimensions and a bounded map of tags.

A call's own span says it (spendwatch's carries what `spendwatch.attribute()` and the baggage said; other
instrumentations and frameworks put `gen_ai.agent.name`, `gen_ai.conversation.id`, `enduser.id`,
`session.id` on theirs); what it does not say is taken from the nearest span around it that does — an
agent framework's agent-run span, the app's request span (collector/resolve.py, through `span_links`).
Which attributes name each dimension is configurable (`[attribution]`), the first found winning.

End-user ids are personal data: with `hash_users = true`, the user is stored as a keyed hash
(HMAC-SHA256 under `SPENDWATCH_USER_HASH_KEY`, 16 hex digits), the same for the same user everywhere the
key is the same, and not reversible without the key; the raw id is stored nowhere.

Limits (cardinality): each dimension's value at most 256 characters; at most 16 tags a call, names of
letters, digits, `_ . -` up to 64 characters, values up to 256. More are dropped and flagged.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spendwatch import semconv
from spendwatch.collector import scrub

DIMENSIONS = ("user", "tenant", "feature", "agent", "conversation")
DEFAULT_SOURCES: dict[str, tuple[str, ...]] = {
    "user": (semconv.ENDUSER_ID, semconv.USER_ID),
    "tenant": (semconv.SPENDWATCH_TENANT, "tenant.id"),
    "feature": (semconv.SPENDWATCH_FEATURE,),
    "agent": (semconv.GEN_AI_AGENT_NAME,),
    "conversation": (semconv.GEN_AI_CONVERSATION_ID, semconv.SESSION_ID),
}
MAX_VALUE_CHARS = 256
MAX_TAGS = 16
_TAG_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
HASH_KEY_ENV = "SPENDWATCH_USER_HASH_KEY"


@dataclass(frozen=True)
class AttributionConfig:
    sources: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_SOURCES))
    hash_key: bytes | None = None  # set: end-user ids are stored as keyed hashes

    @property
    def source_names(self) -> frozenset[str]:
        return frozenset(name for names in self.sources.values() for name in names)

    def user_value(self, raw: str) -> str:
        if self.hash_key is None:
            return raw
        return hmac.new(self.hash_key, raw.encode(), hashlib.sha256).hexdigest()[:16]


DEFAULT = AttributionConfig()


def dimensions(attributes: Mapping[str, Any], config: AttributionConfig, problems: list[str]) -> dict[str, str]:
    """dimension -> value from a span's attributes; odd values are left out and flagged in `problems`."""
    found: dict[str, str] = {}
    for dimension, names in config.sources.items():
        for name in names:
            value = attributes.get(name)
            if value is None or value == "":
                continue
            if isinstance(value, bool) or not isinstance(value, str | int):
                problems.append(f"{name}: expected a string for {dimension}, got {type(value).__name__}")
                break
            text = str(value)
            if len(text) > MAX_VALUE_CHARS:
                problems.append(f"{name}: {len(text)} characters, cut to {MAX_VALUE_CHARS}")
                text = text[:MAX_VALUE_CHARS]
            text = scrub.scrub_text(text)
            found[dimension] = config.user_value(text) if dimension == "user" else text
            break
    return found


def tags(attributes: Mapping[str, Any], problems: list[str]) -> dict[str, str] | None:
    """The call's free-form tags (`spendwatch.tag.<name>`), at most `MAX_TAGS`, scrubbed."""
    found: dict[str, str] = {}
    prefix = semconv.SPENDWATCH_TAG_PREFIX
    for name, value in attributes.items():
        if not name.startswith(prefix):
            continue
        tag = name[len(prefix) :]
        if not _TAG_NAME.fullmatch(tag) or not isinstance(value, str | int | float) or isinstance(value, bool):
            problems.append(f"{scrub.safe_name(name[:80])}: not a tag (name of letters, digits, _ . -; a value)")
            continue
        if len(found) == MAX_TAGS:
            problems.append(f"more than {MAX_TAGS} tags: the rest dropped")
            break
        found[scrub.safe_name(tag)] = scrub.scrub_text(str(value)[:MAX_VALUE_CHARS])
    return found or None
