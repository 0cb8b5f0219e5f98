"""Who a call was for: the end user, tenant, feature, agent and conversation, and free-form tags.

Set in the app with `spendwatch.attribute(user=..., feature=...)`, as a context manager or a decorator,
or carried in OpenTelemetry baggage from another service (W3C baggage crosses service boundaries with
the trace). The values are context-local: a `ContextVar`, so each thread has its own (nothing leaks from
one thread to another; a new thread starts with none, as with OpenTelemetry's own context), each asyncio
task starts with those of the code that created it, and a decorated generator has them only while it
runs, not while its caller does between two items. Inner values win over outer ones; tags merge.

Precedence on a call's span: `attribute()` over baggage; the collector then fills what is still missing
from the spans around the call (collector/attribution.py).
"""

from __future__ import annotations

import functools
import inspect
import os
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

from opentelemetry.baggage import get_all as get_all_baggage

try:  # the context key the baggage lives under: to know a baggage seen before (Attributor.values)
    from opentelemetry.baggage import _BAGGAGE_KEY
except ImportError:  # a version that moved it: every call reads its baggage afresh
    _BAGGAGE_KEY = None

from spendwatch import semconv

DIMENSIONS = ("user", "tenant", "feature", "agent", "conversation")
# The span attribute each dimension is written as.
SPAN_ATTRIBUTES = {
    "user": semconv.ENDUSER_ID,
    "tenant": semconv.SPENDWATCH_TENANT,
    "feature": semconv.SPENDWATCH_FEATURE,
    "agent": semconv.GEN_AI_AGENT_NAME,
    "conversation": semconv.GEN_AI_CONVERSATION_ID,
}
MAX_TAGS = 16
MAX_VALUE_CHARS = 256
TAG_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

# Which baggage entries name each dimension, the first found winning; SPENDWATCH_BAGGAGE replaces a
# dimension's list: "user=enduser.id|app.user,feature=app.feature".
DEFAULT_BAGGAGE = {
    "user": ("enduser.id", "user.id", "user_id"),
    "tenant": ("tenant.id", "tenant", "spendwatch.tenant"),
    "feature": ("feature", "spendwatch.feature"),
    "agent": ("gen_ai.agent.name", "agent"),
    "conversation": ("gen_ai.conversation.id", "session.id", "conversation.id"),
}
BAGGAGE_ENV = "SPENDWATCH_BAGGAGE"
_TAG_BAGGAGE_PREFIX = "spendwatch.tag."

_current: ContextVar[Mapping[str, str] | None] = ContextVar("spendwatch_attribution", default=None)
F = TypeVar("F", bound=Callable[..., Any])


