"""Every HTTP library apps reach a provider through: aiohttp (plain, and under openai's
`DefaultAioHttpClient`), requests and urllib3 — one span per billed request, exact usage, the key id, no
content, and nothing for requests that are not LLM calls."""

from __future__ import annotations

import asyncio
import secrets

import aiohttp
import httpx2
import openai
import pytest
import requests
import urllib3

import spendwatch
from spendwatch.instrumentation.keys import api_key_id
from spendwatch.standin import Usage
from tests.conftest import EXPORTER, make_key, only_span, ours

USAGE = Usage(input=120, output=40, cache_read=64, reasoning=12)
PROMPT = "PROMPT-CANARY-" + secrets.token_hex(6)
COMPLETION = "COMPLETION-CANARY-" + secrets.token_hex(6)
MESSAGES = [{"role": "user", "content": PROMPT}]
STEER = {"x-standin-usage": USAGE.header(), "x-standin-reply": f"{COMPLETION} and more"}


def assert_billed(spans, standin, key, *, stream: bool, count: int = 1):
    """One span per request the stand-in billed, with its exact usage, the key's id and no content."""
    found = ours(spans)
    assert len(found) == count == len(standin.requests[-count:])
    for span in found:
        attributes = dict(span.attributes)
        assert attributes["gen_ai.usage.input_tokens"] == USAGE.input
        assert attributes["gen_ai.usage.output_tokens"] == USAGE.output
        assert attributes["gen_ai.usage.cache_read.input_tokens"] == USAGE.cache_read
        assert attributes["gen_ai.usage.reasoning.output_tokens"] == USAGE.reasoning
        assert attributes["spendwatch.usage.estimated"] is False
        assert attributes["gen_ai.request.stream"] is stream
        assert attributes["spendwatch.fingerprint.id"] == api_key_id(key)
        for value in attributes.values():
            assert PROMPT not in str(value) and COMPLETION not in str(value) and key not in str(value)


# -- openai's DefaultAioHttpClient: httpx2 over aiohttp, one span -----------------------------------------


def test_openai_default_aiohttp_client(spans, standin):
    key = make_key()

    async def main():
        async with openai.AsyncOpenAI(
            base_url=f"{standin.base_url}/v1", api_key=key, max_retries=0, http_client=openai.DefaultAioHttpClient()
        ) as client:
            response = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers=STEER)
            return response.choices[0].message.content

    assert asyncio.run(main()).startswith(COMPLETION)
    assert_billed(spans, standin, key, stream=False)
    assert only_span(spans).attributes["gen_ai.response.id"] == f"chatcmpl-standin-{standin.requests[-1].serial}"


def test_openai_default_aiohttp_client_stream(spans, standin):
    key = make_key()

    async def main():
        async with openai.AsyncOpenAI(
            base_url=f"{standin.base_url}/v1", api_key=key, max_retries=0, http_client=openai.DefaultAioHttpClient()
        ) as client:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
                extra_headers=STEER,
            )
            return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])

    assert asyncio.run(main()).startswith(COMPLETION)
    assert_billed(spans, standin, key, stream=True)


def test_openai_sync_beside_aiohttp_async(spans, standin):
    """The sync client (httpx2's own transport) and the aiohttp one in one app: a span each, no more."""
    key = make_key()
    sync_client = openai.OpenAI(base_url=f"{standin.base_url}/v1", api_key=key, max_retries=0)
    sync_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers=STEER)

    async def main():
        async with openai.AsyncOpenAI(
            base_url=f"{standin.base_url}/v1", api_key=key, max_retries=0, http_client=openai.DefaultAioHttpClient()
        ) as client:
            await client.responses.create(model="gpt-5-mini", input=PROMPT, extra_headers=STEER)

    asyncio.run(main())
    assert_billed(spans, standin, key, stream=False, count=2)
    assert sorted(span.attributes["gen_ai.operation.name"] for span in ours(spans)) == ["chat", "responses"]


