"""Which stored spans are one LLM call: identity from evidence, never from time overlap alone.

One call can arrive as several spans: spendwatch's HTTP-level span, the SDK's own (anthropic), one or two
instrumentations' (OpenLLMetry, openai-v2, logfire), a framework's (pydantic-ai). The call is counted
once, from its best span; the others are kept, marked superseded, with the span and the rule that
superseded them. Evidence that two spans are one call, strongest first:

1. `response_id` — the same provider response id (compared without case or surrounding space), from the
   same service, at most a minute apart. A provider gives each response its own id.
2. `ancestor` — one span is an ancestor of the other in the same trace, through any spans between them
   (an HTTP client's span, a framework's): an SDK span around the HTTP request it made.
3. `stream_record` — an instrumentation that reports a stream as a span without usage (ended when the
   stream was handed to the app) and a zero-length record with the usage when the stream ended (logfire):
   same trace, parent, instrumentation and model. A real call always takes time; a record takes none.
4. `twin` — neither span has a response id, but they are siblings from two instrumentations with the same
   model and the same usage, overlapping in time (two instrumentations wrapping one SDK call).

And what is never one call, whatever else matches: two spendwatch spans (each is one request on the
wire, so an SDK's retry is two rows); two spans with different response ids; spans whose providers
cannot describe one call (`providers.compatible`); a span that reports usage and one that failed with
none (the attempt that was billed is another); two spans of one instrumentation, unless one contains the
other or they are a stream and its record.

A group holds at most one span of each instrumentation (but for the two exceptions above), so the
fallbacks can pair up spans wrongly but never make two calls one: two concurrent identical calls seen by
two instrumentations without ids still make two groups of two.

The decision is a function of the set of spans alone — their order of arrival does not matter — and the
writer makes it in the transaction that stores the last of them, so no query sees both. The best span
leads its group and is the row `llm_calls` shows: spendwatch's (exact usage, the key id), else one with
usage, else the provider SDK's own, else the innermost, else one with a response id. It keeps its own
usage and key (usage is never summed or mixed across spans); what only another span of the group knew —
the agent's name, the conversation id, the operation, the request model — fills what it lacks, and is
recorded under `spendwatch.filled` so that the fill can be undone if the group changes when more spans
arrive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from spendwatch.collector.providers import compatible

RESPONSE_ID, ANCESTOR, STREAM_RECORD, TWIN = "response_id", "ancestor", "stream_record", "twin"
_STRENGTH = {RESPONSE_ID: 4, ANCESTOR: 3, STREAM_RECORD: 2, TWIN: 1}
SAME_RESPONSE_SLACK_NS = 60 * 10**9  # a stream's record lands after the span it belongs to ends
MAX_ANCESTRY_DEPTH = 256
# Provider SDKs' own spans: read from the SDK's parsed response, they are preferred over a wrapping
# instrumentation's view of the same call (OpenLLMetry counts one output token too many in Anthropic
# streams, where the SDK's span has the provider's count).
NATIVE_SCOPES = frozenset({"com.anthropic.sdk.python"})

# Typed columns a group's leader may take from the other spans of its call, when it has none.
ATTRIBUTION_COLUMNS = ("user", "tenant", "feature", "agent", "conversation", "tags")
FILLABLE_COLUMNS = ("operation", "request_model", "response_model", "response_id", "streaming", *ATTRIBUTION_COLUMNS)
FILLED = "spendwatch.filled"  # {attribute name, or "@" + column: the span id it came from}
COLUMN_MARK = "@"
# Attributes that describe one span (its request on the wire, its own bookkeeping), never filled across.
_NOT_FILLED_PREFIXES = ("gen_ai.usage.", "spendwatch.", "http.", "url.", "server.", "exception.")


@dataclass
class Span:
    """What the identity rules read of a stored span."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    start_ns: int
    end_ns: int
    service_name: str | None
    provider: str
    scope: str | None
    from_spendwatch: bool
    response_id: str | None
    request_model: str | None
    response_model: str | None
    input_tokens: int | None
    output_tokens: int | None
    failed: bool
    operation: str | None = None
    streaming: bool | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    user: str | None = None
    tenant: str | None = None
    feature: str | None = None
    agent: str | None = None
    conversation: str | None = None
    tags: dict[str, str] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.trace_id, self.span_id)

    @property
    def has_usage(self) -> bool:
        return self.input_tokens is not None or self.output_tokens is not None

    @property
    def response_key(self) -> str | None:
        return self.response_id.strip().lower() if self.response_id else None

    @property
    def incomplete(self) -> bool:
        """Says a call happened and nothing of how it went: the first half of a stream and its record."""
        return not (self.has_usage or self.response_id or self.failed or self.from_spendwatch)

    def own(self) -> Span:
        """This span as received: without what an earlier decision filled in from other spans."""
        filled = self.attributes.get(FILLED)
        if not isinstance(filled, dict) or not filled:
            return self
        attributes = {name: value for name, value in self.attributes.items() if name not in filled and name != FILLED}
        columns = {column: None for column in FILLABLE_COLUMNS if COLUMN_MARK + column in filled}
        return Span(**{**self.__dict__, **columns, "attributes": attributes})


@dataclass(frozen=True)
class Decision:
    superseded_by: str | None  # the span id of the group's leader; None for the leader itself
    rule: str | None
    fills: Mapping[str, Any]  # for a leader: columns and attributes taken from the rest of its group


