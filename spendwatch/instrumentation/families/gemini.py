"""Google's Gemini API (and Vertex AI's Gemini models): generateContent, streamGenerateContent, embeddings.

The model is in the path (`models/{model}:generateContent`). Usage is `usageMetadata`: the prompt count
includes cached content, and the output side is candidates plus thoughts. A stream (`alt=sse`, or a JSON
array without it) repeats `usageMetadata` on its chunks; the last one, beside a `finishReason`, is final.
Embedding responses carry no usage, so their input is estimated from the request.

Modalities are priced apart: `promptTokensDetails`, `candidatesTokensDetails` and `cacheTokensDetails`
give each modality's tokens (audio input costs more than text; cached audio too; images made are output
image tokens). The tier that served the call (flex, priority) is the `x-gemini-service-tier` header.

Grounding with Google Search is billed apart: a candidate's `groundingMetadata.webSearchQueries` are the
searches it ran. Gemini 3 models are billed per search query, earlier ones per grounded prompt, so the
billed count (`spendwatch.usage.web_search_calls`) is one or the number of queries accordingly, beside
the queries themselves.
"""

from __future__ import annotations

import re
from typing import Any

from spendwatch import semconv
from spendwatch.instrumentation.families import Family, Route, Wire, count, set_parts, set_text

PROVIDER = "gcp.gemini"

_MODEL_IN_PATH = re.compile(r"(?:models|tunedModels)/([^/:]+):")
_BILLED_PER_QUERY = ("gemini-3",)  # model prefixes whose grounding is billed per search query


def model_in_path(path: str) -> str | None:
    match = _MODEL_IN_PATH.search(path)
    return match.group(1) if match else None


def read_request(call: Any, request: Any) -> None:
    call.request_model = model_in_path(request.path)
    call.request_stream = request.path.endswith(":streamGenerateContent")


def on_headers(call: Any, headers: Any) -> None:
    tier = headers.get("x-gemini-service-tier")
    set_text(call, semconv.SPENDWATCH_RESPONSE_SERVICE_TIER, tier.lower() if isinstance(tier, str) else None)


def observe(call: Any, obj: Any) -> None:
    if isinstance(obj, list):  # streamGenerateContent without alt=sse: one JSON array of chunks
        for item in obj:
            observe(call, item)
        return
    if not isinstance(obj, dict):
        return
    if isinstance(obj.get("modelVersion"), str):
        call.response_model = obj["modelVersion"]
    if isinstance(obj.get("responseId"), str):
        call.response_id = obj["responseId"]
    finished = False
    for candidate in obj.get("candidates") or ():
        if not isinstance(candidate, dict):
            continue
        if isinstance(candidate.get("finishReason"), str):
            call.add_finish_reason(candidate["finishReason"])
            finished = True
        content = candidate.get("content")
        for part in (content.get("parts") if isinstance(content, dict) else None) or ():
            if isinstance(part, dict):
                call.add_output_chars(part.get("text"))
        grounding = candidate.get("groundingMetadata")
        if isinstance(grounding, dict) and isinstance(grounding.get("webSearchQueries"), list):
            _grounding(call, len(grounding["webSearchQueries"]))
    if "embedding" in obj or "embeddings" in obj:
        call.recognised = True
    usage = obj.get("usageMetadata")
    if isinstance(usage, dict):
        prompt = usage.get("promptTokenCount")
        tool_prompt = usage.get("toolUsePromptTokenCount")
        candidates = usage.get("candidatesTokenCount")
        thoughts = usage.get("thoughtsTokenCount")
        call.set_usage(
            input_tokens=_sum(prompt, tool_prompt),
            output_tokens=_sum(candidates, thoughts) if (candidates is not None or thoughts is not None) else 0,
            cache_read_tokens=usage.get("cachedContentTokenCount"),
            reasoning_tokens=thoughts,
            final=finished or not call.streaming,
        )
        _modalities(call, usage)


def _modalities(call: Any, usage: dict[str, Any]) -> None:
    """Each modality's share of the prompt (tool-use prompts included), the cache and the output."""
    prompt = _by_modality(usage.get("promptTokensDetails"), usage.get("toolUsePromptTokensDetails"))
    cached = _by_modality(usage.get("cacheTokensDetails"))
    output = _by_modality(usage.get("candidatesTokensDetails"))
    set_parts(
        call,
        {
            semconv.SPENDWATCH_USAGE_INPUT_AUDIO_TOKENS: prompt.get("AUDIO"),
            semconv.SPENDWATCH_USAGE_INPUT_IMAGE_TOKENS: _sum(prompt.get("IMAGE"), prompt.get("DOCUMENT")),
            semconv.SPENDWATCH_USAGE_INPUT_VIDEO_TOKENS: prompt.get("VIDEO"),
            semconv.SPENDWATCH_USAGE_CACHE_AUDIO_READ_TOKENS: cached.get("AUDIO"),
            semconv.SPENDWATCH_USAGE_CACHE_IMAGE_READ_TOKENS: _sum(cached.get("IMAGE"), cached.get("DOCUMENT")),
            semconv.SPENDWATCH_USAGE_OUTPUT_AUDIO_TOKENS: output.get("AUDIO"),
            semconv.SPENDWATCH_USAGE_OUTPUT_IMAGE_TOKENS: _sum(output.get("IMAGE"), output.get("DOCUMENT")),
        },
    )


def _by_modality(*lists: Any) -> dict[str, int]:
    """`[{"modality": "AUDIO", "tokenCount": 120}, ...]` (one list or several) as {"AUDIO": 120, ...}."""
    found: dict[str, int] = {}
    for details in lists:
        for item in details if isinstance(details, list) else ():
            if isinstance(item, dict) and isinstance(item.get("modality"), str) and count(item.get("tokenCount")):
                found[item["modality"]] = found.get(item["modality"], 0) + item["tokenCount"]
    return found


def _sum(*counts: Any) -> int | None:
    present = [count for count in counts if isinstance(count, int)]
    return sum(present) if present else None


def _grounding(call: Any, queries: int) -> None:
    """Grounding metadata repeats on a stream's chunks: the largest count seen is the call's."""
    if queries <= call.extra.get(semconv.SPENDWATCH_USAGE_WEB_SEARCH_QUERIES, 0):
        return
    call.extra[semconv.SPENDWATCH_USAGE_WEB_SEARCH_QUERIES] = queries
    model = call.response_model or model_in_path(call.request.path if call.request else "") or ""
    per_query = model.startswith(_BILLED_PER_QUERY)
    call.extra[semconv.SPENDWATCH_USAGE_WEB_SEARCH_CALLS] = queries if per_query else 1


WIRE = Wire(read_request, observe, on_headers)

ROUTES = (
    Route(":streamGenerateContent", semconv.OPERATION_GENERATE_CONTENT, WIRE, PROVIDER, always_streams=True),
    Route(":generateContent", semconv.OPERATION_GENERATE_CONTENT, WIRE, PROVIDER),
    Route(":embedContent", semconv.OPERATION_EMBEDDINGS, WIRE, PROVIDER),
    Route(":batchEmbedContents", semconv.OPERATION_EMBEDDINGS, WIRE, PROVIDER),
)

FAMILY = Family("gemini", routes=ROUTES, hosts={"generativelanguage.googleapis.com": PROVIDER})
