"""One LLM API call, from the request leaving to its span: what was asked, what came back, what it used.

The span is created when the call is over, with the request's start time: nothing of ours is current
while the app waits for the provider, and a path-matched call on a host no table names can still turn
out not to be an LLM call and leave no span at all. Such a call counts when its request names a model
or its response carries a model or usage.

When the response carried no final usage (a stream without `include_usage`, a stream the app closed
early, a body it never read) but the provider did answer, the call was billed: its tokens are estimated
(input from the request's text, output from the text seen, both at four characters a token) and the span
says `spendwatch.usage.estimated = true`. Counting it as zero would be the undercount we exist to prevent.
APIs not billed by tokens (images, audio, moderations: their route says `estimate=False`) are never
estimated; what they are billed by is recorded instead.

Everything that depends on the API is the route's (`families`): the call only holds what was found.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from time import time_ns
from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context, attach, detach, get_current, set_value
from opentelemetry.trace import SpanKind, StatusCode, Tracer

from spendwatch import semconv
from spendwatch._internal import log_internal_error
from spendwatch.instrumentation.attribution import DIMENSIONS as ATTRIBUTION_DIMENSIONS
from spendwatch.instrumentation.attribution import Attributor
from spendwatch.instrumentation.attribution import current as current_attribution
from spendwatch.instrumentation.attribution import span_attributes as attribution_attributes
from spendwatch.instrumentation.budgets import BudgetGuard
from spendwatch.instrumentation.families import request_json
from spendwatch.instrumentation.families.registry import Classifier, Match
from spendwatch.instrumentation.keys import api_key_from_request, api_key_hint, api_key_id
from spendwatch.instrumentation.metrics import ClientMetrics
from spendwatch.instrumentation.request import Request
from spendwatch.instrumentation.streams import (
    BodyReader,
    EventStreamReader,
    NdjsonReader,
    SseReader,
    UnsupportedEncoding,
    content_decoder,
)

CHARS_PER_TOKEN = 4
# OpenTelemetry's suppress-instrumentation keys: the context key, and the string older code still sets.
_SUPPRESS_KEYS = (_SUPPRESS_INSTRUMENTATION_KEY, "suppress_instrumentation")
_NOT_CONTENT_KEYS = frozenset({"model", "role", "type", "name", "id", "tool_call_id", "stream", "encoding_format"})
_MAX_ESTIMATE_DEPTH = 32
_ATTRIBUTION_FACTS = frozenset(ATTRIBUTION_DIMENSIONS)


@dataclass(frozen=True)
class CallRecord:
    """What the app can know of its last LLM call (`spendwatch.last_call()`): what it used, under which
    key, for whom, and its span's ids to find it in spendwatch and in the app's own tracing."""

    trace_id: str
    span_id: str
    provider: str
    operation: str
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    usage_estimated: bool
    status_code: int | None
    error_type: str | None
    api_key_id: str | None
    attribution: Mapping[str, str]
    cost_usd: float | None = None  # as the daemon prices it, from its rate cards (instrumentation/prices.py)


# The last call's facts as a tuple (span context first, then CallRecord's fields after its ids).
_last_call: ContextVar[tuple[Any, ...] | None] = ContextVar("spendwatch_last_call", default=None)


def last_call() -> CallRecord | None:
    """The last LLM call this context made (this thread, this asyncio task and what it awaited), once its
    span has ended: a streamed call once its stream is read or closed. None before any."""
    facts = _last_call.get()
    if facts is None:
        return None
    context, *rest = facts
    return CallRecord(f"{context.trace_id:032x}", f"{context.span_id:016x}", *rest)


class Recorder:
    """What the patched transports share: the classifier, the attributor and the tracer spans go to."""

    def __init__(
        self,
        tracer: Tracer,
        classifier: Classifier,
        attributor: Attributor | None = None,
        guard: BudgetGuard | None = None,
        metrics: ClientMetrics | None = None,
    ) -> None:
        self.tracer = tracer
        self.classifier = classifier
        self.attributor = attributor or Attributor()
        self.guard = guard
        self.metrics = metrics  # the GenAI client metrics (None: not recorded)
        resource = getattr(tracer, "resource", None)
        service = resource.attributes.get("service.name") if resource is not None else None
        self.service_name = service if isinstance(service, str) else os.environ.get("OTEL_SERVICE_NAME")

    def start(self, request: Request) -> Call | None:
        """A call for a request the transport has already seen to be a POST to a path we know; raises
        `BudgetExceeded` when an enforced budget that is spent covers it (before it is sent)."""
        match = self.classifier.classify("POST", request.host, request.port, request.path)
        if match is None:
            return None
        call = Call(self, match, request, get_current())
        if self.guard is not None:
            self.guard.check(call.fact)
        return call


class Call:
    def __init__(self, recorder: Recorder, match: Match, request: Request, parent: Context) -> None:
        self.recorder = recorder
        self.match = match
        self.request: Request | None = request
        self.parent = parent
        self.attribution = current_attribution()  # what `spendwatch.attribute()` says where the call starts
        self._attribution_values: dict[str, str] | None = None
        self._key: str | None = None  # "" once looked for and not found
        self.start_ns = time_ns()
        self.status_code: int | None = None
        self.streaming = False
        self.operation = match.route.operation
        self.request_model: str | None = None
        self.request_stream = False
        self.extra: dict[str, Any] = {}  # further span attributes the family found (fees, tool calls, ...)
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.finish_reasons: list[str] = []
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cache_read_tokens: int | None = None
        self.cache_write_tokens: int | None = None
        self.reasoning_tokens: int | None = None
        self.usage_final = False
        self.output_chars = 0
        self.error_type: str | None = None
        self.recognised = False
        self.scratch: dict[str, Any] = {}
        self.pending: bytes | None = None  # a chunk handed to the app but not yet read by us
        self._decode = None
        self._reader: SseReader | NdjsonReader | BodyReader | None = None
        self._finished = False

    # -- what the wire formats report -------------------------------------------------------------

    def set_usage(
        self,
        *,
        input_tokens: Any = None,
        output_tokens: Any = None,
        cache_read_tokens: Any = None,
        cache_write_tokens: Any = None,
        reasoning_tokens: Any = None,
        final: bool = True,
    ) -> None:
        seen = False
        for name, value in (
            ("input_tokens", input_tokens),
            ("output_tokens", output_tokens),
            ("cache_read_tokens", cache_read_tokens),
            ("cache_write_tokens", cache_write_tokens),
            ("reasoning_tokens", reasoning_tokens),
        ):
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                setattr(self, name, value)
                seen = True
        if seen:
            self.recognised = True
            self.usage_final = self.usage_final or final

    def add_output_chars(self, text: Any) -> None:
        if isinstance(text, str):
            self.output_chars += len(text)

    def add_finish_reason(self, reason: str) -> None:
        if reason not in self.finish_reasons:
            self.finish_reasons.append(reason)

    # -- what the transport reports ---------------------------------------------------------------

    def add_extra(self, name: str, value: Any) -> None:
        """A count the family found (tool calls, images, seconds): summed over the values of a stream."""
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            self.extra[name] = self.extra.get(name, 0) + value
            self.recognised = True

    # -- what the transport reports ---------------------------------------------------------------

    def on_response(self, status_code: int, headers: Any, *, decoded: bool = False) -> bool:
        """Note the response's head; True when its body should be observed, False when the call is over.

        `decoded`: the transport hands over the body already content-decoded (aiohttp by default).
        """
        self.status_code = status_code
        if status_code >= 400:  # an error body is the provider's text about the request: never read
            self.error_type = str(status_code)
            self.finish()
            return False
        route = self.match.route
        wire = route.wire
        try:
            wire.on_headers(self, headers)
        except Exception:
            log_internal_error()
        content_type = (headers.get("content-type") or "").lower()
        on_value = wire.observe
        if content_type.startswith("text/event-stream"):
            self.streaming = True
            self._reader = SseReader(partial(on_value, self))
        elif "ndjson" in content_type:
            self.streaming = True
            self._reader = NdjsonReader(partial(on_value, self))
        elif content_type.startswith("application/vnd.amazon.eventstream"):
            self.streaming = True
            self._reader = EventStreamReader(partial(on_value, self))
        elif content_type.startswith(("application/json", "text/json", "application/problem+json")) or (
            not content_type or route.always_streams
        ):
            self.streaming = route.always_streams
            self._reader = BodyReader(partial(on_value, self))
        else:  # audio or an image as bytes: nothing in it for us, but the call ends with its body
            self._reader = None
            self.recognised = True
            return True
        if decoded:
            return True
        try:
            self._decode = content_decoder(headers.get("content-encoding"))
        except UnsupportedEncoding:
            self._reader = None  # cannot read it: the usage will be estimated
        return True

    def feed(self, chunk: bytes) -> None:
        reader = self._reader
        if reader is None or not chunk:
            return
        try:
            reader.feed(self._decode(chunk) if self._decode is not None else chunk)
        except Exception:
            self._reader = None
            log_internal_error()

    def fail(self, exc: BaseException) -> None:
        """The transport raised: no response (or its body broke off)."""
        self.error_type = type(exc).__name__
        self.finish()

    def finish(self) -> None:
        """End the call and emit its span; safe to call more than once, from any path."""
        if self._finished:
            return
        self._finished = True
        end_ns = time_ns()
        try:
            pending, self.pending = self.pending, None
            if pending is not None:
                self.feed(pending)
            if self._reader is not None:
                reader, self._reader = self._reader, None
                reader.close()
        except Exception:
            log_internal_error()  # the body could not be read: the call still counts, estimated
        try:
            request = self.request
            route = self.match.route
            if self.request_model is None:  # read already where a budget asked for the model
                route.wire.read_request(self, request)
            if not self.match.known_host and not (self.recognised or self.response_model or self.request_model):
                return  # a path that looked like an LLM API on a host we do not know, and was not one
            self._emit(end_ns, request)
        except Exception:
            log_internal_error()
        finally:
            self.request = None

    def fact(self, name: str) -> str | None:
        """What enforcement asks of the call before it is sent (budgets.BudgetGuard.check)."""
        if name in _ATTRIBUTION_FACTS:
            return self.attribution_values().get(name)
        if name == "provider":
            return self.match.provider
        if name in ("service", "service_name"):
            return self.recorder.service_name
        request = self.request
        if name == "api_key_id" and request is not None:
            key = self.key(request)
            return api_key_id(key) if key else None
        if name in ("model", "request_model") and request is not None:
            if self.request_model is None:
                self.match.route.wire.read_request(self, request)
            return self.request_model
        return self.attribution_values().get(name)

    def key(self, request: Request) -> str | None:
        """The call's credential: its family's (a SigV4 access key id, a Vertex project), else its header's."""
        if self._key is None:
            route = self.match.route
            credential = route.credential(request) if route.credential is not None else None
            self._key = credential or api_key_from_request(request.headers, request.query_param("key")) or ""
        return self._key or None

    def attribution_values(self) -> dict[str, str]:
        """Who the call is for, from `attribute()` and the baggage where it started (read once)."""
        values = self._attribution_values
        if values is None:
            values = self._attribution_values = self.recorder.attributor.values(self.parent, self.attribution)
        return values

    # -- the span ---------------------------------------------------------------------------------

    def _emit(self, end_ns: int, request: Request) -> None:
        match = self.match
        request_model = self.request_model
        attributes: dict[str, Any] = {
            semconv.GEN_AI_PROVIDER_NAME: match.provider,
            semconv.GEN_AI_OPERATION_NAME: self.operation,
            semconv.GEN_AI_REQUEST_STREAM: self.request_stream,
            semconv.SERVER_ADDRESS: request.host,
            semconv.SERVER_PORT: request.port or (443 if request.scheme == "https" else 80),
        }
        if request_model:
            attributes[semconv.GEN_AI_REQUEST_MODEL] = request_model
        if self.response_model:
            attributes[semconv.GEN_AI_RESPONSE_MODEL] = self.response_model
        if self.response_id:
            attributes[semconv.GEN_AI_RESPONSE_ID] = self.response_id
        if self.finish_reasons:
            attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = self.finish_reasons
        if self.status_code is not None:
            attributes[semconv.HTTP_RESPONSE_STATUS_CODE] = self.status_code
        if self.error_type:
            attributes[semconv.ERROR_TYPE] = self.error_type

        answered = self.status_code is not None and self.status_code < 400
        estimated = answered and not self.usage_final and match.route.estimate
        if estimated:
            if self.input_tokens is None:
                self.input_tokens = _estimate_tokens(_text_chars(request_json(request)))
            if self.operation != semconv.OPERATION_EMBEDDINGS:
                self.output_tokens = max(self.output_tokens or 0, _estimate_tokens(self.output_chars))
        for name, value in (
            (semconv.GEN_AI_USAGE_INPUT_TOKENS, self.input_tokens),
            (semconv.GEN_AI_USAGE_OUTPUT_TOKENS, self.output_tokens),
            (semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, self.cache_read_tokens),
            (semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, self.cache_write_tokens),
            (semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, self.reasoning_tokens),
        ):
            if value is not None:
                attributes[name] = value
        if answered:
            attributes[semconv.SPENDWATCH_USAGE_ESTIMATED] = estimated
        attributes.update(self.extra)

        key = self.key(request)
        key_id = api_key_id(key) if key else None
        if key:
            attributes[semconv.SPENDWATCH_KEY_FINGERPRINT] = key_id
            hint = api_key_hint(key)
            if hint:
                attributes[semconv.SPENDWATCH_KEY_HINT] = hint
        attribution = self.attribution_values()
        if attribution:
            attributes.update(attribution_attributes(attribution))
        cost = None
        guard = self.recorder.guard
        cards = guard.cards if guard is not None else None
        if cards is not None and answered:
            kind = cards.kind(match.provider, self.response_model, request_model, key_id, self.extra)
            priced = cards.cost(
                kind,
                self.input_tokens,
                self.output_tokens,
                self.cache_read_tokens,
                self.cache_write_tokens,
                self.reasoning_tokens,
            )
            if priced is not None:
                cost, version = priced
                attributes[semconv.GEN_AI_USAGE_COST_AMOUNT] = cost
                attributes[semconv.GEN_AI_USAGE_COST_CURRENCY] = "USD"
                attributes[semconv.GEN_AI_USAGE_COST_SOURCE] = semconv.COST_SOURCE_LOCAL
                attributes[semconv.SPENDWATCH_COST_PRICE_DATA] = version

        model = request_model or self.response_model
        name = f"{self.operation} {model}" if model else self.operation
        # Recorded even where the app suppresses instrumentation: logfire runs the SDK call inside
        # OpenTelemetry's suppress context, and its tracer then hands out spans that are never exported.
        # The collector's dedupe makes our span safe beside the app's; our own exporter's requests are
        # never LLM calls, so they still leave no span.
        current = get_current()
        token = None
        if any(current.get(key) for key in _SUPPRESS_KEYS):  # attach a context only where one suppresses
            for key in _SUPPRESS_KEYS:
                current = set_value(key, False, current)
            token = attach(current)
        try:
            span = self.recorder.tracer.start_span(
                name, context=self.parent, kind=SpanKind.CLIENT, attributes=attributes, start_time=self.start_ns
            )
            if self.error_type:
                span.set_status(StatusCode.ERROR)
            span.end(end_time=end_ns)
        finally:
            if token is not None:
                detach(token)
        if self.recorder.metrics is not None:
            seconds = (end_ns - self.start_ns) / 1e9
            self.recorder.metrics.record(attributes, seconds, self.input_tokens, self.output_tokens, estimated)
        # What `last_call()` returns, built when it is asked for: most apps never ask.
        _last_call.set(
            (
                span.get_span_context(),
                match.provider,
                self.operation,
                self.response_model or request_model,
                self.input_tokens,
                self.output_tokens,
                self.cache_read_tokens,
                self.cache_write_tokens,
                estimated,
                self.status_code,
                self.error_type,
                key_id,
                attribution,
                cost,
            )
        )


def _estimate_tokens(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)


def _text_chars(value: Any, depth: int = 0) -> int:
    """Characters of text in a request body: every string but the few keys that are not content."""
    if depth > _MAX_ESTIMATE_DEPTH:
        return 0
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_text_chars(item, depth + 1) for key, item in value.items() if key not in _NOT_CONTENT_KEYS)
    if isinstance(value, list):
        return sum(_text_chars(item, depth + 1) for item in value)
    return 0
