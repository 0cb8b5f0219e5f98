"""Tool and grounding fees as the real SDKs meet them — Anthropic's server tools, Gemini's grounding with
Google Search — and Vertex AI (Gemini and Claude), whose key id is its project, not the hourly token."""

from __future__ import annotations

import anthropic
import pytest
from google import genai
from google.genai import types
from google.oauth2.credentials import Credentials

from spendwatch.instrumentation.keys import api_key_id
from tests.conftest import make_key, only_span

MESSAGES = [{"role": "user", "content": "What happened today?"}]


def test_anthropic_server_tools_are_counted(spans, standin):
    key = make_key("sk-ant-")
    client = anthropic.Anthropic(base_url=standin.base_url, api_key=key, max_retries=0)
    message = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        messages=MESSAGES,
        tools=[{"type": "web_search_20250305", "name": "web_search"}],
        extra_headers={
            "x-standin-usage": "input=2000,output=90",
            "x-standin-web-search": "3",
            "x-standin-web-fetch": "1",
        },
    )
    assert message.usage.server_tool_use.web_search_requests == 3
    attributes = dict(only_span(spans).attributes)
    assert attributes["spendwatch.usage.web_search_calls"] == 3
    assert attributes["spendwatch.usage.web_fetch_calls"] == 1
    assert attributes["spendwatch.fingerprint.id"] == api_key_id(key)


def test_anthropic_server_tools_in_a_stream(spans, standin):
    client = anthropic.Anthropic(base_url=standin.base_url, api_key=make_key("sk-ant-"), max_retries=0)
    with client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=100,
        messages=MESSAGES,
        extra_headers={"x-standin-usage": "input=2000,output=90", "x-standin-web-search": "2"},
    ) as stream:
        stream.until_done()
    attributes = dict(only_span(spans).attributes)
    assert attributes["spendwatch.usage.web_search_calls"] == 2  # cumulative, as the usage: set, not added
    assert attributes["gen_ai.usage.output_tokens"] == 90


@pytest.mark.parametrize("model,billed", [("gemini-2.5-flash", 1), ("gemini-3-pro-preview", 4)])
def test_gemini_grounding(spans, standin, model, billed):
    key = make_key("AIza")
    client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=standin.base_url))
    config = types.GenerateContentConfig(
        tools=[types.Tool(google_search=types.GoogleSearch())],
        http_options=types.HttpOptions(headers={"x-standin-usage": "input=40,output=60", "x-standin-web-search": "4"}),
    )
    answer = client.models.generate_content(model=model, contents="What happened today?", config=config)
    assert len(answer.candidates[0].grounding_metadata.web_search_queries) == 4
    attributes = dict(only_span(spans).attributes)
    assert attributes["spendwatch.usage.web_search_queries"] == 4
    # Gemini 3 is billed per search query, earlier models per grounded prompt
    assert attributes["spendwatch.usage.web_search_calls"] == billed


def test_vertex_gemini_key_id_is_the_project(spans, standin):
    def call(token: str) -> dict:
        client = genai.Client(
            vertexai=True,
            project="billing-project-7",
            location="europe-west4",
            credentials=Credentials(token=token),
            http_options=types.HttpOptions(base_url=standin.base_url, headers={"x-standin-usage": "input=30,output=5"}),
        )
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
        span = only_span(spans)
        spans.clear()
        return dict(span.attributes)

    first, second = call("ya29.token-of-this-hour-" + "a" * 20), call("ya29.token-of-the-next-" + "b" * 20)
    assert "/projects/billing-project-7/locations/europe-west4/publishers/google/models/" in standin.requests[-1].path
    for attributes in (first, second):
        assert attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
        assert attributes["gen_ai.request.model"] == "gemini-2.5-flash"
        assert attributes["cloud.region"] == "europe-west4"
        assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (30, 5)
    assert (
        first["spendwatch.fingerprint.id"] == second["spendwatch.fingerprint.id"] == api_key_id("gcp-project:billing-project-7")
    )


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
def test_claude_on_vertex(spans, standin, stream):
    client = anthropic.AnthropicVertex(
        region="us-east5",
        project_id="billing-project-7",
        access_token="ya29.hourly-token-" + "c" * 30,
        base_url=f"{standin.base_url}/v1",
        max_retries=0,
    )
    headers = {"x-standin-usage": "input=500,output=40,cache_read=200"}
    if stream:
        with client.messages.stream(
            model="claude-sonnet-4-5@20250929", max_tokens=50, messages=MESSAGES, extra_headers=headers
        ) as events:
            events.until_done()
    else:
        client.messages.create(
            model="claude-sonnet-4-5@20250929", max_tokens=50, messages=MESSAGES, extra_headers=headers
        )
    assert standin.requests[-1].path.endswith(
        "/publishers/anthropic/models/claude-sonnet-4-5@20250929:" + ("streamRawPredict" if stream else "rawPredict")
    )
    attributes = dict(only_span(spans).attributes)
    assert attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert attributes["gen_ai.request.model"] == "claude-sonnet-4-5@20250929"
    assert attributes["gen_ai.request.stream"] is stream
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (500, 40)
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 200
    assert attributes["spendwatch.fingerprint.id"] == api_key_id("gcp-project:billing-project-7")
