"""Raw httpx and httpx2 requests in the wire formats no SDK test covers: Azure, Groq, Ollama NDJSON,
Gemini's JSON-array stream, Responses over plain HTTP — sync and async, on both libraries."""

from __future__ import annotations

import asyncio

import httpx
import httpx2
import pytest

import spendwatch
from spendwatch.instrumentation.keys import api_key_id
from spendwatch.standin import Usage
from tests.conftest import EXPORTER, make_key, only_span

LIBRARIES = pytest.mark.parametrize("library", [httpx, httpx2], ids=["httpx", "httpx2"])


@pytest.fixture
def as_provider(monkeypatch, standin):
    """Instrument with the stand-in's address named as `provider`, as SPENDWATCH_PROVIDER_HOSTS does."""

    def instrument(provider: str):
        monkeypatch.setenv("SPENDWATCH_PROVIDER_HOSTS", f"{standin.address}={provider}")
        EXPORTER.clear()
        spendwatch.instrument()
        return EXPORTER

    return instrument


def post(library, standin, path, body, headers, asynchronous=False):
    if not asynchronous:
        with library.Client(base_url=standin.base_url) as client:
            response = client.post(path, json=body, headers=headers)
            return response.status_code, response.content

    async def main():
        async with library.AsyncClient(base_url=standin.base_url) as client:
            response = await client.post(path, json=body, headers=headers)
            return response.status_code, response.content

    return asyncio.run(main())


@LIBRARIES
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_azure_openai_deployment(as_provider, standin, library, asynchronous):
    spans = as_provider("azure.ai.openai")
    key = make_key("az")
    status, _ = post(
        library,
        standin,
        "/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21",
        {"messages": [{"role": "user", "content": "hi"}]},
        {"api-key": key, "x-standin-usage": "input=40,output=8", "x-standin-response-model": "gpt-4o-2024-11-20"},
        asynchronous,
    )
    assert status == 200
    span = only_span(spans)
    attributes = dict(span.attributes)
    assert span.name == "chat prod-gpt4o"
    assert attributes["gen_ai.provider.name"] == "azure.ai.openai"
    assert attributes["gen_ai.request.model"] == "prod-gpt4o"
    assert attributes["gen_ai.response.model"] == "gpt-4o-2024-11-20"
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (40, 8)
    assert attributes["spendwatch.fingerprint.id"] == api_key_id(key)


@LIBRARIES
def test_groq_stream_with_x_groq_usage(as_provider, standin, library):
    spans = as_provider("groq")
    with library.Client(base_url=standin.base_url) as client:
        with client.stream(
            "POST",
            "/openai/v1/chat/completions",
            json={"model": "llama-3.3-70b-versatile", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
            headers={
                "authorization": f"Bearer {make_key('gsk_')}",
                "x-standin-groq": "1",
                "x-standin-usage": "input=30,output=6",
            },
        ) as response:
            body = b"".join(response.iter_bytes())
    assert b"x_groq" in body
    attributes = dict(only_span(spans).attributes)
    assert attributes["gen_ai.provider.name"] == "groq"
    assert attributes["gen_ai.request.stream"] is True
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (30, 6)
    assert attributes["spendwatch.usage.estimated"] is False


@LIBRARIES
@pytest.mark.parametrize(
    "path,operation", [("/api/chat", "chat"), ("/api/generate", "text_completion")], ids=["chat", "generate"]
)
def test_ollama_ndjson_stream(as_provider, standin, library, path, operation):
    spans = as_provider("ollama")
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "prompt": "hi"}
    with library.Client(base_url=standin.base_url) as client:
        with client.stream("POST", path, json=body, headers={"x-standin-usage": "input=26,output=7"}) as response:
            lines = list(response.iter_lines())
    assert len(lines) == 6  # five chunks of the reply and the final `done` object
    span = only_span(spans)
    attributes = dict(span.attributes)
    assert span.name == f"{operation} llama3.2"
    assert attributes["gen_ai.provider.name"] == "ollama"
    assert attributes["gen_ai.operation.name"] == operation
    assert attributes["gen_ai.request.stream"] is True  # Ollama streams unless told not to
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (26, 7)
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert "spendwatch.fingerprint.id" not in attributes  # a local Ollama has no key


def test_ollama_unary_and_embed(as_provider, standin):
    spans = as_provider("ollama")
    post(
        httpx2,
        standin,
        "/api/chat",
        {"model": "llama3.2", "stream": False, "messages": []},
        {"x-standin-usage": "input=5,output=2"},
    )
    post(httpx2, standin, "/api/embed", {"model": "nomic-embed-text", "input": "hi"}, {"x-standin-usage": "input=4"})
    chat, embed = sorted(
        (dict(span.attributes) for span in spans.get_finished_spans()), key=lambda a: a["gen_ai.operation.name"]
    )
    assert (chat["gen_ai.request.stream"], chat["gen_ai.usage.input_tokens"], chat["gen_ai.usage.output_tokens"]) == (
        False,
        5,
        2,
    )
    assert (embed["gen_ai.operation.name"], embed["gen_ai.usage.input_tokens"]) == ("embeddings", 4)
    assert embed["spendwatch.usage.estimated"] is False


@LIBRARIES
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_gemini_json_array_stream(spans, standin, library, asynchronous):
    key = make_key("AIza")
    status, content = post(
        library,
        standin,
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
        {"contents": [{"parts": [{"text": "hi"}]}]},
        {"x-goog-api-key": key, "x-standin-usage": Usage(input=70, output=20, reasoning=5).header()},
        asynchronous,
    )
    assert status == 200 and content.startswith(b"[")
    attributes = dict(only_span(spans).attributes)
    assert attributes["gen_ai.provider.name"] == "gcp.gemini"  # the format's own name on an unknown host
    assert attributes["gen_ai.request.model"] == "gemini-2.5-pro"
    assert attributes["gen_ai.request.stream"] is True
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (70, 20)
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == 5
    assert attributes["spendwatch.fingerprint.id"] == api_key_id(key)


def test_gemini_key_in_query_parameter(spans, standin):
    key = make_key("AIza")
    with httpx2.Client(base_url=standin.base_url) as client:
        client.post(f"/v1beta/models/gemini-2.5-flash:generateContent?key={key}", json={"contents": []})
    attributes = dict(only_span(spans).attributes)
    assert attributes["spendwatch.fingerprint.id"] == api_key_id(key)
    assert all(key not in str(value) for value in attributes.values())


@LIBRARIES
def test_responses_stream_over_plain_http(spans, standin, library):
    with library.Client(base_url=standin.base_url) as client:
        with client.stream(
            "POST",
            "/v1/responses",
            json={"model": "gpt-5", "input": "hi", "stream": True},
            headers={"x-standin-usage": Usage(input=11, output=22, cache_read=3, reasoning=9).header()},
        ) as response:
            response.read()
    attributes = dict(only_span(spans).attributes)
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (11, 22)
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 3
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == 9
