"""Google's Gemini API (and Vertex AI's Gemini models): generateContent, streamGenerateContent, embeddings.

The model is in the path (`models/{model}:generateContent`). Usage is `usageMetadata`: the prompt count
includes cached content, and the output side is candidates plus thoughts. A stream (`alt=sse`, or a JSON
array without it) repeats `usageMetadata` on its chunks; the last one, beside a `finishReason`, is final.
Embedding responses carry no usage, so their input is estimated from the request.
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT_PROVIDER = "gcp.gemini"

_MODEL_IN_PATH = re.compile(r"(?:models|tunedModels)/([^/:]+):")


def request_model(path: str, body: dict[str, Any] | None) -> str | None:
    match = _MODEL_IN_PATH.search(path)
    return match.group(1) if match else None


def request_stream(path: str, body: dict[str, Any] | None) -> bool:
    return path.endswith(":streamGenerateContent")


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


def _sum(*counts: Any) -> int | None:
    present = [count for count in counts if isinstance(count, int)]
    return sum(present) if present else None
