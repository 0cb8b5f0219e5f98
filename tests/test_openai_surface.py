"""The real openai SDK beyond chat: images, speech, transcriptions, translations, moderations, Responses
with web search — and files and batches, which are not model calls."""

from __future__ import annotations

import io
import secrets

import openai
import pytest

from spendwatch.instrumentation.keys import api_key_id
from tests.conftest import make_key, only_span, ours

PROMPT = "PROMPT-CANARY-" + secrets.token_hex(6)


@pytest.fixture
def key():
    return make_key()


@pytest.fixture
def client(standin, key):
    return openai.OpenAI(base_url=f"{standin.base_url}/v1", api_key=key, max_retries=0)


def attributes_of(spans, key):
    attributes = dict(only_span(spans).attributes)
    assert attributes["spendwatch.fingerprint.id"] == api_key_id(key)
    assert attributes["http.response.status_code"] == 200
    assert all(PROMPT not in str(value) for value in attributes.values())
    return attributes


def test_gpt_image_reports_tokens(spans, client, key):
    result = client.images.generate(
        model="gpt-image-1",
        prompt=PROMPT,
        size="1024x1024",
        extra_headers={"x-standin-usage": "input=50,output=4160", "x-standin-image-tokens": "20"},
    )
    assert len(result.data) == 1
    attributes = attributes_of(spans, key)
    assert attributes["gen_ai.operation.name"] == "image_generation"
    assert attributes["gen_ai.request.model"] == "gpt-image-1"
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (50, 4160)
    assert attributes["spendwatch.usage.input_image_tokens"] == 20
    assert attributes["spendwatch.usage.images"] == 1
    assert attributes["spendwatch.usage.estimated"] is False


def test_dalle_is_counted_per_image(spans, client, key):
    client.images.generate(model="dall-e-3", prompt=PROMPT, n=2, size="1024x1792", quality="hd")
    attributes = attributes_of(spans, key)
    assert attributes["spendwatch.usage.images"] == 2
    assert attributes["spendwatch.request.image_size"] == "1024x1792"
    assert attributes["spendwatch.request.image_quality"] == "hd"
    assert "gen_ai.usage.input_tokens" not in attributes  # billed per image: no tokens made up
    assert attributes["spendwatch.usage.estimated"] is False


def test_image_edit_is_multipart(spans, client, key):
    client.images.edit(
        model="gpt-image-1",
        image=("in.png", io.BytesIO(b"\x89PNG fake image bytes"), "image/png"),
        prompt=PROMPT,
        extra_headers={"x-standin-usage": "input=300,output=1056", "x-standin-image-tokens": "260"},
    )
    attributes = attributes_of(spans, key)
    assert attributes["gen_ai.request.model"] == "gpt-image-1"  # read from the form's `model` field
    assert attributes["spendwatch.usage.input_image_tokens"] == 260


def test_speech_counts_characters(spans, client, key):
    text = PROMPT + " is what I would like to hear read out."
    audio = client.audio.speech.create(model="tts-1", voice="alloy", input=text)
    assert audio.content.startswith(b"ID3")  # the app gets the audio untouched
    attributes = attributes_of(spans, key)
    assert attributes["gen_ai.operation.name"] == "speech"
    assert attributes["gen_ai.request.model"] == "tts-1"
    assert attributes["spendwatch.usage.input_characters"] == len(text)


def test_whisper_transcription_counts_seconds(spans, client, key):
    result = client.audio.transcriptions.create(
        model="whisper-1",
        file=("talk.mp3", io.BytesIO(b"ID3 fake audio " + PROMPT.encode()), "audio/mpeg"),
        extra_headers={"x-standin-audio-seconds": "12.5"},
    )
    assert result.text
    attributes = attributes_of(spans, key)
    assert attributes["gen_ai.operation.name"] == "transcription"
    assert attributes["gen_ai.request.model"] == "whisper-1"
    assert attributes["spendwatch.usage.audio_seconds"] == 12.5


def test_gpt4o_transcription_counts_tokens(spans, client, key):
    client.audio.transcriptions.create(
        model="gpt-4o-transcribe",
        file=("talk.mp3", io.BytesIO(b"ID3 fake audio"), "audio/mpeg"),
        extra_headers={"x-standin-usage": "input=80,output=12", "x-standin-audio-tokens": "70"},
    )
    attributes = attributes_of(spans, key)
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (80, 12)
    assert attributes["spendwatch.usage.input_audio_tokens"] == 70


def test_translation_reads_the_verbose_duration(spans, client, key):
    client.audio.translations.create(
        model="whisper-1",
        file=("talk.mp3", io.BytesIO(b"ID3 fake audio"), "audio/mpeg"),
        response_format="verbose_json",
        extra_headers={"x-standin-audio-seconds": "61"},
    )
    attributes = attributes_of(spans, key)
    assert attributes["gen_ai.operation.name"] == "translation"
    assert attributes["spendwatch.usage.audio_seconds"] == 61


def test_moderation_is_recognised_and_never_estimated(spans, client, key):
    client.moderations.create(model="omni-moderation-latest", input=PROMPT)
    attributes = attributes_of(spans, key)
    assert attributes["gen_ai.operation.name"] == "moderation"
    assert attributes["gen_ai.response.model"] == "omni-moderation-latest"
    assert "gen_ai.usage.input_tokens" not in attributes
    assert attributes["spendwatch.usage.estimated"] is False


def test_responses_with_web_search(spans, client, key):
    response = client.responses.create(
        model="gpt-5",
        input=PROMPT,
        tools=[{"type": "web_search"}],
        extra_headers={"x-standin-usage": "input=900,output=120", "x-standin-web-search": "2"},
    )
    assert [item.type for item in response.output] == ["web_search_call", "web_search_call", "message"]
    attributes = attributes_of(spans, key)
    assert attributes["gen_ai.operation.name"] == "responses"
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (900, 120)
    assert attributes["spendwatch.usage.web_search_calls"] == 2
    assert attributes["spendwatch.response.tool_calls"] == ("web_search_call", "web_search_call")


def test_responses_stream_with_web_search(spans, client, key):
    stream = client.responses.create(
        model="gpt-5",
        input=PROMPT,
        tools=[{"type": "web_search"}],
        stream=True,
        extra_headers={"x-standin-usage": "input=900,output=120", "x-standin-web-search": "1"},
    )
    assert [event.type for event in stream][-1] == "response.completed"
    attributes = attributes_of(spans, key)
    assert attributes["spendwatch.usage.web_search_calls"] == 1
    assert attributes["gen_ai.request.stream"] is True


def test_files_and_batches_are_not_model_calls(spans, standin, client):
    batch_input = b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o"}}\n'
    with pytest.raises(openai.NotFoundError):  # the stand-in has no files API: what matters is no span
        client.files.create(file=("batch.jsonl", io.BytesIO(batch_input)), purpose="batch")
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-1", endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        client.uploads.create(bytes=10, filename="a.jsonl", mime_type="text/jsonl", purpose="batch")
    assert [exchange.path for exchange in standin.requests[-3:]] == ["/v1/files", "/v1/batches", "/v1/uploads"]
    assert ours(spans) == []
