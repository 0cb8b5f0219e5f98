"""Ollama's native API: /api/chat, /api/generate (NDJSON streams by default) and /api/embed.

Usage is `prompt_eval_count` and `eval_count` on the object with `done: true`, the last of a stream.
Ollama leaves out `prompt_eval_count` when the whole prompt came from its cache: that is zero new input.
"""

from __future__ import annotations

from typing import Any

from spendwatch.instrumentation.formats import body_model

DEFAULT_PROVIDER = "ollama"


def request_model(path: str, body: dict[str, Any] | None) -> str | None:
    return body_model(body)


def request_stream(path: str, body: dict[str, Any] | None) -> bool:
    if path.endswith(("/api/embed", "/api/embeddings")):
        return False
    return not (body and body.get("stream") is False)  # Ollama streams unless told not to


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
