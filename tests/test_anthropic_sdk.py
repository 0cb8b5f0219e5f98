"""The real anthropic SDK (2.x, on httpx2, its own tracing left on) against the stand-in."""

from __future__ import annotations

import asyncio

import anthropic
import pytest

from spendwatch.standin import Usage
from tests.conftest import call_attributes, make_key, only_span

# 1000 input tokens in semconv terms: 300 uncached + 600 read from the cache + 100 written to it.
USAGE = Usage(input=1000, output=50, cache_read=600, cache_write=100)
MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def key():
    return make_key("sk-ant-")


def client(standin, key):
    return anthropic.Anthropic(base_url=standin.base_url, api_key=key, max_retries=0)


def expected(standin, key, response_id, stream):
    return {
        "gen_ai.provider.name": "anthropic",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "claude-sonnet-4-6",
        "gen_ai.response.model": "claude-sonnet-4-6",
        "gen_ai.response.id": response_id,
        "gen_ai.request.stream": stream,
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 50,
        "gen_ai.usage.cache_read.input_tokens": 600,
        "gen_ai.usage.cache_creation.input_tokens": 100,
        "spendwatch.usage.cache_write_5m_tokens": 100,  # usage.cache_creation: all of it 5-minute writes
        "gen_ai.response.finish_reasons": ("end_turn",),
        **call_attributes(standin, key),
    }


def sdk_spans(exporter):
    return [
        span for span in exporter.get_finished_spans() if span.instrumentation_scope.name.startswith("com.anthropic")
    ]


def test_messages_with_cache_tokens_and_the_sdks_own_span(spans, standin, key):
    message = client(standin, key).messages.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES, extra_headers={"x-standin-usage": USAGE.header()}
    )
    assert message.usage.input_tokens == 300
    span = only_span(spans)
    assert span.name == "chat claude-sonnet-4-6"
    assert dict(span.attributes) == expected(standin, key, message.id, stream=False)
    # The SDK's own call span is there too, and ours is its child: the collector keeps ours, once.
    (sdk_span,) = sdk_spans(spans)
    assert span.parent is not None and span.parent.span_id == sdk_span.context.span_id
    assert span.context.trace_id == sdk_span.context.trace_id


def test_async_messages(spans, standin, key):
    async def main():
        aclient = anthropic.AsyncAnthropic(base_url=standin.base_url, api_key=key, max_retries=0)
        return await aclient.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=100,
            messages=MESSAGES,
            extra_headers={"x-standin-usage": USAGE.header()},
        )

    message = asyncio.run(main())
    assert dict(only_span(spans).attributes) == expected(standin, key, message.id, stream=False)


def test_streaming_merges_cumulative_usage(spans, standin, key):
    with client(standin, key).messages.stream(
        model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES, extra_headers={"x-standin-usage": USAGE.header()}
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from the stand-in provider."
    span = only_span(spans)
    assert dict(span.attributes) == expected(standin, key, final.id, stream=True)
    (sdk_span,) = sdk_spans(spans)
    assert span.parent.span_id == sdk_span.context.span_id


def test_async_streaming(spans, standin, key):
    async def main():
        aclient = anthropic.AsyncAnthropic(base_url=standin.base_url, api_key=key, max_retries=0)
        stream = await aclient.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=100,
            messages=MESSAGES,
            stream=True,
            extra_headers={"x-standin-usage": USAGE.header()},
        )
        return [event.type async for event in stream]

    events = asyncio.run(main())
    assert events[0] == "message_start" and events[-1] == "message_stop"
    attributes = dict(only_span(spans).attributes)
    assert attributes["gen_ai.usage.input_tokens"] == 1000
    assert attributes["gen_ai.usage.output_tokens"] == 50
    assert attributes["gen_ai.request.stream"] is True
