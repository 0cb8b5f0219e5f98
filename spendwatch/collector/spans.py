"""From OTLP spans to `llm_call_spans` rows: which spans are model calls, and what of them is kept.

Kept: GenAI model-call spans from any instrumentation that speaks the semconv (ours, the anthropic SDK's
own, openai-v2, OpenLLMetry, other languages), including the deprecated `gen_ai.system` and the older
token names. Not kept: agent, tool and workflow spans, and everything without a GenAI provider; those
are counted as dropped.

What is kept of a span is its typed columns and, in `attributes`, what the allow-list keeps
(`attributes.py`: attributes without content, the resource's identity, the user's `keep`); the names of
the rest are counted. Every stored string, typed columns included, goes through the secret scrubber
(`scrub.py`). Spans that are not model calls leave only their parent link (`SpanLink`), which call
identity follows from an SDK's span down to the HTTP span of the same call.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from spendwatch import semconv
from spendwatch.collector import providers, scrub
from spendwatch.collector.attributes import NOTHING_MORE, KeepList, kept_attributes
from spendwatch.collector.attribution import DEFAULT as DEFAULT_ATTRIBUTION
from spendwatch.collector.attribution import AttributionConfig, dimensions, tags
from spendwatch.collector.rows import SpanLink, SpanRow

MODEL_OPERATIONS = frozenset(
    {
        "chat",
        "generate_content",
        "text_completion",
        "embeddings",
        "completion",
        "embedding",
        "responses",
        "image_generation",
        "speech",
        "transcription",
        "translation",
        "moderation",
    }
)
NOT_MODEL_CALLS = frozenset(
    {"invoke_agent", "create_agent", "execute_tool", "invoke_workflow", "workflow", "task", "agent", "tool"}
)
# Each typed column with the attribute names it is read from, the semconv name first.
_TOKENS = {
    "input_tokens": (semconv.GEN_AI_USAGE_INPUT_TOKENS, "gen_ai.usage.prompt_tokens", "llm.usage.prompt_tokens"),
    "output_tokens": (
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
        "gen_ai.usage.completion_tokens",
        "llm.usage.completion_tokens",
    ),
    "cache_read_tokens": (semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, "gen_ai.usage.cache_read_input_tokens"),
    "cache_write_tokens": (
        semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
        "gen_ai.usage.cache_creation_input_tokens",
    ),
    "reasoning_tokens": (semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, "gen_ai.usage.reasoning_tokens"),
}
_TYPED = frozenset(
    {
        semconv.GEN_AI_PROVIDER_NAME,
        semconv.GEN_AI_SYSTEM,
        semconv.GEN_AI_OPERATION_NAME,
        semconv.GEN_AI_REQUEST_MODEL,
        semconv.GEN_AI_RESPONSE_MODEL,
        semconv.GEN_AI_RESPONSE_ID,
        semconv.GEN_AI_REQUEST_STREAM,
        semconv.GEN_AI_RESPONSE_FINISH_REASONS,
        semconv.HTTP_RESPONSE_STATUS_CODE,
        semconv.ERROR_TYPE,
        semconv.SERVER_ADDRESS,
        semconv.SPENDWATCH_KEY_FINGERPRINT,
        semconv.SPENDWATCH_KEY_HINT,
        semconv.SPENDWATCH_API_KEY_ID,
        semconv.SPENDWATCH_API_KEY_HINT,
        semconv.SPENDWATCH_USAGE_ESTIMATED,
        *(name for names in _TOKENS.values() for name in names),
    }
)
TYPED_ATTRIBUTES = _TYPED  # the names read into columns: what forwarding keeps beside the allow-list

# What a key id looks like: spendwatch's are 16 hex digits; other tools' are word-like. Anything else is a
# scrubber's mark ("[Scrubbed due to 'api_key']", "****"), which would make every key one key.
_KEY_ID = re.compile(r"[A-Za-z0-9_.:+/=-]{1,64}")
_KEY_ID_MARKS = frozenset({"redacted", "scrubbed", "masked", "hidden", "filtered", "removed"})
MAX_ATTRIBUTE_CHARS = 4096
MAX_TEXT_CHARS = 512  # a typed text column: a model name, a key id, an address
MAX_VALUE_DEPTH = 8
MAX_FINISH_REASONS = 16
MAX_TOKENS = 10**9
TRACE_ID_BYTES, SPAN_ID_BYTES = 16, 8
EARLIEST_NS = 946_684_800 * 10**9  # 2000-01-01: no LLM call is older
FUTURE_SLACK_NS = 24 * 3600 * 10**9  # clocks run ahead; a day ahead is a wrong clock
MAX_DURATION_NS = 24 * 3600 * 10**9  # no model call lasts a day
_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")  # str.isdigit() also takes "²" and "٣", which int() refuses or misreads
_STATUS_CODE_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR


@dataclass
class Counts:
    received: int = 0
    kept: int = 0
    dropped: int = 0
    rejected: int = 0


_SCALAR_KINDS = frozenset({"string_value", "int_value", "double_value", "bool_value"})


def any_value(value: Any, depth: int = 0) -> Any:
    kind = value.WhichOneof("value")
    if kind in _SCALAR_KINDS:  # nearly every attribute: one set lookup before the rest
        return getattr(value, kind)
    if kind is None:
        return None
    if depth > MAX_VALUE_DEPTH and kind in ("array_value", "kvlist_value"):
        return "[too deeply nested]"
    if kind == "array_value":
        return [any_value(item, depth + 1) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: any_value(item.value, depth + 1) for item in value.kvlist_value.values}
    if kind == "bytes_value":  # text where it is text, so that the scrubber sees a key sent as bytes
        raw = value.bytes_value[:MAX_ATTRIBUTE_CHARS]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.hex()
    return getattr(value, kind)


@dataclass
class Extract:
    """What an export leaves for the writer besides its rows."""

    links: list[SpanLink]
    dropped_attributes: Counter


def rows_from_request(
    request: Any,
    counts: Counts,
    refusals: Counter[str] | None = None,
    *,
    keep: KeepList = NOTHING_MORE,
    extract: Extract | None = None,
    attribution: AttributionConfig = DEFAULT_ATTRIBUTION,
) -> list[SpanRow]:
    """The rows of an `ExportTraceServiceRequest`; `counts` is updated with what was kept and dropped.

    A span that cannot be stored sanely (ids of the wrong length) is rejected and counted, alone: the
    other spans of its batch are stored; `refusals` counts why, for the exporter's partial-success
    answer. So is a span whose row cannot be built at all (a bug here, never the other spans' loss).
    Odd values in a span that can be stored are made sane and the span's `attributes` say what was
    changed, under `spendwatch.invalid`. With `extract`, spans that are not model calls leave their
    parent link there, and every row the names of its dropped attributes.
    """
    rows = []
    refusals = Counter() if refusals is None else refusals
    dropped = extract.dropped_attributes if extract is not None else Counter()
    for resource_spans in request.resource_spans:
        resource = {attribute.key: any_value(attribute.value) for attribute in resource_spans.resource.attributes}
        service_name = resource.get("service.name")
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name
            for span in scope_spans.spans:
                counts.received += 1
                if len(span.trace_id) != TRACE_ID_BYTES or len(span.span_id) != SPAN_ID_BYTES:
                    counts.rejected += 1
                    refusals["trace or span id of the wrong length"] += 1
                    continue
                try:
                    attributes = {attribute.key: any_value(attribute.value) for attribute in span.attributes}
                    row = _row(span, attributes, scope, service_name, resource, keep, dropped, attribution)
                except Exception as error:  # the message may quote the span's data: only its type is kept
                    counts.rejected += 1
                    refusals[f"could not be read ({type(error).__name__})"] += 1
                    continue
                if row is None:
                    counts.dropped += 1
                    if extract is not None:
                        said = _link_attribution(attributes, attribution)
                        has_parent = len(span.parent_span_id) == SPAN_ID_BYTES
                        if has_parent or said is not None:  # a root is kept only for what it says
                            extract.links.append(
                                SpanLink(
                                    span.trace_id.hex(),
                                    span.span_id.hex(),
                                    span.parent_span_id.hex() if has_parent else "",
                                    said,
                                )
                            )
                else:
                    counts.kept += 1
                    rows.append(row)
    return rows


def _link_attribution(attributes: dict[str, Any], config: AttributionConfig) -> str | None:
    """What a span that is not a model call says of who its calls were for, as JSON; None for nothing."""
    names = config.source_names
    if not any(name in names or name.startswith(semconv.SPENDWATCH_TAG_PREFIX) for name in attributes):
        return None
    ignored: list[str] = []
    found: dict[str, Any] = dict(dimensions(attributes, config, ignored))
    found_tags = tags(attributes, ignored)
    if found_tags:
        found["tags"] = found_tags
    return json.dumps(found, separators=(",", ":"), ensure_ascii=False) if found else None


def _row(
    span: Any,
    attributes: dict[str, Any],
    scope: str,
    service_name: Any,
    resource: dict[str, Any],
    keep: KeepList,
    dropped: Counter,
    attribution: AttributionConfig,
) -> SpanRow | None:
    provider_raw = attributes.get(semconv.GEN_AI_PROVIDER_NAME) or attributes.get(semconv.GEN_AI_SYSTEM)
    if not isinstance(provider_raw, str) or not provider_raw.strip():
        return None
    operation = attributes.get(semconv.GEN_AI_OPERATION_NAME) or attributes.get("llm.request.type")
    if not isinstance(operation, str):
        operation = None
    span_kind = attributes.get("traceloop.span.kind")  # any type: an array is not hashable
    if operation in NOT_MODEL_CALLS or (isinstance(span_kind, str) and span_kind in NOT_MODEL_CALLS):
        return None
    problems: list[str] = []
    tokens = {column: _first_count(attributes, names, problems) for column, names in _TOKENS.items()}
    request_model = _text(attributes, semconv.GEN_AI_REQUEST_MODEL, problems)
    response_model = _text(attributes, semconv.GEN_AI_RESPONSE_MODEL, problems)
    if operation not in MODEL_OPERATIONS and not (request_model or response_model) and tokens["input_tokens"] is None:
        return None
    provider = _clip(scrub.scrub_text(providers.normalize(provider_raw)), "provider", problems)
    start_ns, end_ns = _times(span, problems)
    status_code = attributes.get(semconv.HTTP_RESPONSE_STATUS_CODE, attributes.get("http.status_code"))
    if not (isinstance(status_code, int) and 100 <= status_code <= 599):
        if status_code is not None:
            problems.append(f"{semconv.HTTP_RESPONSE_STATUS_CODE}: not an HTTP status")
        status_code = None
    error_type = _text(attributes, semconv.ERROR_TYPE, problems)
    if error_type is None and span.status.code == _STATUS_CODE_ERROR:
        error_type = "error"
    finish_reasons = attributes.get(semconv.GEN_AI_RESPONSE_FINISH_REASONS)
    if isinstance(finish_reasons, str):
        finish_reasons = [finish_reasons]
    if isinstance(finish_reasons, list):
        finish_reasons = [
            scrub.scrub_text(str(reason)[:MAX_TEXT_CHARS]) for reason in finish_reasons[:MAX_FINISH_REASONS]
        ]
    else:
        finish_reasons = None
    stream = attributes.get(semconv.GEN_AI_REQUEST_STREAM)
    if isinstance(service_name, str):
        service_name = _clip(scrub.scrub_text(service_name), "service.name", problems)
    else:
        service_name = None
    operation = _clip(scrub.scrub_text(operation), semconv.GEN_AI_OPERATION_NAME, problems) if operation else None
    api_key_id = _key_id(attributes, problems)
    api_key_hint = _key_id(attributes, problems, hint=True)
    scope = _clip(scrub.scrub_text(scope), "scope", problems)
    response_id = _text(attributes, semconv.GEN_AI_RESPONSE_ID, problems)
    server_address = _text(attributes, semconv.SERVER_ADDRESS, problems)
    dims = dimensions(attributes, attribution, problems)
    call_tags = tags(attributes, problems)
    typed = _TYPED | attribution.source_names
    untagged = {name: value for name, value in attributes.items() if not name.startswith(semconv.SPENDWATCH_TAG_PREFIX)}
    kept = kept_attributes(untagged, resource, typed, keep, dropped)
    if problems:
        kept["spendwatch.invalid"] = [scrub.scrub_text(problem) for problem in problems]
    provider_raw = provider_raw[:MAX_TEXT_CHARS]
    return SpanRow(
        span.trace_id.hex(),
        span.span_id.hex(),
        span.parent_span_id.hex() if len(span.parent_span_id) == SPAN_ID_BYTES else None,
        start_ns,
        end_ns,
        service_name,
        provider,
        operation,
        _scrubbed(request_model),
        _scrubbed(response_model),
        _scrubbed(response_id),
        stream if isinstance(stream, bool) else None,
        tokens["input_tokens"],
        tokens["output_tokens"],
        tokens["cache_read_tokens"],
        tokens["cache_write_tokens"],
        tokens["reasoning_tokens"],
        attributes.get(semconv.SPENDWATCH_USAGE_ESTIMATED) is True,
        None,  # cost_usd: priced in the next stage (pricing.price_rows)
        api_key_id,
        api_key_hint,
        status_code,
        _scrubbed(error_type),
        finish_reasons,
        _scrubbed(server_address),
        json.dumps(kept, separators=(",", ":"), ensure_ascii=False),
        scope,
        scope == semconv.INSTRUMENTATION_SCOPE,
        None if provider_raw == provider else scrub.scrub_text(provider_raw),
        None,  # fees_usd: likewise
        dims.get("user"),
        dims.get("tenant"),
        dims.get("feature"),
        dims.get("agent"),
        dims.get("conversation"),
        call_tags,
    )


def _scrubbed(value: str | None) -> str | None:
    return scrub.scrub_text(value) if value is not None else None


def _key_id(attributes: dict[str, Any], problems: list[str], *, hint: bool = False) -> str | None:
    """The key's id (or hint) under its name or the one spendwatch used before; a scrubber's mark is none."""
    names = (
        (semconv.SPENDWATCH_KEY_HINT, semconv.SPENDWATCH_API_KEY_HINT)
        if hint
        else (semconv.SPENDWATCH_KEY_FINGERPRINT, semconv.SPENDWATCH_API_KEY_ID)
    )
    for name in names:
        value = _text(attributes, name, problems)
        if value is None:
            continue
        if _KEY_ID.fullmatch(value) is None or value.lower() in _KEY_ID_MARKS or scrub.has_secret(value):
            problems.append(f"{name}: not a key id (scrubbed on the way?); the call is stored without one")
            return None
        return value
    return None


def _times(span: Any, problems: list[str]) -> tuple[int, int]:
    """Start and end, made sane, each flagged when changed; a span is never refused for its times alone.

    A start outside 2000-01-01..a day ahead is the time the span arrived (a backfill of days or months
    is normal and kept as sent). An end before the start, more than a day ahead, or more than
    `MAX_DURATION_NS` after the start is the start: the call happened, its duration is unknown. Every
    value stored then fits a signed 64-bit column, whatever the exporter sent (fixed64 goes to 2^64).
    """
    start_ns, end_ns = span.start_time_unix_nano, span.end_time_unix_nano
    now_ns = time.time_ns()
    latest_ns = now_ns + FUTURE_SLACK_NS
    if not EARLIEST_NS <= start_ns <= latest_ns:
        problems.append(f"start_time: {start_ns} is not a plausible time; the time it arrived is used")
        duration = end_ns - start_ns if 0 <= end_ns - start_ns <= MAX_DURATION_NS else 0
        start_ns, end_ns = now_ns - duration, now_ns
    if end_ns < start_ns:
        problems.append("end_time: before start_time; start_time is used")
        end_ns = start_ns
    elif end_ns > latest_ns or end_ns - start_ns > MAX_DURATION_NS:
        problems.append(f"end_time: {end_ns} is not a plausible end for this start; start_time is used")
        end_ns = start_ns
    return start_ns, end_ns


def _first_count(attributes: dict[str, Any], names: tuple[str, ...], problems: list[str]) -> int | None:
    """A token count: a whole number from 0 to 10^9 (as int, integral float or digits), else None and flagged."""
    for name in names:
        value = attributes.get(name)
        if value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, str) and _ASCII_DIGITS.fullmatch(value.strip()):
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
            problems.append(f"{name}: {str(value)[:40]!r} is not a token count from 0 to {MAX_TOKENS}")
            return None
        return value
    return None


def _text(attributes: dict[str, Any], name: str, problems: list[str]) -> str | None:
    value = attributes.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        problems.append(f"{name}: expected a string, got {type(value).__name__}")
        return None
    return _clip(value, name, problems)


def _clip(value: str, name: str, problems: list[str]) -> str:
    if len(value) <= MAX_TEXT_CHARS:
        return value
    problems.append(f"{name}: {len(value)} characters, cut to {MAX_TEXT_CHARS}")
    return value[:MAX_TEXT_CHARS]
