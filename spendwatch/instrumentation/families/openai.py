"""OpenAI's API: chat completions, Responses, embeddings, legacy completions, images, audio, moderations.

Also the wire of every OpenAI-compatible host (Azure, Groq, Mistral, DeepSeek, xAI, OpenRouter, Together,
Fireworks, Perplexity, Ollama's /v1). Usage is a `usage` object on the response or, in a stream, on the
last chunk (only with `stream_options.include_usage`); Groq's older streams put it under `x_groq.usage`;
Responses streams carry it in `response.completed` (or `.incomplete` / `.failed`).

Beyond text:
- the Responses API is its own operation (`responses`), with the types of its tool calls and its web
  searches counted (each `web_search_call` is billed);
- images: gpt-image models report token usage (image input tokens apart); DALL-E reports none, so the
  images made, their size and quality are recorded for a per-image price;
- speech: the characters of the input (tts-1 is billed by character; gpt-4o-mini-tts by tokens, which
  its SSE stream reports); transcriptions and translations: `usage` as seconds (whisper) or tokens (audio
  tokens apart), or the `duration` of a verbose answer; the upload is multipart, read for its `model`
  field only;
- moderations are free: recognised, never estimated.
Files, uploads and batches are not model calls: no route names them.
"""

from __future__ import annotations

import re
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

PROVIDER = "openai"

_AZURE_DEPLOYMENT = re.compile(r"/deployments/([^/]+)/")
_RESPONSES_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def read_request(call: Any, request: Any) -> None:
    body = request_json(request)
    model = body_model(body) or request.form_field("model")
    if model is None:
        deployment = _AZURE_DEPLOYMENT.search(request.path)  # Azure: the deployment stands where the model would
        model = deployment.group(1) if deployment else None
    call.request_model = model
    call.request_stream = body_streams(body) or request.form_field("stream") == "true"


def read_speech_request(call: Any, request: Any) -> None:
    read_request(call, request)
    body = request_json(request)
    text = body.get("input") if body else None
    if isinstance(text, str):
        call.add_extra(semconv.SPENDWATCH_USAGE_INPUT_CHARACTERS, len(text))
    call.request_stream = bool(body and body.get("stream_format") == "sse")


def read_image_request(call: Any, request: Any) -> None:
    read_request(call, request)
    body = request_json(request)
    size = (body.get("size") if body else None) or request.form_field("size")
    quality = (body.get("quality") if body else None) or request.form_field("quality")
    if isinstance(size, str):
        call.extra[semconv.SPENDWATCH_REQUEST_IMAGE_SIZE] = size
    if isinstance(quality, str):
        call.extra[semconv.SPENDWATCH_REQUEST_IMAGE_QUALITY] = quality


def observe(call: Any, obj: Any) -> None:
    if not isinstance(obj, dict):
        return
    event_type = obj.get("type")
    if isinstance(event_type, str) and event_type.startswith("response."):
        _responses_event(call, event_type, obj)
        return
    if obj.get("object") == "response":
        _response_object(call, obj, final=True)
        _tool_calls(call, obj)
        return
    _common(call, obj)
    # Runs for every chunk of a chat stream: the text is counted inline rather than call by call.
    chars = 0
    for choice in obj.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            call.add_finish_reason(reason)
        message = choice.get("delta") or choice.get("message")
        if isinstance(message, dict):
            content = message.get("content")
            if isinstance(content, str):
                chars += len(content)
            reasoning = message.get("reasoning_content")
            if isinstance(reasoning, str):
                chars += len(reasoning)
            for tool_call in message.get("tool_calls") or ():
                if isinstance(tool_call, dict) and isinstance(tool_call.get("function"), dict):
                    call.add_output_chars(tool_call["function"].get("arguments"))
        text = choice.get("text")  # legacy completions
        if isinstance(text, str):
            chars += len(text)
    if chars:
        call.output_chars += chars
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        x_groq = obj.get("x_groq")
        usage = x_groq.get("usage") if isinstance(x_groq, dict) else None
    if isinstance(usage, dict):
        _usage(call, usage)


def _common(call: Any, obj: dict[str, Any]) -> None:
    if "service_tier" in obj:
        _service_tier(call, obj)
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
        final = event_type in _RESPONSES_FINAL_EVENTS
        _response_object(call, response, final=final)
        if final:
            _tool_calls(call, response)


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
    input_details = _details(usage, "prompt_tokens_details", "input_tokens_details", "input_token_details")
    output_details = _details(usage, "completion_tokens_details", "output_tokens_details", "output_token_details")
    cache_read = input_details.get("cached_tokens")
    if cache_read is None:
        cache_read = usage.get("prompt_cache_hit_tokens")  # DeepSeek
    input_tokens = usage.get("prompt_tokens", usage.get("input_tokens"))
    output_tokens = usage.get("completion_tokens", usage.get("output_tokens"))
    reasoning = output_details.get("reasoning_tokens")
    total = usage.get("total_tokens")
    # xAI counts reasoning beside the completion (its total is prompt + completion + reasoning); OpenAI
    # and the rest inside it. Either way the semconv output count includes it.
    beside = count(reasoning) and count(output_tokens) is not None
    if beside and total == (count(input_tokens) or 0) + output_tokens + reasoning:
        output_tokens += reasoning
    call.set_usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=input_details.get("cache_write_tokens"),
        reasoning_tokens=reasoning,
        final=final,
    )
    cached = input_details.get("cached_tokens_details")
    cached = cached if isinstance(cached, dict) else {}
    set_parts(
        call,
        {
            semconv.SPENDWATCH_USAGE_INPUT_AUDIO_TOKENS: input_details.get("audio_tokens"),
            semconv.SPENDWATCH_USAGE_INPUT_IMAGE_TOKENS: input_details.get("image_tokens"),
            semconv.SPENDWATCH_USAGE_CACHE_AUDIO_READ_TOKENS: cached.get("audio_tokens"),
            semconv.SPENDWATCH_USAGE_CACHE_IMAGE_READ_TOKENS: cached.get("image_tokens"),
            semconv.SPENDWATCH_USAGE_OUTPUT_AUDIO_TOKENS: output_details.get("audio_tokens"),
            semconv.SPENDWATCH_USAGE_OUTPUT_IMAGE_TOKENS: output_details.get("image_tokens"),
        },
    )


