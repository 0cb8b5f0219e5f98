"""How calls end: early-closed streams, unread bodies, connection errors, rate limits — and the app's
behaviour unchanged by any of them. Also what is not an LLM call, sampling, and instrument()/uninstrument()."""

from __future__ import annotations

import asyncio
import gc
import socket

import httpx2
import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

import spendwatch
from tests.conftest import EXPORTER, make_key, only_span, ours

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Tell me a long story"}]}


def test_stream_closed_early_ends_span_with_estimate(spans, standin):
    client = openai.OpenAI(base_url=f"{standin.base_url}/v1", api_key=make_key(), max_retries=0)
    stream = client.chat.completions.create(
        **CHAT, stream=True, stream_options={"include_usage": True}, extra_headers={"x-standin-chunks": "200"}
    )
    received = []
    for chunk in stream:
        received.append(chunk.choices[0].delta.content)
        if len(received) == 3:
            break
    assert ours(spans) == []  # still open: the app holds the stream
    stream.close()
    attributes = dict(only_span(spans).attributes)
    assert attributes["http.response.status_code"] == 200
    assert attributes["spendwatch.usage.estimated"] is True  # the usage chunk never came
    assert attributes["gen_ai.usage.output_tokens"] >= 1
    assert attributes["gen_ai.usage.input_tokens"] == 5  # "Tell me a long story": 20 characters
    assert "error.type" not in attributes


def test_async_stream_closed_early(spans, standin):
    async def main():
        client = openai.AsyncOpenAI(base_url=f"{standin.base_url}/v1", api_key=make_key(), max_retries=0)
        stream = await client.chat.completions.create(**CHAT, stream=True, extra_headers={"x-standin-chunks": "200"})
        async for _ in stream:
            break
        await stream.close()

    asyncio.run(main())
    assert only_span(spans).attributes["spendwatch.usage.estimated"] is True


def test_body_never_read_still_ends_span(spans, standin):
    client = httpx2.Client(base_url=standin.base_url)
    response = client.send(client.build_request("POST", "/v1/chat/completions", json=CHAT), stream=True)
    assert response.status_code == 200
    assert ours(spans) == []
    del response
    gc.collect()
    attributes = dict(only_span(spans).attributes)
    assert attributes["http.response.status_code"] == 200
    assert attributes["spendwatch.usage.estimated"] is True
    client.close()


def test_connection_error(monkeypatch, spans):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("SPENDWATCH_PROVIDER_HOSTS", f"127.0.0.1:{port}=openai")
    spendwatch.uninstrument()
    spendwatch.instrument()
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=make_key(), max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(**CHAT)
    span = only_span(EXPORTER)
    attributes = dict(span.attributes)
    assert attributes["error.type"] == "ConnectError"
    assert "http.response.status_code" not in attributes
    assert "gen_ai.usage.input_tokens" not in attributes  # never answered: never billed
    assert span.status.status_code.name == "ERROR"


