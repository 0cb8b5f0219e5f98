"""What each provider answers, built from one `Exchange`: bodies, and streams as lists of raw events."""

from __future__ import annotations

import base64
import json
import struct
import time
from typing import Any

from spendwatch.standin.exchange import Answer, Exchange

EMBEDDING_DIMENSIONS = 8


def error_body(exchange: Exchange, status: int) -> dict[str, Any]:
    """Real providers quote the offending request back; so do we, to prove it is never recorded."""
    text = json.dumps(exchange.body)[:2000]
    return {"error": {"message": f"stand-in error {status} for request {text}", "type": "standin_error"}}


def _sse(payload: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + json.dumps(payload).encode() + b"\n\n"


# -- OpenAI and compatible -----------------------------------------------------------------------------


def _openai_usage(exchange: Exchange) -> dict[str, Any]:
    """Chat completions' usage; `x-standin-reasoning-apart: 1` answers as xAI does, reasoning beside the
    completion (and in the total) rather than inside it."""
    usage = exchange.usage
    completion = usage.output
    if exchange.headers.get("x-standin-reasoning-apart") == "1":
        completion -= usage.reasoning
    prompt_details: dict[str, Any] = {"cached_tokens": usage.cache_read}
    if usage.input_audio:
        prompt_details["audio_tokens"] = usage.input_audio
    if usage.cache_audio:
        prompt_details["cached_tokens_details"] = {"audio_tokens": usage.cache_audio}
    completion_details: dict[str, Any] = {"reasoning_tokens": usage.reasoning}
    if usage.output_audio:
        completion_details["audio_tokens"] = usage.output_audio
    return {
        "prompt_tokens": usage.input,
        "completion_tokens": completion,
        "total_tokens": usage.input + usage.output,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": completion_details,
    }


def _with_tier(exchange: Exchange, body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's answers say which tier served them."""
    return {**body, "service_tier": exchange.service_tier} if exchange.service_tier else body


def _chat_completions(exchange: Exchange) -> Answer:
    ident = f"chatcmpl-standin-{exchange.serial}"
    created = int(time.time())
    model = exchange.response_model
    if not exchange.body.get("stream"):
        return Answer(
            _with_tier(
                exchange,
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": exchange.reply, "refusal": None},
                            "finish_reason": "stop",
                            "logprobs": None,
                        }
                    ],
                    "usage": _openai_usage(exchange),
                },
            )
        )
    groq = exchange.headers.get("x-standin-groq") == "1"
    include_usage = bool((exchange.body.get("stream_options") or {}).get("include_usage"))
    base = _with_tier(exchange, {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model})
    events = []
    chunks = exchange.chunks
    for index, piece in enumerate(chunks):
        last = index == len(chunks) - 1
        delta = {"role": "assistant", "content": piece} if index == 0 else {"content": piece}
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if last else None}]}
        if last and groq:
            chunk["x_groq"] = {"id": f"req_{exchange.serial}", "usage": _openai_usage(exchange)}
        events.append(_sse(chunk))
    if include_usage and not groq:
        events.append(_sse({**base, "choices": [], "usage": _openai_usage(exchange)}))
    events.append(b"data: [DONE]\n\n")
    return Answer(events=events, content_type="text/event-stream; charset=utf-8")


def _completions(exchange: Exchange) -> Answer:
    return Answer(
        {
            "id": f"cmpl-standin-{exchange.serial}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": exchange.response_model,
            "choices": [{"index": 0, "text": exchange.reply, "finish_reason": "stop", "logprobs": None}],
            "usage": _openai_usage(exchange),
        }
    )


def _responses(exchange: Exchange) -> Answer:
    usage = exchange.usage
    ident = f"resp_standin{exchange.serial}"
    message_id = f"msg_standin{exchange.serial}"
    searches = [
        {
            "type": "web_search_call",
            "id": f"ws_standin{exchange.serial}_{index}",
            "status": "completed",
            "action": {"type": "search", "query": f"query {index}"},
        }
        for index in range(web_searches(exchange))
    ]
    response = _with_tier(
        exchange,
        {
            "id": ident,
            "object": "response",
            "created_at": int(time.time()),
            "model": exchange.response_model,
            "status": "completed",
            "output": [
                *searches,
                {
                    "type": "message",
                    "id": message_id,
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": exchange.reply, "annotations": []}],
                },
            ],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": exchange.body.get("tools") or [],
            "usage": {
                "input_tokens": usage.input,
                "input_tokens_details": {"cached_tokens": usage.cache_read},
                "output_tokens": usage.output,
                "output_tokens_details": {"reasoning_tokens": usage.reasoning},
                "total_tokens": usage.input + usage.output,
            },
        },
    )
    if not exchange.body.get("stream"):
        return Answer(response)
    in_progress = {**response, "status": "in_progress", "output": [], "usage": None}
    events = [_sse({"type": "response.created", "sequence_number": 0, "response": in_progress}, "response.created")]
    for index, piece in enumerate(exchange.chunks, start=1):
        delta = {
            "type": "response.output_text.delta",
            "sequence_number": index,
            "item_id": message_id,
            "output_index": 0,
            "content_index": 0,
            "delta": piece,
            "logprobs": [],
        }
        events.append(_sse(delta, "response.output_text.delta"))
    done = {"type": "response.completed", "sequence_number": len(events), "response": response}
    events.append(_sse(done, "response.completed"))
    return Answer(events=events, content_type="text/event-stream")


