"""The real google-genai SDK (3.x, on httpx2) against the stand-in."""

from __future__ import annotations

import asyncio

import pytest
from google import genai
from google.genai import types

from spendwatch.standin import Usage
from tests.conftest import call_attributes, make_key, only_span

# Gemini reports the output side as candidates (200) plus thoughts (100); semconv output includes both.
USAGE = Usage(input=500, output=300, cache_read=200, reasoning=100)


@pytest.fixture
def key():
    return make_key("AIzaTest")


@pytest.fixture
def client(standin, key):
    # Kept by the fixture: a Client closes its HTTP client when it is garbage-collected.
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=standin.base_url))


def config():
    return types.GenerateContentConfig(http_options=types.HttpOptions(headers={"x-standin-usage": USAGE.header()}))


def expected(standin, key, stream, response_id):
    return {
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.operation.name": "generate_content",
        "gen_ai.request.model": "gemini-2.5-flash",
        "gen_ai.response.model": "gemini-2.5-flash",
        "gen_ai.response.id": response_id,
        "gen_ai.request.stream": stream,
        "gen_ai.usage.input_tokens": 500,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.usage.cache_read.input_tokens": 200,
        "gen_ai.usage.reasoning.output_tokens": 100,
        "gen_ai.response.finish_reasons": ("STOP",),
        **call_attributes(standin, key),
    }


def test_generate_content(spans, standin, key, client):
    response = client.models.generate_content(model="gemini-2.5-flash", contents="Say hello", config=config())
    assert response.text == "Hello from the stand-in provider."
    span = only_span(spans)
    assert span.name == "generate_content gemini-2.5-flash"
    assert dict(span.attributes) == expected(standin, key, stream=False, response_id=response.response_id)


def test_generate_content_stream(spans, standin, key, client):
    chunks = list(
        client.models.generate_content_stream(model="gemini-2.5-flash", contents="Say hello", config=config())
    )
    assert "".join(chunk.text for chunk in chunks) == "Hello from the stand-in provider."
    span = only_span(spans)
    assert dict(span.attributes) == expected(standin, key, stream=True, response_id=chunks[-1].response_id)


def test_async_generate_content(spans, standin, key, client):
    async def main():
        return await client.aio.models.generate_content(model="gemini-2.5-flash", contents="Say hello", config=config())

    response = asyncio.run(main())
    assert dict(only_span(spans).attributes) == expected(standin, key, stream=False, response_id=response.response_id)


def test_embeddings_are_estimated_from_the_request(spans, standin, key, client):
    result = client.models.embed_content(model="gemini-embedding-001", contents=["abcdefgh", "ijkl"])
    assert len(result.embeddings) == 2
    attributes = dict(only_span(spans).attributes)
    assert attributes["gen_ai.operation.name"] == "embeddings"
    assert attributes["gen_ai.request.model"] == "gemini-embedding-001"
    assert attributes["spendwatch.usage.estimated"] is True  # Gemini reports no usage for embeddings
    assert attributes["gen_ai.usage.input_tokens"] >= 3  # at least the 12 characters of text, at 4 a token
    assert "gen_ai.usage.output_tokens" not in attributes