class attribute:
    """Attribute the LLM calls made inside to a user, tenant, feature, agent, conversation, and tags."""

    def __init__(
        self,
        user: Any = None,
        tenant: Any = None,
        feature: Any = None,
        agent: Any = None,
        conversation: Any = None,
        **tags: Any,
    ) -> None:
        values: dict[str, str] = {}
        for dimension, value in zip(DIMENSIONS, (user, tenant, feature, agent, conversation), strict=True):
            if value is not None:
                values[dimension] = _text(value, dimension)
        if len(tags) > MAX_TAGS:
            raise ValueError(f"spendwatch.attribute: at most {MAX_TAGS} tags, got {len(tags)}")
        for name, value in tags.items():
            if not TAG_NAME.fullmatch(name):
                raise ValueError(f"spendwatch.attribute: tag name {name!r}: expected letters, digits, _ . -")
            if value is not None:
                values[f"tag.{name}"] = _text(value, name)
        self.values = values
        self._tokens: list[Any] = []

    def __enter__(self) -> attribute:
        outer = _current.get()
        self._tokens.append(_current.set({**outer, **self.values} if outer else self.values))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        _current.reset(self._tokens.pop())

    def __call__(self, function: F) -> F:
        if inspect.isasyncgenfunction(function):

            @functools.wraps(function)
            async def async_generator(*args: Any, **kwargs: Any) -> Any:
                inner = function(*args, **kwargs)
                sent: Any = None
                while True:
                    with self:
                        try:
                            item = await inner.asend(sent)
                        except StopAsyncIteration:
                            return
                    sent = yield item

            return async_generator  # type: ignore[return-value]
        if inspect.isgeneratorfunction(function):

            @functools.wraps(function)
            def generator(*args: Any, **kwargs: Any) -> Any:
                inner = function(*args, **kwargs)
                sent: Any = None
                while True:
                    with self:
                        try:
                            item = inner.send(sent)
                        except StopIteration as done:
                            return done.value
                    sent = yield item

            return generator  # type: ignore[return-value]
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def coroutine(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await function(*args, **kwargs)

            return coroutine  # type: ignore[return-value]

        @functools.wraps(function)
        def plain(*args: Any, **kwargs: Any) -> Any:
            with self:
                return function(*args, **kwargs)

        return plain  # type: ignore[return-value]


def current() -> Mapping[str, str]:
    """What `attribute()` says here: dimension -> value, and `tag.<name>` -> value."""
    return _current.get() or {}


def _text(value: Any, name: str) -> str:
    text = value if isinstance(value, str) else str(value)
    if not text:
        raise ValueError(f"spendwatch.attribute: {name}: an empty value")
    return text[:MAX_VALUE_CHARS]


def parse_baggage_keys(value: str) -> dict[str, tuple[str, ...]]:
    """`user=enduser.id|app.user,feature=app.feature`; a malformed entry is an error that names it."""
    keys = dict(DEFAULT_BAGGAGE)
    for entry in value.split(","):
        entry = entry.strip()
        if not entry:
            continue
        dimension, sep, names = entry.partition("=")
        dimension = dimension.strip()
        if not sep or dimension not in DIMENSIONS or not names.strip():
            raise ValueError(
                f"{BAGGAGE_ENV}: expected dimension=key|key,... with a dimension of {DIMENSIONS}, got {entry!r}"
            )
        keys[dimension] = tuple(name.strip() for name in names.split("|") if name.strip())
    return keys


class Attributor:
    """Turns a call's context into its span's attribution attributes: baggage first, `attribute()` over it."""

    def __init__(self, baggage_keys: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self.baggage_keys = dict(baggage_keys or DEFAULT_BAGGAGE)
        # each baggage name -> (its dimension, its rank among that dimension's names: the first wins)
        self._by_name: dict[str, tuple[str, int]] = {}
        for dimension, names in self.baggage_keys.items():
            for rank, name in enumerate(names):
                self._by_name.setdefault(name, (dimension, rank))
        self._last: tuple[Any, Mapping[str, str], dict[str, str]] | None = None  # see `values`

    @classmethod
    def from_env(cls) -> Attributor:
        return cls(parse_baggage_keys(os.environ.get(BAGGAGE_ENV, "")))

    def values(self, context: Any, explicit: Mapping[str, str]) -> dict[str, str]:
        """dimension (or `tag.<name>`) -> value for a call, from the baggage of `context` and `explicit`.

        Calls made one after another in the same context share its baggage (OpenTelemetry never changes
        a baggage in place: setting an entry makes a new one), so the last answer is kept with the very
        objects it was made from and given again, as a copy, while both are the same."""
        raw = context.get(_BAGGAGE_KEY) if _BAGGAGE_KEY is not None and isinstance(context, dict) else None
        last = self._last
        same_explicit = last is not None and (last[1] is explicit or not (last[1] or explicit))
        if raw is not None and same_explicit and last[0] is raw:  # type: ignore[index]
            return dict(last[2])  # type: ignore[index]
        entries = get_all_baggage(context)
        if not entries:
            return dict(explicit)
        found: dict[str, str] = {}
        ranks: dict[str, int] = {}
        tags = 0
        for name, value in entries.items():
            if not isinstance(value, str) or not value:
                continue
            named = self._by_name.get(name)
            if named is not None:
                dimension, rank = named
                if rank < ranks.get(dimension, len(DIMENSIONS) * 8):
                    found[dimension], ranks[dimension] = value[:MAX_VALUE_CHARS], rank
            elif name.startswith(_TAG_BAGGAGE_PREFIX) and tags < MAX_TAGS:
                tag = name[len(_TAG_BAGGAGE_PREFIX) :]
                if TAG_NAME.fullmatch(tag):
                    found[f"tag.{tag}"] = value[:MAX_VALUE_CHARS]
                    tags += 1
        if explicit:
            found.update(explicit)
        if raw is not None:
            self._last = (raw, explicit, found)
            return dict(found)
        return found


def span_attributes(values: Mapping[str, str]) -> dict[str, str]:
    """The span attributes for attribution values."""
    attributes = {}
    for name, value in values.items():
        if name.startswith("tag."):
            attributes[semconv.SPENDWATCH_TAG_PREFIX + name[4:]] = value
        else:
            attributes[SPAN_ATTRIBUTES[name]] = value
    return attributes
