"""From OTLP spans to `llm_call_spans` rows: which spans are model calls, and what of them is kept.

Kept: GenAI model-call spans from any instrumentation that speaks the semconv (ours, the anthropic SDK's
own, openai-v2, OpenLLMetry, other languages), including the deprecated `gen_ai.system` and the older
token names. Not kept: agent, tool and workflow spans, and everything without a GenAI provider; those
are counted as dropped.

What is kept of a span is its typed columns and, in `attributes`, the rest — minus content (prompts,
completions, messages, tool arguments: stripped whatever instrumentation sent them) and minus anything
that looks like a secret, by its key or its value (logfire's scrubbing patterns).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from spendwatch import semconv
from spendwatch.collector.pricing import Pricer

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
FREE_OPERATIONS = frozenset({"moderation"})  # answered, they cost nothing: zero, not unknown
NOT_MODEL_CALLS = frozenset(
    {"invoke_agent", "create_agent", "execute_tool", "invoke_workflow", "workflow", "task", "agent", "tool"}
)
# Older or other spellings of semconv provider names.
PROVIDER_ALIASES = {
    "gemini": "gcp.gemini",
    "google": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "az.ai.openai": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "mistralai": "mistral_ai",
    "xai": "x_ai",
    "bedrock": "aws.bedrock",
    "together": "together_ai",
    "fireworks": "fireworks_ai",
}

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
        semconv.SPENDWATCH_API_KEY_ID,
        semconv.SPENDWATCH_API_KEY_HINT,
        semconv.SPENDWATCH_USAGE_ESTIMATED,
        *(name for names in _TOKENS.values() for name in names),
    }
)

CONTENT_ATTRIBUTE_PREFIXES = (
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.prompt",
    "gen_ai.completion",
    "llm.prompts",
    "llm.completions",
    "llm.input_messages",
    "llm.output_messages",
    "llm.request.functions",
    "traceloop.entity.input",
    "traceloop.entity.output",
    "input.value",
    "output.value",
)

# logfire's default scrubbing patterns, matched against attribute keys and string values.
_SECRET_KEY = re.compile(
    r"password|passwd|mysql_pwd|secret|auth(?!ors?\b)|credential|private[._ -]?key|api[._ -]?key|session|cookie"
    r"|social[._ -]?security|credit[._ -]?card|(?:\b|_)csrf(?:\b|_)|(?:\b|_)xsrf(?:\b|_)|(?:\b|_)jwt(?:\b|_)"
    r"|(?:\b|_)ssn(?:\b|_)",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"\b(?:sk-[A-Za-z0-9_-]{16,}|AIza[0-9A-Za-z_-]{30,}|gsk_[A-Za-z0-9]{20,}|xai-[A-Za-z0-9]{20,}"
    r"|Bearer\s+[A-Za-z0-9._~+/-]{16,}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"
)
MAX_ATTRIBUTE_CHARS = 4096
MAX_TEXT_CHARS = 512  # a typed text column: a model name, a key id, an address
MAX_VALUE_DEPTH = 8
MAX_FINISH_REASONS = 16
MAX_TOKENS = 10**9
TRACE_ID_BYTES, SPAN_ID_BYTES = 16, 8
EARLIEST_NS = 946_684_800 * 10**9  # 2000-01-01: no LLM call is older
FUTURE_SLACK_NS = 24 * 3600 * 10**9  # clocks run ahead; a day ahead is a wrong clock
_STATUS_CODE_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR


@dataclass
class Counts:
    received: int = 0
    kept: int = 0
    dropped: int = 0
    rejected: int = 0


def any_value(value: Any, depth: int = 0) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if depth > MAX_VALUE_DEPTH and kind in ("array_value", "kvlist_value"):
        return "[too deeply nested]"
    if kind == "array_value":
        return [any_value(item, depth + 1) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: any_value(item.value, depth + 1) for item in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value[:MAX_ATTRIBUTE_CHARS].hex()
    return getattr(value, kind)


def rows_from_request(request: Any, pricer: Pricer, counts: Counts) -> list[tuple]:
    """The rows of an `ExportTraceServiceRequest`; `counts` is updated with what was kept and dropped.

    A span that cannot be stored sanely (ids of the wrong length) is rejected and counted, alone: the
    other spans of its batch are stored. Odd values in a span that can be stored are made sane and the
    span's `attributes` say what was changed, under `spendwatch.invalid`.
    """
    rows = []
    for resource_spans in request.resource_spans:
        service_name = None
        for attribute in resource_spans.resource.attributes:
            if attribute.key == "service.name":
                service_name = any_value(attribute.value)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name
            for span in scope_spans.spans:
                counts.received += 1
                if len(span.trace_id) != TRACE_ID_BYTES or len(span.span_id) != SPAN_ID_BYTES:
                    counts.rejected += 1
                    continue
                row = _row(span, scope, service_name, pricer)
                if row is None:
                    counts.dropped += 1
                else:
                    counts.kept += 1
                    rows.append(row)
    return rows


def _row(span: Any, scope: str, service_name: Any, pricer: Pricer) -> tuple | None:
    attributes = {attribute.key: any_value(attribute.value) for attribute in span.attributes}
    provider = attributes.get(semconv.GEN_AI_PROVIDER_NAME) or attributes.get(semconv.GEN_AI_SYSTEM)
    if not isinstance(provider, str) or not provider:
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
    provider = _clip(PROVIDER_ALIASES.get(provider.lower(), provider.lower()), "provider", problems)
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
        finish_reasons = [str(reason)[:MAX_TEXT_CHARS] for reason in finish_reasons[:MAX_FINISH_REASONS]]
    else:
        finish_reasons = None
    cost, fees_usd = pricer.price_call(
        provider,
        (response_model, request_model),
        at=datetime.fromtimestamp(start_ns / 1e9, UTC),
        input_tokens=tokens["input_tokens"],
        output_tokens=tokens["output_tokens"],
        cache_read_tokens=tokens["cache_read_tokens"],
        cache_write_tokens=tokens["cache_write_tokens"],
        attributes=attributes,
        free_when_answered=operation in FREE_OPERATIONS and error_type is None,
    )
    stream = attributes.get(semconv.GEN_AI_REQUEST_STREAM)
    service_name = _clip(service_name, "service.name", problems) if isinstance(service_name, str) else None
    operation = _clip(operation, semconv.GEN_AI_OPERATION_NAME, problems) if operation else None
    response_id = _text(attributes, semconv.GEN_AI_RESPONSE_ID, problems)
    api_key_id = _text(attributes, semconv.SPENDWATCH_API_KEY_ID, problems)
    api_key_hint = _text(attributes, semconv.SPENDWATCH_API_KEY_HINT, problems)
    server_address = _text(attributes, semconv.SERVER_ADDRESS, problems)
    scope = _clip(scope, "scope", problems)
    kept = kept_attributes(attributes)
    if problems:
        kept["spendwatch.invalid"] = problems
    return (
        span.trace_id.hex(),
        span.span_id.hex(),
        span.parent_span_id.hex() if len(span.parent_span_id) == SPAN_ID_BYTES else None,
        start_ns,
        end_ns,
        service_name,
        provider,
        operation,
        request_model,
        response_model,
        response_id,
        stream if isinstance(stream, bool) else None,
        tokens["input_tokens"],
        tokens["output_tokens"],
        tokens["cache_read_tokens"],
        tokens["cache_write_tokens"],
        tokens["reasoning_tokens"],
        attributes.get(semconv.SPENDWATCH_USAGE_ESTIMATED) is True,
        cost,
        api_key_id,
        api_key_hint,
        status_code,
        error_type,
        finish_reasons,
        server_address,
        json.dumps(kept, separators=(",", ":"), ensure_ascii=False),
        scope,
        scope == semconv.INSTRUMENTATION_SCOPE,
        fees_usd,
    )


def _times(span: Any, problems: list[str]) -> tuple[int, int]:
    """Start and end, made sane: a start outside 2000..tomorrow is the time it arrived, an end before it is it."""
    start_ns, end_ns = span.start_time_unix_nano, span.end_time_unix_nano
    now_ns = time.time_ns()
    if not EARLIEST_NS <= start_ns <= now_ns + FUTURE_SLACK_NS:
        problems.append(f"start_time: {start_ns} is not a plausible time; the time it arrived is used")
        duration = end_ns - start_ns if 0 <= end_ns - start_ns <= FUTURE_SLACK_NS else 0
        start_ns, end_ns = now_ns - duration, now_ns
    if end_ns < start_ns:
        problems.append("end_time: before start_time; start_time is used")
        end_ns = start_ns
    return start_ns, end_ns


def kept_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """The attributes that are not typed columns, without content and with secrets scrubbed."""
    kept = {}
    for key, value in attributes.items():
        if key in _TYPED or key.startswith(CONTENT_ATTRIBUTE_PREFIXES):
            continue
        match = _SECRET_KEY.search(key)
        kept[key[:MAX_TEXT_CHARS]] = f"[Scrubbed due to '{match.group(0)}']" if match else _scrub_value(value)
    return kept


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        value = value[:MAX_ATTRIBUTE_CHARS]
        match = _SECRET_VALUE.search(value)
        return "[Scrubbed due to a secret-like value]" if match else value
    if isinstance(value, list):
        return [_scrub_value(item) for item in value]
    if isinstance(value, dict):
        return {
            key: "[Scrubbed]" if _SECRET_KEY.search(key) else _scrub_value(item)
            for key, item in value.items()
            if not key.startswith(CONTENT_ATTRIBUTE_PREFIXES)
        }
    return value


def _first_count(attributes: dict[str, Any], names: tuple[str, ...], problems: list[str]) -> int | None:
    """A token count: a whole number from 0 to 10^9 (as int, integral float or digits), else None and flagged."""
    for name in names:
        value = attributes.get(name)
        if value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, str) and value.strip().isdigit():
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