def resolve(spans: Iterable[Span], parents: Mapping[tuple[str, str], str]) -> dict[tuple[str, str], Decision]:
    """Group `spans` (a whole connected set: every span sharing a trace or a response id with one of them)
    into calls. `parents` maps (trace id, span id) of spans that are not model calls to their parent's id,
    so that ancestry runs through them."""
    own = sorted((span.own() for span in spans), key=lambda span: (span.trace_id, span.span_id))
    by_key = {span.key: span for span in own}
    ancestors = {span.key: _ancestors(span, by_key, parents) for span in own}
    depth = {key: sum((key[0], ancestor) in by_key for ancestor in chain) for key, chain in ancestors.items()}
    order = sorted(
        own,
        key=lambda span: (
            not span.from_spendwatch,
            not span.has_usage,
            span.scope not in NATIVE_SCOPES,
            -depth[span.key],
            span.response_id is None,
            span.start_ns,
            span.span_id,
        ),
    )
    groups: list[list[Span]] = []
    joined: dict[tuple[str, str], tuple[int, str]] = {}
    for span in order:
        best: tuple | None = None
        if not span.from_spendwatch:
            for index, group in enumerate(groups):
                rule = _join_rule(span, group, ancestors)
                if rule is None:
                    continue
                leader = group[0]
                preference = (
                    _STRENGTH[rule],
                    (leader.input_tokens, leader.output_tokens) == (span.input_tokens, span.output_tokens),
                    not leader.failed,
                    leader.start_ns,
                    leader.span_id,
                )
                if best is None or preference > best[0]:
                    best = (preference, index, rule)
        if best is None:
            groups.append([span])
        else:
            groups[best[1]].append(span)
            joined[span.key] = (best[1], best[2])
    decisions = {}
    for group in groups:
        leader = group[0]
        decisions[leader.key] = Decision(None, None, _fills(leader, group[1:]))
        for member in group[1:]:
            decisions[member.key] = Decision(leader.span_id, joined[member.key][1], {})
    return decisions


def _ancestors(span: Span, by_key: Mapping, parents: Mapping) -> list[str]:
    chain: list[str] = []
    parent = span.parent_span_id
    while parent and len(chain) < MAX_ANCESTRY_DEPTH and parent not in chain:
        chain.append(parent)
        model_span = by_key.get((span.trace_id, parent))
        parent = model_span.parent_span_id if model_span is not None else parents.get((span.trace_id, parent))
    return chain


def _join_rule(span: Span, group: list[Span], ancestors: Mapping) -> str | None:
    """The strongest evidence that `span` is the call `group` is, or None when it may not join it."""
    response_ids = {member.response_key for member in group if member.response_key}
    if span.response_key and response_ids and span.response_key not in response_ids:
        return None
    best = None
    for member in group:
        rule = _evidence(span, member, ancestors)
        same_scope = member.scope == span.scope
        if same_scope and rule not in (ANCESTOR, STREAM_RECORD):
            return None  # one instrumentation reports one span per call
        if rule is None:
            continue
        if best is None or _STRENGTH[rule] > _STRENGTH[best]:
            best = rule
    return best


def _evidence(span: Span, other: Span, ancestors: Mapping) -> str | None:
    if not compatible(span.provider, other.provider):
        return None
    if span.service_name and other.service_name and span.service_name != other.service_name:
        return None
    if span.from_spendwatch and other.from_spendwatch:
        return None
    if span.response_key and other.response_key:
        if span.response_key != other.response_key:
            return None
        if _apart(span, other) <= SAME_RESPONSE_SLACK_NS:
            return RESPONSE_ID
    if (span.has_usage and other.failed and not other.has_usage) or (
        other.has_usage and span.failed and not span.has_usage
    ):
        return None  # a billed attempt and a failed one: two requests
    if span.trace_id != other.trace_id:
        return None
    if other.span_id in ancestors[span.key] or span.span_id in ancestors[other.key]:
        return ANCESTOR
    if span.parent_span_id != other.parent_span_id or _model(span) != _model(other):
        return None
    if span.scope == other.scope:
        record, rest = (span, other) if span.start_ns == span.end_ns else (other, span)
        is_record = record.start_ns == record.end_ns and record.has_usage
        if is_record and rest.incomplete and record.start_ns >= rest.start_ns:
            return STREAM_RECORD
        return None
    if (
        span.response_key is None
        and other.response_key is None
        and (span.input_tokens, span.output_tokens) == (other.input_tokens, other.output_tokens)
        and _apart(span, other) == 0
    ):
        return TWIN
    return None


def _apart(span: Span, other: Span) -> int:
    """How far apart in time two spans are: 0 when they overlap."""
    return max(0, span.start_ns - other.end_ns, other.start_ns - span.end_ns)


def _model(span: Span) -> str | None:
    return span.request_model or span.response_model


def _fills(leader: Span, members: list[Span]) -> dict[str, tuple[Any, str]]:
    """What the leader takes from the rest of its group, best span first: `{attribute name, or "@" + column:
    (value, the span id it came from)}`."""
    fills: dict[str, tuple[Any, str]] = {}
    for member in members:
        for column in FILLABLE_COLUMNS:
            mark = COLUMN_MARK + column
            if getattr(leader, column) is None and mark not in fills and getattr(member, column) is not None:
                fills[mark] = (getattr(member, column), member.span_id)
        for name, value in member.attributes.items():
            if name in leader.attributes or name in fills or name.startswith(_NOT_FILLED_PREFIXES):
                continue
            fills[name] = (value, member.span_id)
    return fills