def vector(seed: int) -> list[float]:
    return [round((seed * 7 + index) % 13 / 13, 4) for index in range(EMBEDDING_DIMENSIONS)]


def _embeddings(exchange: Exchange) -> Answer:
    inputs = exchange.body.get("input")
    count = len(inputs) if isinstance(inputs, list) and not isinstance(inputs[0], int) else 1
    as_base64 = exchange.body.get("encoding_format") == "base64"
    data = []
    for index in range(count):
        values: Any = vector(index)
        if as_base64:
            values = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": index, "embedding": values})
    usage = exchange.usage
    return Answer(
        {
            "object": "list",
            "data": data,
            "model": exchange.response_model,
            "usage": {"prompt_tokens": usage.input, "total_tokens": usage.input},
        }
    )


# -- Anthropic ------------------------------------------------------------------------------------------


def _anthropic_usage(exchange: Exchange, output: int) -> dict[str, Any]:
    usage = exchange.usage
    counts: dict[str, Any] = {
        "input_tokens": usage.input - usage.cache_read - usage.cache_write,
        "output_tokens": output,
        "cache_creation_input_tokens": usage.cache_write,
        "cache_read_input_tokens": usage.cache_read,
    }
    if usage.cache_write:
        counts["cache_creation"] = {
            "ephemeral_5m_input_tokens": usage.cache_write - usage.cache_write_1h,
            "ephemeral_1h_input_tokens": usage.cache_write_1h,
        }
    if exchange.service_tier:
        counts["service_tier"] = exchange.service_tier
    if exchange.headers.get("x-standin-speed"):
        counts["speed"] = exchange.headers["x-standin-speed"]
    return counts


def messages(exchange: Exchange, stream: bool | None = None) -> Answer:
    """Anthropic's Messages answer; `x-standin-web-search: N` / `x-standin-web-fetch: N` add server tool uses."""
    usage = _anthropic_usage(exchange, exchange.usage.output)
    server_tools = _server_tool_use(exchange)
    if server_tools:
        usage["server_tool_use"] = server_tools
    message = {
        "id": f"msg_standin{exchange.serial}",
        "type": "message",
        "role": "assistant",
        "model": exchange.response_model,
        "content": [{"type": "text", "text": exchange.reply}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }
    if not (exchange.body.get("stream") if stream is None else stream):
        return Answer(message)
    start = {**message, "content": [], "stop_reason": None, "usage": _anthropic_usage(exchange, 1)}
    events = [
        _sse({"type": "message_start", "message": start}, "message_start"),
        _sse(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            "content_block_start",
        ),
    ]
    for piece in exchange.chunks:
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        events.append(_sse(delta, "content_block_delta"))
    events.append(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    events.append(
        _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {
                    "output_tokens": exchange.usage.output,
                    **({"server_tool_use": server_tools} if server_tools else {}),
                },
            },
            "message_delta",
        )
    )
    events.append(_sse({"type": "message_stop"}, "message_stop"))
    return Answer(events=events, content_type="text/event-stream")


def _server_tool_use(exchange: Exchange) -> dict[str, int]:
    counts = {}
    for header, name in (
        ("x-standin-web-search", "web_search_requests"),
        ("x-standin-web-fetch", "web_fetch_requests"),
    ):
        if exchange.headers.get(header):
            counts[name] = int(exchange.headers[header])
    return counts


def web_searches(exchange: Exchange) -> int:
    return int(exchange.headers.get("x-standin-web-search") or 0)


# -- Gemini ---------------------------------------------------------------------------------------------


def _gemini_model(exchange: Exchange) -> str:
    name = exchange.path.rsplit("/", 1)[-1].split(":", 1)[0]
    return exchange.headers.get("x-standin-response-model") or name


