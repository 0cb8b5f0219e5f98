"""Ollama's native API: /api/chat, /api/generate (NDJSON streams by default) and /api/embed.

Usage is `prompt_eval_count` and `eval_count` on the object with `done: true`, the last of a stream.
Ollama leaves out `prompt_eval_count` when the whole prompt came from its cache: that is zero new input.
"""

from __future__ import annotations

from typing import Any

from spendwatch import semconv
from spendwatch.instrumentation.families import Family, Route, Wire, body_model, request_json

PROVIDER = "ollama"


def read_request(call: Any, request: Any) -> None:
    body = request_json(request)
    call.request_model = body_model(body)
    if request.path.endswith(("/api/embed", "/api/embeddings")):
        call.request_stream = False
    else:
        call.request_stream = not (body and body.get("stream") is False)  # Ollama streams unless told not to


def observe(call: Any, obj: Any) -> None:
    if not isinstance(obj, dict):
        return
    if isinstance(obj.get("model"), str):
        call.response_model = obj["model"]
    message = obj.get("message")
    if isinstance(message, dict):
        call.add_output_chars(message.get("content"))
        call.add_output_chars(message.get("thinking"))
    call.add_output_chars(obj.get("response"))
    if obj.get("done") is True:
        if isinstance(obj.get("done_reason"), str):
            call.add_finish_reason(obj["done_reason"])
        call.set_usage(
            input_tokens=obj.get("prompt_eval_count", 0),
            output_tokens=obj.get("eval_count", 0),
            final=True,
        )
    elif "embeddings" in obj or "embedding" in obj:
        call.set_usage(input_tokens=obj.get("prompt_eval_count"), final=True)


WIRE = Wire(read_request, observe)

FAMILY = Family(
    "ollama",
    routes=(
        Route("/api/chat", semconv.OPERATION_CHAT, WIRE, PROVIDER),
        Route("/api/generate", semconv.OPERATION_TEXT_COMPLETION, WIRE, PROVIDER),
        Route("/api/embed", semconv.OPERATION_EMBEDDINGS, WIRE, PROVIDER),
        Route("/api/embeddings", semconv.OPERATION_EMBEDDINGS, WIRE, PROVIDER),
    ),
    hosts={"localhost:11434": PROVIDER, "127.0.0.1:11434": PROVIDER},
)
