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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from spendwatch import semconv
from spendwatch.collector.pricing import Pricer

MODEL_OPERATIONS = frozenset(
    {"chat", "generate_content", "text_completion", "embeddings", "completion", "embedding", "responses"}
)
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
_STATUS_CODE_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR


@dataclass
class Counts:
    received: int = 0
    kept: int = 0
    dropped: int = 0


def any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: any_value(item.value) for item in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def rows_from_request(request: Any, pricer: Pricer, counts: Counts) -> list[tuple]:
    """The rows of an `ExportTraceServiceRequest`; `counts` is updated with what was kept and dropped."""
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
    if operation in NOT_MODEL_CALLS or attributes.get("traceloop.span.kind") in NOT_MODEL_CALLS:
        return None
    tokens = {column: _first_count(attributes, names) for column, names in _TOKENS.items()}
    request_model = _text(attributes.get(semconv.GEN_AI_REQUEST_MODEL))
    response_model = _text(attributes.get(semconv.GEN_AI_RESPONSE_MODEL))
    if operation not in MODEL_OPERATIONS and not (request_model or response_model) and tokens["input_tokens"] is None:
        return None
    provider = PROVIDER_ALIASES.get(provider.lower(), provider.lower())
    start_ns, end_ns = span.start_time_unix_nano, span.end_time_unix_nano
    status_code = attributes.get(semconv.HTTP_RESPONSE_STATUS_CODE, attributes.get("http.status_code"))
    error_type = _text(attributes.get(semconv.ERROR_TYPE))
    if error_type is None and span.status.code == _STATUS_CODE_ERROR:
        error_type = "error"
    finish_reasons = attributes.get(semconv.GEN_AI_RESPONSE_FINISH_REASONS)
    if isinstance(finish_reasons, str):
        finish_reasons = [finish_reasons]
    elif isinstance(finish_reasons, list):
        finish_reasons = [str(reason) for reason in finish_reasons]
    else:
        finish_reasons = None
    cost = pricer.price(
        provider,
        (response_model, request_model),
        at=datetime.fromtimestamp(start_ns / 1e9, UTC),
        input_tokens=tokens["input_tokens"],
        output_tokens=tokens["output_tokens"],
        cache_read_tokens=tokens["cache_read_tokens"],
        cache_write_tokens=tokens["cache_write_tokens"],
    )
    stream = attributes.get(semconv.GEN_AI_REQUEST_STREAM)
    return (
        span.trace_id.hex(),
        span.span_id.hex(),
        span.parent_span_id.hex() or None,
        start_ns,
        max(end_ns, start_ns),
        _text(service_name),
        provider,
        _text(operation),
        request_model,
        response_model,
        _text(attributes.get(semconv.GEN_AI_RESPONSE_ID)),
        stream if isinstance(stream, bool) else None,
        tokens["input_tokens"],
        tokens["output_tokens"],
        tokens["cache_read_tokens"],
        tokens["cache_write_tokens"],
        tokens["reasoning_tokens"],
        attributes.get(semconv.SPENDWATCH_USAGE_ESTIMATED) is True,
        cost,
        _text(attributes.get(semconv.SPENDWATCH_API_KEY_ID)),
        _text(attributes.get(semconv.SPENDWATCH_API_KEY_HINT)),
        status_code if isinstance(status_code, int) else None,
        error_type,
        finish_reasons,
        _text(attributes.get(semconv.SERVER_ADDRESS)),
        json.dumps(kept_attributes(attributes), separators=(",", ":"), ensure_ascii=False),
        scope,
        scope == semconv.INSTRUMENTATION_SCOPE,
    )


def kept_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """The attributes that are not typed columns, without content and with secrets scrubbed."""
    kept = {}
    for key, value in attributes.items():
        if key in _TYPED or key.startswith(CONTENT_ATTRIBUTE_PREFIXES):
            continue
        match = _SECRET_KEY.search(key)
        kept[key] = f"[Scrubbed due to '{match.group(0)}']" if match else _scrub_value(value)
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


def _first_count(attributes: dict[str, Any], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = attributes.get(name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value if value >= 0 else None
        if isinstance(value, float) and value.is_integer() and value >= 0:
            return int(value)
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
