"""The real openai SDK (3.x, on httpx2) against the stand-in: the span of each kind of call, exactly."""

from __future__ import annotations

import asyncio

import openai
import pytest

from spendwatch.standin import Usage
from tests.conftest import call_attributes, make_key, only_span

USAGE = Usage(input=120, output=40, cache_read=64, reasoning=12)


@pytest.fixture
def key():
    return make_key()


def client(standin, key, **kwargs):
    return openai.OpenAI(base_url=f"{standin.base_url}/v1", api_key=key, max_retries=0, **kwargs)


def expected(standin, key, **overrides):
    attributes = {
        "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.request.stream": False,
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 40,
        "gen_ai.usage.cache_read.input_tokens": 64,
        "gen_ai.usage.reasoning.output_tokens": 12,
        "gen_ai.response.finish_reasons": ("stop",),
        **call_attributes(standin, key),
    }
    attributes.update(overrides)
    return {name: value for name, value in attributes.items() if value is not None}


def test_chat_completion(spans, standin, key):
    response = client(standin, key).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Say hello"}],
        extra_headers={"x-standin-usage": USAGE.header()},
    )
    assert response.usage.prompt_tokens == 120
    span = only_span(spans)
    assert span.name == "chat gpt-4o-mini"
    assert span.kind.name == "CLIENT"
    assert dict(span.attributes) == expected(standin, key, **{"gen_ai.response.id": response.id})


def test_async_chat_completion(spans, standin, key):
    async def main():
        async with openai.AsyncOpenAI(base_url=f"{standin.base_url}/v1", api_key=key, max_retries=0) as aclient:
            return await aclient.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Say hello"}],
                extra_headers={"x-standin-usage": USAGE.header()},
            )

    response = asyncio.run(main())
    assert dict(only_span(spans).attributes) == expected(standin, key, **{"gen_ai.response.id": response.id})


def test_stream_with_include_usage(spans, standin, key):
    stream = client(standin, key).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-standin-usage": USAGE.header()},
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Hello from the stand-in provider."
    span = only_span(spans)
    assert dict(span.attributes) == expected(
        standin, key, **{"gen_ai.request.stream": True, "gen_ai.response.id": span.attributes["gen_ai.response.id"]}
    )
    assert span.attributes["gen_ai.response.id"].startswith("chatcmpl-standin-")


def test_async_stream_with_include_usage(spans, standin, key):
    async def main():
        aclient = openai.AsyncOpenAI(base_url=f"{standin.base_url}/v1", api_key=key, max_retries=0)
        stream = await aclient.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Say hello"}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-standin-usage": USAGE.header()},
        )
        return [chunk async for chunk in stream]

    chunks = asyncio.run(main())
    assert chunks[-1].usage.completion_tokens == 40
    attributes = dict(only_span(spans).attributes)
    assert attributes["gen_ai.usage.input_tokens"] == 120
    assert attributes["gen_ai.usage.output_tokens"] == 40
    assert attributes["spendwatch.usage.estimated"] is False


def test_stream_without_usage_is_estimated(spans, standin, key):
    prompt = "Count the characters of this prompt, please."  # 44 characters: 11 tokens at 4 a token
    stream = client(standin, key).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        extra_headers={"x-standin-reply": "one two three four five six seven eight"},
    )
    assert len(list(stream)) == 8
    attributes = dict(only_span(spans).attributes)
    assert attributes["spendwatch.usage.estimated"] is True
    assert attributes["gen_ai.usage.input_tokens"] == 11
    assert attributes["gen_ai.usage.output_tokens"] == 10  # "one two ... eight": 39 characters
    assert "gen_ai.usage.cache_read.input_tokens" not in attributes


def test_responses_api(spans, standin, key):
    response = client(standin, key).responses.create(
        model="gpt-5-mini", input="Say hello", extra_headers={"x-standin-usage": USAGE.header()}
    )
    assert response.output_text == "Hello from the stand-in provider."
    span = only_span(spans)
    assert span.name == "responses gpt-5-mini"  # its own operation: reports tell it from chat completions
    assert dict(span.attributes) == expected(
        standin,
        key,
        **{
            "gen_ai.operation.name": "responses",
            "gen_ai.request.model": "gpt-5-mini",
            "gen_ai.response.model": "gpt-5-mini",
            "gen_ai.response.id": response.id,
            "gen_ai.response.finish_reasons": ("completed",),
        },
    )


def test_responses_api_streaming(spans, standin, key):
    stream = client(standin, key).responses.create(
        model="gpt-5-mini", input="Say hello", stream=True, extra_headers={"x-standin-usage": USAGE.header()}
    )
    events = [event.type for event in stream]
    assert events[0] == "response.created" and events[-1] == "response.completed"
    span = only_span(spans)
    assert dict(span.attributes) == expected(
        standin,
        key,
        **{
            "gen_ai.operation.name": "responses",
            "gen_ai.request.model": "gpt-5-mini",
            "gen_ai.response.model": "gpt-5-mini",
            "gen_ai.request.stream": True,
            "gen_ai.response.id": span.attributes["gen_ai.response.id"],
            "gen_ai.response.finish_reasons": ("completed",),
        },
    )


def test_embeddings(spans, standin, key):
    result = client(standin, key).embeddings.create(
        model="text-embedding-3-small", input=["first", "second"], extra_headers={"x-standin-usage": "input=9"}
    )
    assert len(result.data) == 2
    span = only_span(spans)
    assert span.name == "embeddings text-embedding-3-small"
    assert dict(span.attributes) == expected(
        standin,
        key,
        **{
            "gen_ai.operation.name": "embeddings",
            "gen_ai.request.model": "text-embedding-3-small",
            "gen_ai.response.model": "text-embedding-3-small",
            "gen_ai.usage.input_tokens": 9,
            "gen_ai.usage.output_tokens": None,
            "gen_ai.usage.cache_read.input_tokens": None,
            "gen_ai.usage.reasoning.output_tokens": None,
            "gen_ai.response.finish_reasons": None,
        },
    )


def test_legacy_completions(spans, standin, key):
    client(standin, key).completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say hello", extra_headers={"x-standin-usage": "input=7,output=3"}
    )
    attributes = dict(only_span(spans).attributes)
    assert attributes["gen_ai.operation.name"] == "text_completion"
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (7, 3)


def test_client_made_before_instrumenting_is_covered(standin, key):
    from tests.conftest import EXPORTER

    early = client(standin, key)
    EXPORTER.clear()
    import spendwatch

    spendwatch.instrument()
    early.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert only_span(EXPORTER).attributes["gen_ai.request.model"] == "gpt-4o-mini"
