"""What Amazon Bedrock's runtime answers: Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream.

Streams are AWS event-stream messages (`application/vnd.amazon.eventstream`): a prelude with the total and
headers lengths and its CRC32, string headers (`:event-type`, `:content-type`, `:message-type`), a JSON
payload and the message's CRC32 — the framing botocore parses and checks, so real boto3 reads them.
Bedrock's `inputTokens` leaves the cache out, as Anthropic's does.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

from spendwatch.standin import wire
from spendwatch.standin.exchange import Answer, Exchange

EVENT_STREAM = "application/vnd.amazon.eventstream"


def event_message(headers: dict[str, str], payload: bytes) -> bytes:
    encoded = b""
    for name, value in headers.items():
        name_bytes, value_bytes = name.encode(), value.encode()
        encoded += bytes([len(name_bytes)]) + name_bytes + b"\x07" + struct.pack(">H", len(value_bytes)) + value_bytes
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _event(event_type: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return event_message(headers, json.dumps(payload).encode())


def _usage(exchange: Exchange) -> dict[str, Any]:
    usage = exchange.usage
    counts: dict[str, Any] = {
        "inputTokens": usage.input - usage.cache_read - usage.cache_write,
        "outputTokens": usage.output,
        "totalTokens": usage.input + usage.output,
    }
    if usage.cache_read:
        counts["cacheReadInputTokens"] = usage.cache_read
    if usage.cache_write:
        counts["cacheWriteInputTokens"] = usage.cache_write
        counts["cacheDetails"] = [
            {"ttl": ttl, "inputTokens": tokens}
            for ttl, tokens in (("5m", usage.cache_write - usage.cache_write_1h), ("1h", usage.cache_write_1h))
            if tokens
        ]
    return counts


def converse(exchange: Exchange) -> Answer:
    return Answer(
        {
            "output": {"message": {"role": "assistant", "content": [{"text": exchange.reply}]}},
            "stopReason": "end_turn",
            "usage": _usage(exchange),
            "metrics": {"latencyMs": 42},
        }
    )


def converse_stream(exchange: Exchange) -> Answer:
    events = [_event("messageStart", {"role": "assistant"})]
    for piece in exchange.chunks:
        events.append(_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}))
    events.append(_event("contentBlockStop", {"contentBlockIndex": 0}))
    events.append(_event("messageStop", {"stopReason": "end_turn"}))
    events.append(_event("metadata", {"usage": _usage(exchange), "metrics": {"latencyMs": 42}}))
    return Answer(events=events, content_type=EVENT_STREAM)


def _token_headers(exchange: Exchange) -> dict[str, str]:
    usage = exchange.usage
    headers = {
        "X-Amzn-Bedrock-Input-Token-Count": str(usage.input - usage.cache_read - usage.cache_write),
        "X-Amzn-Bedrock-Output-Token-Count": str(usage.output),
        "X-Amzn-Bedrock-Invocation-Latency": "42",
    }
    if usage.cache_read:
        headers["X-Amzn-Bedrock-Cache-Read-Input-Token-Count"] = str(usage.cache_read)
    if usage.cache_write:
        headers["X-Amzn-Bedrock-Cache-Write-Input-Token-Count"] = str(usage.cache_write)
    return headers


def invoke(exchange: Exchange) -> Answer:
    """The model family's own body: Anthropic's Messages, Titan's embeddings, Llama's generation."""
    model = exchange.model
    usage = exchange.usage
    if "anthropic." in model:
        body: dict[str, Any] = wire.messages(exchange).body
        body["model"] = model.split("anthropic.", 1)[1].split("-v", 1)[0]  # Anthropic's own name, as Bedrock answers
    elif "embed" in model:
        body = {"embedding": wire.vector(0), "inputTextTokenCount": usage.input}
    else:
        body = {
            "generation": exchange.reply,
            "prompt_token_count": usage.input,
            "generation_token_count": usage.output,
            "stop_reason": "stop",
        }
    return Answer(body, headers=_token_headers(exchange))


def invoke_stream(exchange: Exchange) -> Answer:
    """Anthropic's stream events, each as the `bytes` of a `chunk` event; the last with the metrics."""
    usage = exchange.usage
    inner = [json.loads(event.split(b"data: ", 1)[1]) for event in wire.messages(exchange, stream=True).events]
    inner[0]["message"]["model"] = exchange.model.split("anthropic.", 1)[-1].split("-v", 1)[0]
    metrics = {
        "inputTokenCount": usage.input - usage.cache_read - usage.cache_write,
        "outputTokenCount": usage.output,
        "invocationLatency": 42,
        "firstByteLatency": 7,
    }
    if usage.cache_read:
        metrics["cacheReadInputTokenCount"] = usage.cache_read
    if usage.cache_write:
        metrics["cacheWriteInputTokenCount"] = usage.cache_write
    inner[-1]["amazon-bedrock-invocationMetrics"] = metrics
    events = [_event("chunk", {"bytes": base64.b64encode(json.dumps(value).encode()).decode()}) for value in inner]
    return Answer(events=events, content_type=EVENT_STREAM)


ROUTES = (
    ("/converse-stream", converse_stream),
    ("/converse", converse),
    ("/invoke-with-response-stream", invoke_stream),
    ("/invoke", invoke),
)
