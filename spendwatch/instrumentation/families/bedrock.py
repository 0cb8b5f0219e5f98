"""Amazon Bedrock's runtime API: Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream.

The model is in the path, URL-encoded (`/model/{modelId}/converse`): a model id, a cross-region
inference profile (`us.anthropic.claude-sonnet-4-5-20250929-v1:0`) or an ARN. Where usage lives:
- Converse: `usage` on the answer; ConverseStream (AWS event-stream framing): the `metadata` event;
- InvokeModel: the model family's own body (Anthropic's Messages, Nova's `usage`, Titan's
  `inputTextTokenCount`, Llama's `prompt_token_count`), and for every family the
  `x-amzn-bedrock-*-token-count` response headers;
- InvokeModelWithResponseStream: each event's `bytes` is the model family's stream chunk (base64 JSON);
  the last one carries `amazon-bedrock-invocationMetrics`.
Bedrock's `inputTokens` leaves the cache out (as Anthropic's does): the semconv input count is input +
cache reads + cache writes. Converse's `usage.cacheDetails` splits the cache writes by lifetime (`5m`, `1h`),
which are priced apart.

The credential is SigV4: the key id is made from the access key id in the `Authorization` header's
`Credential=` scope, never from the secret (which never travels); the scope also names the region.
Bedrock API keys (`Authorization: Bearer ...`) are read as any bearer key.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any
from urllib.parse import unquote

from spendwatch import semconv
from spendwatch.instrumentation.families import Family, Route, Wire, anthropic, count, set_parts

PROVIDER = "aws.bedrock"

_MODEL_IN_PATH = re.compile(r"/model/([^/]+)/")
_SIGV4_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]{16,128})/\d{8}/([a-z0-9-]+)/")
_INVOCATION_METRICS = "amazon-bedrock-invocationMetrics"
_HEADER_COUNTS = (
    ("x-amzn-bedrock-input-token-count", "input"),
    ("x-amzn-bedrock-output-token-count", "output"),
    ("x-amzn-bedrock-cache-read-input-token-count", "cache_read"),
    ("x-amzn-bedrock-cache-write-input-token-count", "cache_write"),
)


def sigv4_credential(request: Any) -> str | None:
    """The access key id a SigV4 request was signed with (None for a bearer key: read as any other)."""
    found = _SIGV4_CREDENTIAL.search(request.header("authorization") or "")
    return found.group(1) if found else None


def read_request(call: Any, request: Any) -> None:
    found = _MODEL_IN_PATH.search(request.path)
    model = unquote(found.group(1)) if found else None
    call.request_model = model
    call.request_stream = request.path.endswith(("/converse-stream", "/invoke-with-response-stream"))
    if model and "embed" in model and request.path.endswith("/invoke"):
        call.operation = semconv.OPERATION_EMBEDDINGS
    region = _SIGV4_CREDENTIAL.search(request.header("authorization") or "")
    if region:
        call.extra[semconv.CLOUD_REGION] = region.group(2)
    elif request.host.startswith("bedrock-runtime."):
        call.extra[semconv.CLOUD_REGION] = request.host.split(".")[1]


def _set_usage(call: Any, uncached: Any, output: Any, cache_read: Any, cache_write: Any) -> None:
    if count(uncached) is None:
        return
    call.set_usage(
        input_tokens=uncached + (count(cache_read) or 0) + (count(cache_write) or 0),
        output_tokens=output,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        final=True,
    )


# -- Converse and ConverseStream ---------------------------------------------------------------------------


def observe_converse(call: Any, obj: Any) -> None:
    if not isinstance(obj, dict):
        return
    if "__exception__" in obj:
        call.error_type = str(obj["__exception__"])
        return
    output = obj.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    for block in (message.get("content") if isinstance(message, dict) else None) or ():
        if isinstance(block, dict):
            call.add_output_chars(block.get("text"))
    delta = obj.get("delta")
    if isinstance(delta, dict):
        call.add_output_chars(delta.get("text"))
    if isinstance(obj.get("stopReason"), str):
        call.add_finish_reason(obj["stopReason"])
    usage = obj.get("usage")
    if isinstance(usage, dict):
        _set_usage(
            call,
            usage.get("inputTokens"),
            usage.get("outputTokens"),
            usage.get("cacheReadInputTokens"),
            usage.get("cacheWriteInputTokens"),
        )
        lifetimes = {
            detail.get("ttl"): detail.get("inputTokens")
            for detail in usage.get("cacheDetails") or ()
            if isinstance(detail, dict)
        }
        set_parts(
            call,
            {
                semconv.SPENDWATCH_USAGE_CACHE_WRITE_5M_TOKENS: lifetimes.get("5m"),
                semconv.SPENDWATCH_USAGE_CACHE_WRITE_1H_TOKENS: lifetimes.get("1h"),
            },
        )


# -- InvokeModel and InvokeModelWithResponseStream ---------------------------------------------------------


def on_invoke_headers(call: Any, headers: Any) -> None:
    counts = {name: headers.get(header) for header, name in _HEADER_COUNTS}
    numbers = {name: int(value) for name, value in counts.items() if isinstance(value, str) and value.isdigit()}
    if "input" in numbers:
        _set_usage(call, numbers["input"], numbers.get("output"), numbers.get("cache_read"), numbers.get("cache_write"))


def observe_invoke(call: Any, obj: Any) -> None:
    """One model-family body, or one stream event whose `bytes` hold a model-family chunk."""
    if not isinstance(obj, dict):
        return
    if "__exception__" in obj:
        call.error_type = str(obj["__exception__"])
        return
    chunk = obj.get("bytes")
    if isinstance(chunk, str) and len(obj) <= 2:  # an event of a stream: {"bytes": base64, "p": padding}
        try:
            obj = json.loads(base64.b64decode(chunk))
        except (ValueError, binascii.Error):
            return
        if not isinstance(obj, dict):
            return
    metrics = obj.get(_INVOCATION_METRICS)
    if isinstance(obj.get("type"), str):  # Anthropic's Messages, as the anthropic family reads them
        model = call.response_model
        anthropic.observe(call, obj)
        # Its `model` is Anthropic's name, not the model id or inference profile Bedrock bills (a global
        # profile costs less than a regional one): the request's model id stays the one priced.
        call.response_model = model
    elif isinstance(obj.get("usage"), dict):  # Nova (Converse's names), or a Messages-like usage
        usage = obj["usage"]
        _set_usage(
            call,
            usage.get("inputTokens", usage.get("input_tokens")),
            usage.get("outputTokens", usage.get("output_tokens")),
            usage.get("cacheReadInputTokenCount", usage.get("cacheReadInputTokens")),
            usage.get("cacheWriteInputTokenCount", usage.get("cacheWriteInputTokens")),
        )
    elif count(obj.get("prompt_token_count")) is not None:  # Llama
        _set_usage(call, obj["prompt_token_count"], obj.get("generation_token_count"), None, None)
        call.add_output_chars(obj.get("generation"))
    elif count(obj.get("inputTextTokenCount")) is not None:  # Titan text and embeddings
        results = obj.get("results") if isinstance(obj.get("results"), list) else []
        output = sum(count(result.get("tokenCount")) or 0 for result in results if isinstance(result, dict))
        _set_usage(call, obj["inputTextTokenCount"], output if results else None, None, None)
        if "embedding" in obj:
            call.recognised = True
    if isinstance(metrics, dict):  # the last chunk of a stream: the call's whole usage
        _set_usage(
            call,
            metrics.get("inputTokenCount"),
            metrics.get("outputTokenCount"),
            metrics.get("cacheReadInputTokenCount"),
            metrics.get("cacheWriteInputTokenCount"),
        )


CONVERSE = Wire(read_request, observe_converse)
INVOKE = Wire(read_request, observe_invoke, on_invoke_headers)
_IN_MODEL = "/model/"

FAMILY = Family(
    "bedrock",
    routes=(
        Route("/converse", semconv.OPERATION_CHAT, CONVERSE, PROVIDER, _IN_MODEL, sigv4_credential),
        Route("/converse-stream", semconv.OPERATION_CHAT, CONVERSE, PROVIDER, _IN_MODEL, sigv4_credential),
        Route("/invoke", semconv.OPERATION_CHAT, INVOKE, PROVIDER, _IN_MODEL, sigv4_credential),
        Route("/invoke-with-response-stream", semconv.OPERATION_CHAT, INVOKE, PROVIDER, _IN_MODEL, sigv4_credential),
    ),
    host_prefixes=(("bedrock-runtime.", PROVIDER), ("bedrock-runtime-fips.", PROVIDER)),
)