# -- plain aiohttp ---------------------------------------------------------------------------------------


def aiohttp_post(standin, path, body, headers, *, read="json", session_kwargs=None):
    async def main():
        async with aiohttp.ClientSession(**(session_kwargs or {})) as session:
            async with session.post(f"{standin.base_url}{path}", json=body, headers=headers) as response:
                if read == "json":
                    return await response.json()
                if read == "lines":
                    return [line async for line in response.content]
                return await response.content.read(10)  # then the response is closed early

    return asyncio.run(main())


@pytest.mark.parametrize("compressed", [False, True], ids=["identity", "gzip"])
@pytest.mark.parametrize("decompress", [True, False], ids=["auto_decompress", "raw"])
def test_plain_aiohttp(spans, standin, compressed, decompress):
    key = make_key()
    headers = {"authorization": f"Bearer {key}", "accept-encoding": "gzip" if compressed else "identity", **STEER}
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    if decompress:
        answer = aiohttp_post(standin, "/v1/chat/completions", body, headers)
        assert answer["usage"]["prompt_tokens"] == USAGE.input
    else:
        raw = aiohttp_post(
            standin, "/v1/chat/completions", body, headers, read="lines", session_kwargs={"auto_decompress": False}
        )
        assert (b"".join(raw)[:2] == b"\x1f\x8b") is compressed
    assert_billed(spans, standin, key, stream=False)


def test_plain_aiohttp_stream(spans, standin):
    key = make_key()
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    lines = aiohttp_post(
        standin, "/v1/chat/completions", body, {"authorization": f"Bearer {key}", **STEER}, read="lines"
    )
    assert lines[-2] == b"data: [DONE]\n"
    assert_billed(spans, standin, key, stream=True)


def test_plain_aiohttp_closed_early_is_estimated(spans, standin):
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    first = aiohttp_post(
        standin, "/v1/chat/completions", body, {"x-standin-chunks": "2000", "authorization": "Bearer x"}, read="some"
    )
    assert len(first) == 10
    attributes = dict(only_span(spans).attributes)
    assert attributes["spendwatch.usage.estimated"] is True
    assert attributes["http.response.status_code"] == 200


def test_aiohttp_session_made_before_instrumenting(standin):
    key = make_key()

    async def main():
        async with aiohttp.ClientSession() as session:
            EXPORTER.clear()
            spendwatch.instrument()
            async with session.post(
                f"{standin.base_url}/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": MESSAGES},
                headers={"authorization": f"Bearer {key}", **STEER},
            ) as response:
                await response.read()

    asyncio.run(main())
    assert_billed(EXPORTER, standin, key, stream=False)


# -- requests and urllib3 --------------------------------------------------------------------------------


def test_raw_requests(spans, standin):
    key = make_key()
    response = requests.post(
        f"{standin.base_url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES},
        headers={"authorization": f"Bearer {key}", **STEER},
        timeout=10,
    )
    assert response.json()["usage"]["completion_tokens"] == USAGE.output
    assert_billed(spans, standin, key, stream=False)  # requests rides on urllib3: one span, not two


def test_requests_stream_in_a_session_made_before(standin):
    key = make_key()
    session = requests.Session()
    EXPORTER.clear()
    spendwatch.instrument()
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    with session.post(
        f"{standin.base_url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}", **STEER},
        stream=True,
        timeout=10,
    ) as response:
        assert ours(EXPORTER) == []  # still open: the app holds the stream
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == b"data: [DONE]"
    assert_billed(EXPORTER, standin, key, stream=True)


def test_requests_gzip_and_anthropic_key(spans, standin):
    key = make_key("sk-ant-")
    response = requests.post(
        f"{standin.base_url}/v1/messages",
        json={"model": "claude-haiku-4-5", "max_tokens": 10, "messages": MESSAGES},
        headers={"x-api-key": key, "accept-encoding": "gzip", **STEER},
        timeout=10,
    )
    assert response.headers["content-encoding"] == "gzip"
    attributes = dict(only_span(spans).attributes)
    assert attributes["gen_ai.provider.name"] == "anthropic"
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (120, 40)
    assert attributes["spendwatch.fingerprint.id"] == api_key_id(key)


