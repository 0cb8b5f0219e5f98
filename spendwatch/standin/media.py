"""What OpenAI's API answers beyond text: images, speech, transcriptions, translations, moderations.

Steering headers besides the common ones: `x-standin-image-tokens: N` (of the input, for gpt-image
models), `x-standin-audio-seconds: N` (whisper's billed duration), `x-standin-audio-tokens: N` (of the
input, for gpt-4o-transcribe). gpt-image and gpt-4o-transcribe answers carry token usage; DALL-E's carry
none (billed per image); whisper's carry `usage` as seconds (and `duration` in `verbose_json`).
"""

from __future__ import annotations

import base64
import time
from typing import Any

from spendwatch.standin.exchange import Answer, Exchange

FAKE_PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"standin-image" * 4).decode()
FAKE_MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 64


def _answer(*args: Any, **kwargs: Any) -> Answer:
    return Answer(*args, **kwargs)


def images(exchange: Exchange) -> Answer:
    model = exchange.body.get("model") or "dall-e-2"
    count = int(exchange.body.get("n") or 1)
    body: dict[str, Any] = {"created": int(time.time()), "data": [{"b64_json": FAKE_PNG} for _ in range(count)]}
    if model.startswith(("gpt-image", "chatgpt-image")):
        usage = exchange.usage
        image_tokens = int(exchange.headers.get("x-standin-image-tokens") or 0) or usage.input_image
        body["usage"] = {
            "input_tokens": usage.input,
            "input_tokens_details": {"text_tokens": usage.input - image_tokens, "image_tokens": image_tokens},
            "output_tokens": usage.output,
            "total_tokens": usage.input + usage.output,
        }
        if usage.output_image:
            body["usage"]["output_tokens_details"] = {
                "text_tokens": usage.output - usage.output_image,
                "image_tokens": usage.output_image,
            }
    return _answer(body)


def speech(exchange: Exchange) -> Answer:
    return _answer(FAKE_MP3, content_type="audio/mpeg")


def transcription(exchange: Exchange) -> Answer:
    model = exchange.body.get("model") or "whisper-1"
    seconds = float(exchange.headers.get("x-standin-audio-seconds") or 3)
    if seconds.is_integer():
        seconds = int(seconds)
    text = exchange.reply
    if exchange.body.get("response_format") == "verbose_json":
        task = "translate" if exchange.path.endswith("/translations") else "transcribe"
        return _answer({"task": task, "language": "english", "duration": seconds, "text": text, "segments": []})
    if exchange.path.endswith("/translations"):
        return _answer({"text": text})
    if model.startswith("whisper"):
        return _answer({"text": text, "usage": {"type": "duration", "seconds": seconds}})
    usage = exchange.usage
    audio_tokens = int(exchange.headers.get("x-standin-audio-tokens") or 0)
    return _answer(
        {
            "text": text,
            "usage": {
                "type": "tokens",
                "input_tokens": usage.input,
                "input_token_details": {"text_tokens": usage.input - audio_tokens, "audio_tokens": audio_tokens},
                "output_tokens": usage.output,
                "total_tokens": usage.input + usage.output,
            },
        }
    )


def moderation(exchange: Exchange) -> Answer:
    return _answer(
        {
            "id": f"modr-standin{exchange.serial}",
            "model": exchange.body.get("model") or "omni-moderation-latest",
            "results": [{"flagged": False, "categories": {"violence": False}, "category_scores": {"violence": 0.01}}],
        }
    )


ROUTES = (
    ("/images/generations", images),
    ("/images/edits", images),
    ("/images/variations", images),
    ("/audio/speech", speech),
    ("/audio/transcriptions", transcription),
    ("/audio/translations", transcription),
    ("/moderations", moderation),
)