def test_rate_limited_call(spans, standin):
    client = openai.OpenAI(base_url=f"{standin.base_url}/v1", api_key=make_key(), max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(**CHAT, extra_headers={"x-standin-status": "429"})
    assert "Tell me a long story" in str(raised.value)  # the app still gets the provider's error body...
    span = only_span(spans)
    attributes = dict(span.attributes)
    assert attributes["http.response.status_code"] == 429
    assert attributes["error.type"] == "429"
    assert "gen_ai.usage.input_tokens" not in attributes
    assert "spendwatch.usage.estimated" not in attributes
    assert all("long story" not in str(value) for value in attributes.values())  # ...and we keep none of it
    assert span.status.status_code.name == "ERROR"


def test_each_retry_is_its_own_span(spans, standin):
    client = openai.OpenAI(base_url=f"{standin.base_url}/v1", api_key=make_key(), max_retries=2)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(**CHAT, extra_headers={"x-standin-status": "429"})
    assert [span.attributes["http.response.status_code"] for span in ours(spans)] == [429, 429, 429]


def test_non_llm_requests_make_no_span(spans, standin):
    with httpx2.Client(base_url=standin.base_url) as client:
        client.get("/v1/chat/completions")  # not a POST
        client.post("/v1/files", json={"model": "gpt-4o"})  # not an LLM path
        client.post("/api/users", json={})
    assert ours(spans) == []


def test_llm_path_on_unknown_host_that_is_not_an_llm_api(spans, standin):
    """A `/api/chat` of some chat product, not Ollama: no model asked for, none answered, no span."""
    with httpx2.Client(base_url=standin.base_url) as client:
        response = client.post(
            "/api/chat", json={"room": "general", "text": "hello"}, headers={"x-standin-status": "404"}
        )
    assert response.status_code == 404
    assert ours(spans) == []


def test_a_parsing_bug_never_breaks_the_call(monkeypatch, spans, standin, caplog):
    from spendwatch.instrumentation.families import openai as openai_format

    def broken(call, obj):
        raise RuntimeError("a bug in our parsing")

    monkeypatch.setattr(openai_format.WIRE, "observe", broken)
    monkeypatch.setenv("SPENDWATCH_SWALLOW_INTERNAL_ERRORS", "1")  # production behaviour, inside pytest
    client = openai.OpenAI(base_url=f"{standin.base_url}/v1", api_key=make_key(), max_retries=0)
    for _ in range(3):
        response = client.chat.completions.create(**CHAT)
        assert response.choices[0].message.content == "Hello from the stand-in provider."
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(**CHAT, stream=True))
        assert text == "Hello from the stand-in provider."
    internal_errors = [record for record in caplog.records if "internal error" in record.getMessage()]
    assert len(internal_errors) == 1  # logged once, not once per call


def test_parsing_bugs_fail_loudly_under_pytest(monkeypatch, spans, standin):
    from spendwatch.instrumentation.families import openai as openai_format

    monkeypatch.setattr(openai_format.WIRE, "observe", lambda call, obj: 1 / 0)
    client = openai.OpenAI(base_url=f"{standin.base_url}/v1", api_key=make_key(), max_retries=0)
    with pytest.raises(ZeroDivisionError):
        client.chat.completions.create(**CHAT)


def test_spans_bypass_the_apps_sampler(standin):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=TraceIdRatioBased(0.0))  # the app keeps none of its traces
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spendwatch.instrument(tracer_provider=provider)
    app_tracer = provider.get_tracer("app")
    client = openai.OpenAI(base_url=f"{standin.base_url}/v1", api_key=make_key(), max_retries=0)
    for _ in range(5):
        with app_tracer.start_as_current_span("handle request"):
            client.chat.completions.create(**CHAT)
    names = [span.name for span in exporter.get_finished_spans()]
    assert names == ["chat gpt-4o-mini"] * 5  # every LLM call, none of the app's own sampled-out spans


def test_instrument_is_idempotent_and_uninstrument_undoes_it(standin):
    original = httpx2.HTTPTransport.handle_request
    EXPORTER.clear()
    spendwatch.instrument()
    spendwatch.instrument()
    patched = httpx2.HTTPTransport.handle_request
    assert patched is not original
    with httpx2.Client(base_url=standin.base_url) as client:
        client.post("/v1/chat/completions", json=CHAT)
    assert len(ours(EXPORTER)) == 1  # patched once, not twice
    spendwatch.uninstrument()
    assert httpx2.HTTPTransport.handle_request is original
    with httpx2.Client(base_url=standin.base_url) as client:
        client.post("/v1/chat/completions", json=CHAT)
    assert len(ours(EXPORTER)) == 1


def test_gzip_bodies_are_read(spans, standin):
    with httpx2.Client(base_url=standin.base_url, headers={"accept-encoding": "gzip"}) as client:
        response = client.post("/v1/chat/completions", json=CHAT, headers={"x-standin-usage": "input=3,output=4"})
    assert response.headers["content-encoding"] == "gzip"
    attributes = dict(only_span(spans).attributes)
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (3, 4)
    assert attributes["spendwatch.usage.estimated"] is False