def _details(usage: dict[str, Any], *names: str) -> dict[str, Any]:
    """The first of a usage's detail objects (chat completions, Responses and Realtime name them apart)."""
    for name in names:
        details = usage.get(name)
        if isinstance(details, dict):
            return details
    return {}


def _service_tier(call: Any, obj: dict[str, Any]) -> None:
    """The tier that served the call (`default`, `flex`, `priority`, `scale`): each has its own price."""
    set_text(call, semconv.OPENAI_RESPONSE_SERVICE_TIER, obj.get("service_tier"))


_TOOL_CALL_TYPES = frozenset(
    {
        "function_call",
        "custom_tool_call",
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "computer_call",
        "image_generation_call",
        "local_shell_call",
        "mcp_call",
    }
)


def _tool_calls(call: Any, response: dict[str, Any]) -> None:
    """The Responses API's tool calls, by type; each web search is billed on its own."""
    kinds = [
        item["type"]
        for item in response.get("output") or ()
        if isinstance(item, dict) and item.get("type") in _TOOL_CALL_TYPES
    ]
    if kinds:
        call.extra[semconv.SPENDWATCH_RESPONSE_TOOL_CALLS] = kinds
        searches = kinds.count("web_search_call")
        if searches:
            call.add_extra(semconv.SPENDWATCH_USAGE_WEB_SEARCH_CALLS, searches)


def observe_images(call: Any, obj: Any) -> None:
    """An images answer: `data` (one per image) and, for gpt-image models, token usage."""
    if not isinstance(obj, dict):
        return
    event_type = obj.get("type")
    if isinstance(event_type, str) and event_type.startswith("image_generation."):  # a streamed image
        if event_type == "image_generation.completed":
            call.add_extra(semconv.SPENDWATCH_USAGE_IMAGES, 1)
    else:
        data = obj.get("data")
        if isinstance(data, list):
            call.add_extra(semconv.SPENDWATCH_USAGE_IMAGES, len(data))
    usage = obj.get("usage")
    if isinstance(usage, dict):
        _usage(call, usage)  # image input and output tokens apart


def observe_audio(call: Any, obj: Any) -> None:
    """Speech's SSE events and transcription answers: usage as tokens or seconds, or a duration."""
    if not isinstance(obj, dict):
        return
    if isinstance(obj.get("model"), str):
        call.response_model = obj["model"]
    usage = obj.get("usage")
    if isinstance(usage, dict):
        if usage.get("type") == "duration":
            _seconds(call, usage.get("seconds"))
        else:
            _usage(call, usage)  # audio input tokens apart
    elif semconv.SPENDWATCH_USAGE_AUDIO_SECONDS not in call.extra:
        _seconds(call, obj.get("duration"))  # verbose_json
    if isinstance(obj.get("text"), str):
        call.recognised = True


def _seconds(call: Any, seconds: Any) -> None:
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
        call.extra[semconv.SPENDWATCH_USAGE_AUDIO_SECONDS] = seconds
        call.recognised = True


def observe_moderation(call: Any, obj: Any) -> None:
    if isinstance(obj, dict):
        _common(call, obj)
        call.recognised = True


WIRE = Wire(read_request, observe)
_IMAGES = Wire(read_image_request, observe_images)
_SPEECH = Wire(read_speech_request, observe_audio)
_AUDIO = Wire(read_request, observe_audio)
_MODERATION = Wire(read_request, observe_moderation)

FAMILY = Family(
    "openai",
    routes=(
        Route("/chat/completions", semconv.OPERATION_CHAT, WIRE, PROVIDER),
        Route("/completions", semconv.OPERATION_TEXT_COMPLETION, WIRE, PROVIDER),
        Route("/responses", semconv.OPERATION_RESPONSES, WIRE, PROVIDER),
        Route("/embeddings", semconv.OPERATION_EMBEDDINGS, WIRE, PROVIDER),
        Route("/images/generations", semconv.OPERATION_IMAGE_GENERATION, _IMAGES, PROVIDER, estimate=False),
        Route("/images/edits", semconv.OPERATION_IMAGE_GENERATION, _IMAGES, PROVIDER, estimate=False),
        Route("/images/variations", semconv.OPERATION_IMAGE_GENERATION, _IMAGES, PROVIDER, estimate=False),
        Route("/audio/speech", semconv.OPERATION_SPEECH, _SPEECH, PROVIDER, estimate=False),
        Route("/audio/transcriptions", semconv.OPERATION_TRANSCRIPTION, _AUDIO, PROVIDER, estimate=False),
        Route("/audio/translations", semconv.OPERATION_TRANSLATION, _AUDIO, PROVIDER, estimate=False),
        Route("/moderations", semconv.OPERATION_MODERATION, _MODERATION, PROVIDER, estimate=False),
    ),
    hosts={"api.openai.com": PROVIDER},
)
