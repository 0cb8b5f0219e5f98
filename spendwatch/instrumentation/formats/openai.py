"""OpenAI's formats: chat completions, the Responses API, embeddings and legacy completions.

Also every OpenAI-compatible host (Azure, Groq, Mistral, DeepSeek, xAI, OpenRouter, Together, Fireworks,
Perplexity, Ollama's /v1). Usage is a `usage` object on the response or, in a stream, on the last chunk
(only with `stream_options.include_usage`); Groq's older streams put it under `x_groq.usage`; Responses
streams carry it in `response.completed` (or `.incomplete` / `.failed`).
"""

from __future__ import annotations

import re
from typing import Any

from spendwatch.instrumentation.formats import body_model, body_streams

DEFAULT_PROVIDER = "openai"

_AZURE_DEPLOYMENT = re.compile(r"/deployments/([^/]+)/")
_RESPONSES_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def request_model(path: str, body: dict[str, Any] | None) -> str | None:
    model = body_model(body)
    if model is not None:
        return model
    deployment = _AZURE_DEPLOYMENT.search(path)  # Azure: the deployment stands where the model would
    return deployment.group(1) if deployment else None


def request_stream(path: str, body: dict[str, Any] | None) -> bool:
    return body_streams(body)


def observe(call: Any, obj: Any) -> None:
    if not isinstance(obj, dict):
        return
    event_type = obj.get("type")
    if isinstance(event_type, str) and event_type.startswith("response."):
        _responses_event(call, event_type, obj)
        return
    if obj.get("object") == "response":
        _response_object(call, obj, final=True)
        return
    _common(call, obj)
    for choice in obj.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            call.add_finish_reason(reason)
        message = choice.get("delta") or choice.get("message")
        if isinstance(message, dict):
            call.add_output_chars(message.get("content"))
            call.add_output_chars(message.get("reasoning_content"))
            for tool_call in message.get("tool_calls") or ():
                if isinstance(tool_call, dict) and isinstance(tool_call.get("function"), dict):
                    call.add_output_chars(tool_call["function"].get("arguments"))
        call.add_output_chars(choice.get("text"))  # legacy completions
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        x_groq = obj.get("x_groq")
        usage = x_groq.get("usage") if isinstance(x_groq, dict) else None
    if isinstance(usage, dict):
        _usage(call, usage)


def _common(call: Any, obj: dict[str, Any]) -> None:
    model = obj.get("model")
    if isinstance(model, str) and model:
        call.response_model = model
    response_id = obj.get("id")
    if isinstance(response_id, str) and response_id:
        call.response_id = response_id


def _responses_event(call: Any, event_type: str, obj: dict[str, Any]) -> None:
    if event_type == "response.output_text.delta" or event_type == "response.function_call_arguments.delta":
        call.add_output_chars(obj.get("delta"))
        return
    response = obj.get("response")
    if isinstance(response, dict):
        _response_object(call, response, final=event_type in _RESPONSES_FINAL_EVENTS)


def _response_object(call: Any, response: dict[str, Any], *, final: bool) -> None:
    _common(call, response)
    if final:
        incomplete = response.get("incomplete_details")
        reason = incomplete.get("reason") if isinstance(incomplete, dict) else None
        status = response.get("status")
        if isinstance(reason, str):
            call.add_finish_reason(reason)
        elif isinstance(status, str):
            call.add_finish_reason(status)
        error = response.get("error")
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            call.error_type = error["code"]
    usage = response.get("usage")
    if isinstance(usage, dict):
        _usage(call, usage, final=final)


def _usage(call: Any, usage: dict[str, Any], *, final: bool = True) -> None:
    input_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    output_details = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
    cache_read = input_details.get("cached_tokens") if isinstance(input_details, dict) else None
    if cache_read is None:
        cache_read = usage.get("prompt_cache_hit_tokens")  # DeepSeek
    input_tokens = usage.get("prompt_tokens", usage.get("input_tokens"))
    output_tokens = usage.get("completion_tokens", usage.get("output_tokens"))
    call.set_usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        reasoning_tokens=output_details.get("reasoning_tokens") if isinstance(output_details, dict) else None,
        final=final,
    )