def test_urllib3_preloaded_and_streamed(spans, standin):
    key = make_key()
    pool = urllib3.PoolManager()
    url = f"{standin.base_url}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {key}", **STEER}
    preloaded = pool.request("POST", url, json={"model": "gpt-4o-mini", "messages": MESSAGES}, headers=headers)
    assert preloaded.json()["model"] == "gpt-4o-mini"
    streamed = pool.request(
        "POST",
        url,
        json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}},
        headers=headers,
        preload_content=False,
    )
    chunks = list(streamed.stream(64))
    streamed.release_conn()
    assert b"[DONE]" in b"".join(chunks)
    found = sorted(ours(spans), key=lambda span: span.attributes["gen_ai.request.stream"])
    assert [span.attributes["gen_ai.request.stream"] for span in found] == [False, True]
    for span in found:
        assert span.attributes["gen_ai.usage.input_tokens"] == USAGE.input
        assert span.attributes["spendwatch.fingerprint.id"] == api_key_id(key)


def test_non_llm_requests_make_no_span_on_any_library(spans, standin):
    requests.post(f"{standin.base_url}/v1/files", json={"model": "gpt-4o"}, timeout=10)
    requests.get(f"{standin.base_url}/v1/chat/completions", timeout=10)
    urllib3.request("POST", f"{standin.base_url}/api/users", json={})

    async def main():
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{standin.base_url}/v1/batches", json={"input_file_id": "f"}) as response:
                await response.read()
            async with session.get(f"{standin.base_url}/v1/responses") as response:
                await response.read()

    asyncio.run(main())
    assert ours(spans) == []


def test_patches_are_symmetric_and_idempotent(standin):
    from aiohttp import client, client_reqrep, streams
    from urllib3 import connectionpool

    places = [
        (client.ClientSession, "_request"),
        (streams.StreamReader, "feed_data"),
        (streams.StreamReader, "set_exception"),
        (client_reqrep.ClientResponse, "close"),
        (client_reqrep.ClientResponse, "release"),
        (connectionpool.HTTPConnectionPool, "_make_request"),
        (httpx2.HTTPTransport, "handle_request"),
    ]
    originals = [owner.__dict__[name] for owner, name in places]
    EXPORTER.clear()
    spendwatch.instrument()
    spendwatch.instrument()
    patched = [owner.__dict__[name] for owner, name in places]
    assert all(now is not before for now, before in zip(patched, originals, strict=True))
    assert all(now.__spendwatch_original__ is before for now, before in zip(patched, originals, strict=True))
    requests.post(f"{standin.base_url}/v1/chat/completions", json={"model": "m", "messages": []}, timeout=10)
    assert len(ours(EXPORTER)) == 1  # patched once, not twice
    spendwatch.uninstrument()
    assert [owner.__dict__[name] for owner, name in places] == originals
    requests.post(f"{standin.base_url}/v1/chat/completions", json={"model": "m", "messages": []}, timeout=10)
    assert len(ours(EXPORTER)) == 1


IMPORTED_LATER = """
import asyncio, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
import spendwatch
spendwatch.instrument(tracer_provider=provider)
assert "aiohttp" not in sys.modules and "urllib3" not in sys.modules and "requests" not in sys.modules
import requests, aiohttp
base = sys.argv[1]
requests.post(base + "/v1/chat/completions", json={"model": "m", "messages": []}, timeout=10)
async def main():
    async with aiohttp.ClientSession() as session:
        async with session.post(base + "/v1/chat/completions", json={"model": "m", "messages": []}) as response:
            await response.read()
asyncio.run(main())
print(len(exporter.get_finished_spans()))
"""


def test_libraries_imported_after_instrumenting_are_patched_on_import(standin):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", IMPORTED_LATER, standin.base_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2"]