def _gemini_usage(exchange: Exchange, complete: bool) -> dict[str, Any]:
    usage = exchange.usage
    metadata: dict[str, Any] = {"promptTokenCount": usage.input}
    if usage.input_audio or usage.input_image:
        text = usage.input - usage.input_audio - usage.input_image
        metadata["promptTokensDetails"] = _modalities(TEXT=text, AUDIO=usage.input_audio, IMAGE=usage.input_image)
    if usage.cache_read:
        metadata["cachedContentTokenCount"] = usage.cache_read
        if usage.cache_audio:
            metadata["cacheTokensDetails"] = _modalities(
                TEXT=usage.cache_read - usage.cache_audio, AUDIO=usage.cache_audio
            )
    if complete:
        metadata["candidatesTokenCount"] = usage.output - usage.reasoning
        if usage.output_audio or usage.output_image:
            text = usage.output - usage.reasoning - usage.output_audio - usage.output_image
            metadata["candidatesTokensDetails"] = _modalities(
                TEXT=text, AUDIO=usage.output_audio, IMAGE=usage.output_image
            )
        if usage.reasoning:
            metadata["thoughtsTokenCount"] = usage.reasoning
        metadata["totalTokenCount"] = usage.input + usage.output
    else:
        metadata["totalTokenCount"] = usage.input
    return metadata


def _modalities(**counts: int) -> list[dict[str, Any]]:
    return [{"modality": name, "tokenCount": tokens} for name, tokens in counts.items() if tokens]


def _gemini_chunk(exchange: Exchange, text: str, last: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if last:
        candidate["finishReason"] = "STOP"
    searches = web_searches(exchange)
    if searches:  # grounding with Google Search: the queries it ran, on every chunk as Gemini does
        candidate["groundingMetadata"] = {
            "webSearchQueries": [f"query {index}" for index in range(searches)],
            "groundingChunks": [{"web": {"uri": "https://example.com/", "title": "example.com"}}],
        }
    return {
        "candidates": [candidate],
        "usageMetadata": _gemini_usage(exchange, complete=last),
        "modelVersion": _gemini_model(exchange),
        "responseId": f"standin-{exchange.serial}",
    }


def _gemini_headers(exchange: Exchange) -> dict[str, str]:
    """Gemini says which tier served a call in a header, not in the body."""
    return {"x-gemini-service-tier": exchange.service_tier} if exchange.service_tier else {}


def _generate_content(exchange: Exchange) -> Answer:
    return Answer(_gemini_chunk(exchange, exchange.reply, last=True), headers=_gemini_headers(exchange))


def _stream_generate_content(exchange: Exchange) -> Answer:
    chunks = exchange.chunks
    values = [_gemini_chunk(exchange, piece, index == len(chunks) - 1) for index, piece in enumerate(chunks)]
    if exchange.query.get("alt") == ["sse"]:
        events = [b"data: " + json.dumps(value).encode() + b"\r\n\r\n" for value in values]
        return Answer(events=events, content_type="text/event-stream", headers=_gemini_headers(exchange))
    events = [(b"[" if index == 0 else b",\r\n") + json.dumps(value).encode() for index, value in enumerate(values)]
    events.append(b"]")
    return Answer(events=events, content_type="application/json; charset=UTF-8", headers=_gemini_headers(exchange))


def _embed_content(exchange: Exchange) -> Answer:
    return Answer({"embedding": {"values": vector(0)}})


def _batch_embed_contents(exchange: Exchange) -> Answer:
    count = len(exchange.body.get("requests") or [None])
    return Answer({"embeddings": [{"values": vector(index)} for index in range(count)]})


# -- Ollama ---------------------------------------------------------------------------------------------


def _ollama(text_key: str):
    def build(exchange: Exchange) -> Answer:
        usage = exchange.usage
        created = "2026-01-01T00:00:00Z"

        def piece(text: str) -> dict[str, Any]:
            if text_key == "message":
                return {"message": {"role": "assistant", "content": text}}
            return {"response": text}

        final = {
            "model": exchange.response_model,
            "created_at": created,
            **piece("" if exchange.body.get("stream", True) else exchange.reply),
            "done": True,
            "done_reason": "stop",
            "total_duration": 1000,
            "prompt_eval_count": usage.input,
            "eval_count": usage.output,
        }
        if exchange.body.get("stream") is False:
            return Answer(final)
        lines = [
            json.dumps({"model": exchange.response_model, "created_at": created, **piece(text), "done": False})
            for text in exchange.chunks
        ]
        lines.append(json.dumps(final))
        return Answer(events=[line.encode() + b"\n" for line in lines], content_type="application/x-ndjson")

    return build


def _ollama_embed(exchange: Exchange) -> Answer:
    return Answer(
        {"model": exchange.response_model, "embeddings": [vector(0)], "prompt_eval_count": exchange.usage.input}
    )


ROUTES = (
    (":streamGenerateContent", _stream_generate_content),
    (":generateContent", _generate_content),
    (":embedContent", _embed_content),
    (":batchEmbedContents", _batch_embed_contents),
    ("/api/chat", _ollama("message")),
    ("/api/generate", _ollama("response")),
    ("/api/embed", _ollama_embed),
    ("/chat/completions", _chat_completions),
    ("/completions", _completions),
    ("/responses", _responses),
    ("/embeddings", _embeddings),
    ("/v1/messages", messages),
    (":streamRawPredict", lambda exchange: messages(exchange, stream=True)),  # Claude on Vertex AI
    (":rawPredict", lambda exchange: messages(exchange, stream=False)),
)
