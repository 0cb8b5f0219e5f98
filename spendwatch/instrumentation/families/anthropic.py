"""Anthropic's Messages API (also Claude on Vertex AI, whose paths name the model: see `vertex`).

`usage.input_tokens` excludes the cache: the semconv input count is input + cache reads + cache writes.
In a stream, `message_start` carries the input side and `message_delta` the output side; the delta's
usage is cumulative (it replaces, it does not add), so the usage seen so far is merged key by key.
Server tools are billed per use: `usage.server_tool_use` counts web searches (priced) and web fetches
(free beyond their tokens).

What else prices a call: cache writes by lifetime (`usage.cache_creation.ephemeral_5m_input_tokens` and
`ephemeral_1h_input_tokens`: an hour's cache costs more to write), the tier that served it
(`usage.service_tier`: `standard`, `priority`, or `batch` for a Message Batches result) and fast mode
(`usage.speed`).
"""

from __future__ import annotations

from typing import Any

from spendwatch import semconv
from spendwatch.instrumentation.families import (
    Family,
    Route,
    Wire,
    body_model,
    body_streams,
    count,
    request_json,
    set_parts,
    set_text,
)

PROVIDER = "anthropic"


def read_request(call: Any, request: Any) -> None:
    body = request_json(request)
    call.request_model = body_model(body)
    call.request_stream = body_streams(body)


def observe(call: Any, obj: Any) -> None:
    if not isinstance(obj, dict):
        return
    event_type = obj.get("type")
    if event_type == "message":
        _message(call, obj)
        _usage(call, obj.get("usage"), final=True)
    elif event_type == "message_start":
        message = obj.get("message")
        if isinstance(message, dict):
            _message(call, message)
            _usage(call, message.get("usage"), final=False)
    elif event_type == "content_block_delta":
        delta = obj.get("delta")
        if isinstance(delta, dict):
            call.add_output_chars(delta.get("text"))
            call.add_output_chars(delta.get("partial_json"))
            call.add_output_chars(delta.get("thinking"))
    elif event_type == "message_delta":
        delta = obj.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
            call.add_finish_reason(delta["stop_reason"])
        _usage(call, obj.get("usage"), final=True)
    elif event_type == "error":
        error = obj.get("error")
        call.error_type = error.get("type") if isinstance(error, dict) else "error"


def _message(call: Any, message: dict[str, Any]) -> None:
    if isinstance(message.get("model"), str):
        call.response_model = message["model"]
    if isinstance(message.get("id"), str):
        call.response_id = message["id"]
    if isinstance(message.get("stop_reason"), str):
        call.add_finish_reason(message["stop_reason"])
    for block in message.get("content") or ():
        if isinstance(block, dict):
            call.add_output_chars(block.get("text"))


def _usage(call: Any, usage: Any, *, final: bool) -> None:
    if not isinstance(usage, dict):
        return
    merged = call.scratch.setdefault("anthropic_usage", {})
    merged.update((key, value) for key, value in usage.items() if value is not None)
    uncached = merged.get("input_tokens")
    cache_read = merged.get("cache_read_input_tokens")
    cache_write = merged.get("cache_creation_input_tokens")
    input_tokens = None
    if uncached is not None:
        input_tokens = sum(count for count in (uncached, cache_read, cache_write) if isinstance(count, int))
    call.set_usage(
        input_tokens=input_tokens,
        output_tokens=merged.get("output_tokens"),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        final=final,
    )
    lifetimes = merged.get("cache_creation")
    if isinstance(lifetimes, dict):
        set_parts(
            call,
            {
                semconv.SPENDWATCH_USAGE_CACHE_WRITE_5M_TOKENS: lifetimes.get("ephemeral_5m_input_tokens"),
                semconv.SPENDWATCH_USAGE_CACHE_WRITE_1H_TOKENS: lifetimes.get("ephemeral_1h_input_tokens"),
            },
        )
    set_text(call, semconv.SPENDWATCH_RESPONSE_SERVICE_TIER, merged.get("service_tier"))
    set_text(call, semconv.SPENDWATCH_RESPONSE_SPEED, merged.get("speed"))
    server_tools = merged.get("server_tool_use")
    if isinstance(server_tools, dict):  # cumulative too: set, never added
        for key, name in (
            ("web_search_requests", semconv.SPENDWATCH_USAGE_WEB_SEARCH_CALLS),
            ("web_fetch_requests", semconv.SPENDWATCH_USAGE_WEB_FETCH_CALLS),
        ):
            if count(server_tools.get(key)):
                call.extra[name] = server_tools[key]


WIRE = Wire(read_request, observe)

FAMILY = Family(
    "anthropic",
    routes=(Route("/v1/messages", semconv.OPERATION_CHAT, WIRE, PROVIDER),),
    hosts={"api.anthropic.com": PROVIDER},
)
