"""What calls cost, worked out by hand from the providers' published prices, against what spendwatch stores.

Each case is one real call: the provider's real SDK (boto3 for Bedrock) against the stand-in, which answers
with the usage the case gives in the provider's own wire format; spendwatch's instrumentation makes the
span; the real OTLP exporter sends it, with every other span of the call (the anthropic SDK's own), into
a real `spendwatch up`, which prices it and stores it. The stored `cost_usd` must be within 0.1% of the
case's arithmetic. Two cases are spans another tool sends (an OpenAI Batch API result marked
`spendwatch.request.batch`): spendwatch's own instrumentation does not see batch results (README).

The calls are made today, so the prices are those published for December 2026, per million tokens
unless said otherwise. Sources, cited by their letter in each case:

[A] Anthropic, https://platform.claude.com/docs/en/about-claude/pricing — Sonnet 4.5: $3 input, 5m cache
    writes $3.75, 1h cache writes $6, cache hits $0.30, $15 output; prompts over 200K input tokens:
    $6 / $7.50 / $12 / $0.60 / $22.50. Haiku 4.5: $1 / $1.25 / $2 / $0.10 / $5. Opus 4.5: $5 / $6.25 / $10 /
    $0.50 / $25. Batch: 50% of every rate, caching multipliers included. Web search: $10 per 1,000.
[AF] Anthropic fast mode, https://platform.claude.com/docs/en/build-with-claude/fast-mode — Opus 5: $10
    input / $50 output (2x its $5 / $25).
[O] OpenAI, https://developers.openai.com/api/docs/pricing — gpt-5: $1.25 input, $0.125 cached, $10
    output; Flex and Batch: $0.625 / $0.0625 / $5. gpt-4o: $2.50 / $1.25 / $10; Batch $1.25 / $5.
    gpt-4o-mini: $0.15 / $0.60. o4-mini Flex: $0.55 / $2.20. gpt-5.5: $5 / $0.50 / $30; prompts over 272K
    input tokens: $10 / $1 / $45. gpt-audio: text $2.50 / $10, audio $32 in / $64 out. gpt-image-1:
    text input $5, image input $10, image output $40. Web search tool calls: $10 per 1,000.
[OP] OpenAI Priority processing, https://openai.com/api-priority-processing — gpt-5: $2.50 input,
    $0.25 cached, $20 output; gpt-4o: $4.25 / $2.125 / $17.
[G] Gemini API, https://ai.google.dev/gemini-api/docs/pricing — 2.5 Flash: $0.30 text/image/video input,
    $1.00 audio input, $2.50 output (thinking included), cache $0.03 text / $0.10 audio. 2.5 Pro: prompts
    up to 200K $1.25 / cache $0.125 / $10 output, above $2.50 / $0.25 / $15. 2.5 Flash Image: image
    output $30. Grounding with Google Search (2.5): $35 per 1,000 grounded prompts.
[GF] Gemini Flex, https://ai.google.dev/gemini-api/docs/optimization — 50% of standard.
[V] Vertex AI, https://cloud.google.com/vertex-ai/generative-ai/pricing — Gemini 2.5 Pro as [G]; Claude
    Sonnet 4.5 (global endpoint) as [A].
[B] Amazon Bedrock, https://aws.amazon.com/bedrock/pricing/ — Claude Sonnet 4.5 global cross-region: as
    [A]; its regional (`us.`) profile 10% more: $3.30 / 5m writes $4.125 / 1h $6.60 / hits $0.33 / $16.50.
    Nova Pro: $0.80 input, $0.20 cached, $3.20 output. Llama 3.3 70B: $0.72 / $0.72.
[Q] Groq, https://groq.com/pricing — Llama 3.3 70B Versatile: $0.59 / $0.79.
[X] xAI, https://docs.x.ai/developers/pricing — grok-4: $3 input, $0.75 cached, $15 output; reasoning
    tokens are billed as output, and xAI reports them beside completion tokens, not inside.
[Z] Azure OpenAI, https://azure.microsoft.com/pricing/details/cognitive-services/openai-service/ —
    gpt-4o global: $2.50 / $1.25 / $10.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import anthropic
import boto3
import openai
import pytest
from google import genai
from google.genai import types
from google.oauth2.credentials import Credentials
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

import spendwatch
from spendwatch.instrumentation.keys import api_key_id
from spendwatch.reads import query
from spendwatch.standin import StandinServer, Usage
from tests.collector import Collector
from tests.conftest import EXPORTER, PROVIDER, make_key, ours

MESSAGES = [{"role": "user", "content": "What does this cost?"}]
M = 1_000_000  # prices are per million tokens: tokens * price / M


@dataclass
class Env:
    standin: StandinServer
    compatible: dict[str, StandinServer]  # provider -> a stand-in whose host:port is named that provider
    key: str = field(default_factory=lambda: make_key())

    def headers(self, usage: Usage, **extra: str | None) -> dict[str, str]:
        return {"x-standin-usage": usage.header(), **{k: v for k, v in extra.items() if v is not None}}


def openai_chat(model: str, usage: Usage, tier: str | None = None, provider: str | None = None, **extra: str):
    def call(env: Env) -> None:
        base = (env.compatible[provider] if provider else env.standin).base_url
        client = openai.OpenAI(base_url=base + "/v1", api_key=env.key, max_retries=0)
        headers = env.headers(usage, **{"x-standin-service-tier": tier}, **extra)
        client.chat.completions.create(model=model, messages=MESSAGES, extra_headers=headers)

    return call


def openai_responses(model: str, usage: Usage, web_searches: int = 0):
    def call(env: Env) -> None:
        client = openai.OpenAI(base_url=env.standin.base_url + "/v1", api_key=env.key, max_retries=0)
        headers = env.headers(usage, **{"x-standin-web-search": str(web_searches) if web_searches else None})
        client.responses.create(model=model, input="What happened today?", extra_headers=headers)

    return call


def openai_image(model: str, usage: Usage):
    def call(env: Env) -> None:
        client = openai.OpenAI(base_url=env.standin.base_url + "/v1", api_key=env.key, max_retries=0)
        client.images.generate(model=model, prompt="a price tag", extra_headers=env.headers(usage))

    return call


def claude(model: str, usage: Usage, tier: str | None = None, speed: str | None = None, web_searches: int = 0):
    def call(env: Env) -> None:
        client = anthropic.Anthropic(base_url=env.standin.base_url, api_key=env.key, max_retries=0)
        headers = env.headers(
            usage,
            **{
                "x-standin-service-tier": tier,
                "x-standin-speed": speed,
                "x-standin-web-search": str(web_searches) if web_searches else None,
            },
        )
        client.messages.create(model=model, max_tokens=100, messages=MESSAGES, extra_headers=headers)

    return call


def gemini(model: str, usage: Usage, tier: str | None = None, grounding: int = 0, stream: bool = False):
    def call(env: Env) -> None:
        headers = env.headers(
            usage,
            **{"x-standin-service-tier": tier, "x-standin-web-search": str(grounding) if grounding else None},
        )
        client = genai.Client(api_key=env.key, http_options=types.HttpOptions(base_url=env.standin.base_url))
        config = types.GenerateContentConfig(http_options=types.HttpOptions(headers=headers))
        if stream:
            list(client.models.generate_content_stream(model=model, contents="What does this cost?", config=config))
        else:
            client.models.generate_content(model=model, contents="What does this cost?", config=config)

    return call


def vertex_gemini(model: str, usage: Usage):
    def call(env: Env) -> None:
        client = genai.Client(
            vertexai=True,
            project="billing-project-22",
            location="global",
            credentials=Credentials(token="ya29.token-of-this-hour-" + secrets.token_hex(12)),
            http_options=types.HttpOptions(base_url=env.standin.base_url, headers=env.headers(usage)),
        )
        client.models.generate_content(model=model, contents="What does this cost?")

    return call


def vertex_claude(model: str, usage: Usage):
    def call(env: Env) -> None:
        client = anthropic.AnthropicVertex(
            region="global",
            project_id="billing-project-22",
            access_token="ya29.hourly-token-" + secrets.token_hex(12),
            base_url=f"{env.standin.base_url}/v1",
            max_retries=0,
        )
        client.messages.create(model=model, max_tokens=100, messages=MESSAGES, extra_headers=env.headers(usage))

    return call


def bedrock(model: str, usage: Usage):
    def call(env: Env) -> None:
        client = boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=env.standin.base_url,
            aws_access_key_id="AKIA" + secrets.token_hex(8).upper(),
            aws_secret_access_key="secret-" + secrets.token_urlsafe(30),
        )
        steer = env.headers(usage)
        client.meta.events.register("before-send.bedrock-runtime.*", lambda request, **_: request.headers.update(steer))
        client.converse(modelId=model, messages=[{"role": "user", "content": [{"text": "What does this cost?"}]}])

    return call


def batch_result(model: str, usage: Usage):
    """An OpenAI Batch API result as a tool that reads the batch's output file reports it: a GenAI span
    marked `spendwatch.request.batch`."""

    def call(env: Env) -> None:
        tracer = PROVIDER.get_tracer("acme.batch-results")
        attributes = {
            "gen_ai.provider.name": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "gen_ai.response.id": "chatcmpl-batch-" + secrets.token_hex(6),
            "gen_ai.usage.input_tokens": usage.input,
            "gen_ai.usage.output_tokens": usage.output,
            "gen_ai.usage.cache_read.input_tokens": usage.cache_read,
            "spendwatch.request.batch": True,
        }
        tracer.start_span(f"chat {model}", attributes=attributes).end()

    return call


@dataclass(frozen=True)
class Case:
    name: str
    call: Callable[[Env], None]
    expected: float  # USD, by hand; the arithmetic is written beside each case


CASES = [
    # -- OpenAI --------------------------------------------------------------------------------------------
    Case(
        "openai-gpt-4o",
        openai_chat("gpt-4o", Usage(input=10_000, output=2_000)),
        (10_000 * 2.50 + 2_000 * 10) / M,  # [O] 0.025 + 0.02 = 0.045
    ),
    Case(
        "openai-gpt-4o-cache-read",
        openai_chat("gpt-4o", Usage(input=10_000, output=500, cache_read=6_000)),
        (4_000 * 2.50 + 6_000 * 1.25 + 500 * 10) / M,  # [O] 0.01 + 0.0075 + 0.005 = 0.0225
    ),
    Case(
        "openai-gpt-4o-mini",
        openai_chat("gpt-4o-mini", Usage(input=100_000, output=10_000)),
        (100_000 * 0.15 + 10_000 * 0.60) / M,  # [O] 0.015 + 0.006 = 0.021
    ),
    Case(
        "openai-gpt-5-reasoning",
        openai_chat("gpt-5", Usage(input=2_000, output=5_000, reasoning=4_000)),
        (2_000 * 1.25 + 5_000 * 10) / M,  # [O] reasoning is output: 0.0025 + 0.05 = 0.0525
    ),
    Case(
        "openai-gpt-5-default-tier",
        openai_chat("gpt-5", Usage(input=1_000, output=1_000), tier="default"),
        (1_000 * 1.25 + 1_000 * 10) / M,  # [O] the default tier is the standard price: 0.01125
    ),
    Case(
        "openai-gpt-5-flex-cache-read",
        openai_chat("gpt-5", Usage(input=20_000, output=3_000, cache_read=10_000), tier="flex"),
        (10_000 * 0.625 + 10_000 * 0.0625 + 3_000 * 5) / M,  # [O] flex: 0.00625 + 0.000625 + 0.015 = 0.021875
    ),
    Case(
        "openai-gpt-5-priority-reasoning",
        openai_chat("gpt-5", Usage(input=5_000, output=6_000, reasoning=5_000), tier="priority"),
        (5_000 * 2.50 + 6_000 * 20) / M,  # [OP] reasoning at the priority output rate: 0.0125 + 0.12 = 0.1325
    ),
    Case(
        "openai-gpt-5-priority-cache-read",
        openai_chat("gpt-5", Usage(input=8_000, output=1_000, cache_read=4_000), tier="priority"),
        (4_000 * 2.50 + 4_000 * 0.25 + 1_000 * 20) / M,  # [OP] 0.01 + 0.001 + 0.02 = 0.031
    ),
    Case(
        "openai-gpt-4o-priority",
        openai_chat("gpt-4o", Usage(input=3_000, output=1_000), tier="priority"),
        (3_000 * 4.25 + 1_000 * 17) / M,  # [OP] 0.01275 + 0.017 = 0.02975
    ),
    Case(
        "openai-o4-mini-flex-reasoning",
        openai_chat("o4-mini", Usage(input=4_000, output=8_000, reasoning=7_000), tier="flex"),
        (4_000 * 0.55 + 8_000 * 2.20) / M,  # [O] 0.0022 + 0.0176 = 0.0198
    ),
    Case(
        "openai-gpt-5.5-long-context",
        openai_chat("gpt-5.5", Usage(input=300_000, output=2_000)),
        (300_000 * 10 + 2_000 * 45) / M,  # [O] over 272K, every token at the long rate: 3.0 + 0.09 = 3.09
    ),
    Case(
        "openai-gpt-5.5-long-context-cache-read",
        openai_chat("gpt-5.5", Usage(input=300_000, output=2_000, cache_read=200_000)),
        (100_000 * 10 + 200_000 * 1.00 + 2_000 * 45) / M,  # [O] 1.0 + 0.2 + 0.09 = 1.29
    ),
    Case(
        "openai-gpt-audio-in-and-out",
        openai_chat("gpt-audio", Usage(input=3_000, output=1_100, input_audio=2_000, output_audio=1_000)),
        # [O] text 1,000 in, 100 out; audio 2,000 in, 1,000 out: 0.0025 + 0.001 + 0.064 + 0.064 = 0.1315
        (1_000 * 2.50 + 100 * 10 + 2_000 * 32 + 1_000 * 64) / M,
    ),
    Case(
        "openai-gpt-image-1",
        openai_image("gpt-image-1", Usage(input=250, output=4_160, input_image=200)),
        (50 * 5 + 200 * 10 + 4_160 * 40) / M,  # [O] text in, image in, image out: 0.00025 + 0.002 + 0.1664
    ),
    Case(
        "openai-responses-web-search",
        openai_responses("gpt-5", Usage(input=3_000, output=500), web_searches=2),
        (3_000 * 1.25 + 500 * 10) / M + 2 * 10 / 1_000,  # [O] 0.00375 + 0.005 + two searches 0.02 = 0.02875
    ),
    Case(
        "openai-batch-gpt-5-cache-read",
        batch_result("gpt-5", Usage(input=10_000, output=1_000, cache_read=4_000)),
        (6_000 * 0.625 + 4_000 * 0.0625 + 1_000 * 5) / M,  # [O] batch: 0.00375 + 0.00025 + 0.005 = 0.009
    ),
    Case(
        "openai-batch-gpt-4o",
        batch_result("gpt-4o", Usage(input=10_000, output=1_000)),
        (10_000 * 1.25 + 1_000 * 5) / M,  # [O] batch: 0.0125 + 0.005 = 0.0175
    ),
    # -- Anthropic -----------------------------------------------------------------------------------------
    Case(
        "anthropic-sonnet-4.5",
        claude("claude-sonnet-4-5", Usage(input=20_000, output=1_000)),
        (20_000 * 3 + 1_000 * 15) / M,  # [A] 0.06 + 0.015 = 0.075
    ),
    Case(
        "anthropic-sonnet-4.5-cache-read-and-5m-write",
        claude("claude-sonnet-4-5", Usage(input=20_000, output=1_000, cache_read=12_000, cache_write=3_000)),
        (5_000 * 3 + 12_000 * 0.30 + 3_000 * 3.75 + 1_000 * 15) / M,  # [A] 0.015 + 0.0036 + 0.01125 + 0.015
    ),
    Case(
        "anthropic-sonnet-4.5-1h-write",
        claude("claude-sonnet-4-5", Usage(input=10_000, output=500, cache_write=8_000, cache_write_1h=8_000)),
        (2_000 * 3 + 8_000 * 6 + 500 * 15) / M,  # [A] an hour's cache: 0.006 + 0.048 + 0.0075 = 0.0615
    ),
    Case(
        "anthropic-sonnet-4.5-5m-and-1h-writes",
        claude("claude-sonnet-4-5", Usage(input=11_000, output=200, cache_write=10_000, cache_write_1h=4_000)),
        (1_000 * 3 + 6_000 * 3.75 + 4_000 * 6 + 200 * 15) / M,  # [A] 0.003 + 0.0225 + 0.024 + 0.003 = 0.0525
    ),
    Case(
        "anthropic-sonnet-4.5-long-context",
        claude("claude-sonnet-4-5", Usage(input=250_000, output=2_000)),
        (250_000 * 6 + 2_000 * 22.50) / M,  # [A] over 200K: 1.5 + 0.045 = 1.545
    ),
    Case(
        "anthropic-sonnet-4.5-long-context-cache-read",
        claude("claude-sonnet-4-5", Usage(input=300_000, output=1_000, cache_read=250_000)),
        (50_000 * 6 + 250_000 * 0.60 + 1_000 * 22.50) / M,  # [A] 0.3 + 0.15 + 0.0225 = 0.4725
    ),
    Case(
        "anthropic-sonnet-4.5-long-context-1h-write",
        claude("claude-sonnet-4-5", Usage(input=210_000, output=100, cache_write=200_000, cache_write_1h=200_000)),
        (10_000 * 6 + 200_000 * 12 + 100 * 22.50) / M,  # [A] 0.06 + 2.4 + 0.00225 = 2.46225
    ),
    Case(
        "anthropic-sonnet-4.5-batch-cache",
        claude(
            "claude-sonnet-4-5", Usage(input=10_000, output=2_000, cache_read=5_000, cache_write=1_000), tier="batch"
        ),
        # [A] a Message Batches result (usage.service_tier = batch), every rate halved:
        (4_000 * 1.50 + 5_000 * 0.15 + 1_000 * 1.875 + 2_000 * 7.50) / M,  # 0.006 + 0.00075 + 0.001875 + 0.015
    ),
    Case(
        "anthropic-haiku-4.5-batch",
        claude("claude-haiku-4-5", Usage(input=10_000, output=1_000), tier="batch"),
        (10_000 * 0.50 + 1_000 * 2.50) / M,  # [A] 0.005 + 0.0025 = 0.0075
    ),
    Case(
        "anthropic-haiku-4.5-web-search",
        claude("claude-haiku-4-5", Usage(input=2_000, output=300), web_searches=3),
        (2_000 * 1 + 300 * 5) / M + 3 * 10 / 1_000,  # [A] 0.002 + 0.0015 + three searches 0.03 = 0.0335
    ),
    Case(
        "anthropic-opus-4.5-thinking",
        claude("claude-opus-4-5", Usage(input=1_000, output=3_000)),
        (1_000 * 5 + 3_000 * 25) / M,  # [A] thinking is output: 0.005 + 0.075 = 0.08
    ),
    Case(
        "anthropic-opus-5-fast-mode",
        claude("claude-opus-5", Usage(input=2_000, output=1_000), speed="fast"),
        (2_000 * 10 + 1_000 * 50) / M,  # [AF] usage.speed = fast: 0.02 + 0.05 = 0.07
    ),
    # -- Gemini --------------------------------------------------------------------------------------------
    Case(
        "gemini-2.5-flash",
        gemini("gemini-2.5-flash", Usage(input=10_000, output=1_000)),
        (10_000 * 0.30 + 1_000 * 2.50) / M,  # [G] 0.003 + 0.0025 = 0.0055
    ),
    Case(
        "gemini-2.5-flash-thinking-stream",
        gemini("gemini-2.5-flash", Usage(input=1_000, output=5_000, reasoning=4_000), stream=True),
        (1_000 * 0.30 + 5_000 * 2.50) / M,  # [G] thoughts are output: 0.0003 + 0.0125 = 0.0128
    ),
    Case(
        "gemini-2.5-flash-audio-input",
        gemini("gemini-2.5-flash", Usage(input=10_000, output=500, input_audio=6_000)),
        (4_000 * 0.30 + 6_000 * 1.00 + 500 * 2.50) / M,  # [G] 0.0012 + 0.006 + 0.00125 = 0.00845
    ),
    Case(
        "gemini-2.5-flash-cached-audio",
        gemini(
            "gemini-2.5-flash", Usage(input=10_000, output=100, input_audio=10_000, cache_read=8_000, cache_audio=8_000)
        ),
        (2_000 * 1.00 + 8_000 * 0.10 + 100 * 2.50) / M,  # [G] 0.002 + 0.0008 + 0.00025 = 0.00305
    ),
    Case(
        "gemini-2.5-flash-flex",
        gemini("gemini-2.5-flash", Usage(input=10_000, output=1_000), tier="flex"),
        (10_000 * 0.30 + 1_000 * 2.50) / M * 0.5,  # [G][GF] half of 0.0055 = 0.00275
    ),
    Case(
        "gemini-2.5-pro-cache-read",
        gemini("gemini-2.5-pro", Usage(input=100_000, output=2_000, cache_read=50_000)),
        (50_000 * 1.25 + 50_000 * 0.125 + 2_000 * 10) / M,  # [G] 0.0625 + 0.00625 + 0.02 = 0.08875
    ),
    Case(
        "gemini-2.5-pro-long-context",
        gemini("gemini-2.5-pro", Usage(input=250_000, output=1_000)),
        (250_000 * 2.50 + 1_000 * 15) / M,  # [G] over 200K: 0.625 + 0.015 = 0.64
    ),
    Case(
        "gemini-2.5-pro-long-context-cache-read",
        gemini("gemini-2.5-pro", Usage(input=300_000, output=1_000, cache_read=200_000)),
        (100_000 * 2.50 + 200_000 * 0.25 + 1_000 * 15) / M,  # [G] 0.25 + 0.05 + 0.015 = 0.315
    ),
    Case(
        "gemini-2.5-pro-grounding",
        gemini("gemini-2.5-pro", Usage(input=1_000, output=500), grounding=3),
        (1_000 * 1.25 + 500 * 10) / M + 35 / 1_000,  # [G] one grounded prompt: 0.00125 + 0.005 + 0.035
    ),
    Case(
        "gemini-2.5-flash-image-output",
        gemini("gemini-2.5-flash-image", Usage(input=100, output=1_290, output_image=1_290)),
        (100 * 0.30 + 1_290 * 30) / M,  # [G] one image of 1,290 tokens: 0.00003 + 0.0387 = 0.03873
    ),
    # -- Vertex AI -----------------------------------------------------------------------------------------
    Case(
        "vertex-gemini-2.5-pro",
        vertex_gemini("gemini-2.5-pro", Usage(input=10_000, output=1_000)),
        (10_000 * 1.25 + 1_000 * 10) / M,  # [V] 0.0125 + 0.01 = 0.0225
    ),
    Case(
        "vertex-claude-sonnet-4.5-cache-read",
        vertex_claude("claude-sonnet-4-5@20250929", Usage(input=10_000, output=1_000, cache_read=5_000)),
        (5_000 * 3 + 5_000 * 0.30 + 1_000 * 15) / M,  # [V] 0.015 + 0.0015 + 0.015 = 0.0315
    ),
    Case(
        "vertex-claude-sonnet-4.5-long-context",
        vertex_claude("claude-sonnet-4-5@20250929", Usage(input=220_000, output=1_000)),
        (220_000 * 6 + 1_000 * 22.50) / M,  # [V] over 200K: 1.32 + 0.0225 = 1.3425
    ),
    # -- Amazon Bedrock ------------------------------------------------------------------------------------
    Case(
        "bedrock-claude-sonnet-4.5-global-1h-write",
        bedrock(
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            Usage(input=10_000, output=1_000, cache_write=8_000, cache_write_1h=8_000),
        ),
        (2_000 * 3 + 8_000 * 6 + 1_000 * 15) / M,  # [B] 0.006 + 0.048 + 0.015 = 0.069
    ),
    Case(
        "bedrock-claude-sonnet-4.5-regional-cache",
        bedrock(
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            Usage(input=10_000, output=500, cache_read=5_000, cache_write=1_000),
        ),
        (4_000 * 3.30 + 5_000 * 0.33 + 1_000 * 4.125 + 500 * 16.50) / M,  # [B] 0.0132 + 0.00165 + 0.004125 + 0.00825
    ),
    Case(
        "bedrock-nova-pro-cache-read",
        bedrock("amazon.nova-pro-v1:0", Usage(input=10_000, output=1_000, cache_read=5_000)),
        (5_000 * 0.80 + 5_000 * 0.20 + 1_000 * 3.20) / M,  # [B] 0.004 + 0.001 + 0.0032 = 0.0082
    ),
    Case(
        "bedrock-llama-3.3-70b",
        bedrock("meta.llama3-3-70b-instruct-v1:0", Usage(input=10_000, output=1_000)),
        (10_000 * 0.72 + 1_000 * 0.72) / M,  # [B] 0.0072 + 0.00072 = 0.00792
    ),
    # -- OpenAI-compatible providers ----------------------------------------------------------------------
    Case(
        "groq-llama-3.3-70b",
        openai_chat("llama-3.3-70b-versatile", Usage(input=10_000, output=1_000), provider="groq"),
        (10_000 * 0.59 + 1_000 * 0.79) / M,  # [Q] 0.0059 + 0.00079 = 0.00669
    ),
    Case(
        "xai-grok-4-reasoning-beside-completion",
        openai_chat(
            "grok-4",
            Usage(input=2_000, output=3_000, cache_read=1_000, reasoning=2_500),
            provider="x_ai",
            **{"x-standin-reasoning-apart": "1"},
        ),
        # [X] completion 500 + reasoning 2,500 billed as output: 0.003 + 0.00075 + 0.045 = 0.04875
        (1_000 * 3 + 1_000 * 0.75 + 3_000 * 15) / M,
    ),
    Case(
        "azure-gpt-4o-cache-read",
        openai_chat("gpt-4o", Usage(input=10_000, output=1_000, cache_read=2_000), provider="azure.ai.openai"),
        (8_000 * 2.50 + 2_000 * 1.25 + 1_000 * 10) / M,  # [Z] 0.02 + 0.0025 + 0.01 = 0.0325
    ),
]

# What the config's discount rules make of list price (the same collector; keys no other case uses).
DISCOUNTED_KEY, MARKUP_KEY, COMMITTED_KEY = make_key(), make_key(), make_key("sk-ant-")
CONFIG = f"""
[prices.models."acme-llm-1"]          # a model of our own: its price is ours
input = 2.0
output = 8.0

[[prices.discounts]]
name = "negotiated-openai"
provider = "openai"
api_key_id = "{api_key_id(DISCOUNTED_KEY)}"
discount = 0.2

[[prices.discounts]]
name = "gateway"
api_key_id = "{api_key_id(MARKUP_KEY)}"
markup = 0.05

[[prices.discounts]]
name = "committed-haiku"
model = "claude-haiku-4-5*"
api_key_id = "{api_key_id(COMMITTED_KEY)}"
rates = {{ input = 0.8, output = 4.0 }}
"""
PAID_CASES = [
    # name, call, key, list price, what is paid
    (
        "discount",
        openai_chat("gpt-4o", Usage(input=10_000, output=2_000)),
        DISCOUNTED_KEY,
        (10_000 * 2.50 + 2_000 * 10) / M,  # [O] 0.045 at list
        (10_000 * 2.50 + 2_000 * 10) / M * 0.8,  # 20% off: 0.036
    ),
    (
        "markup-with-fees",
        openai_responses("gpt-5", Usage(input=3_000, output=500), web_searches=2),
        MARKUP_KEY,
        (3_000 * 1.25 + 500 * 10) / M + 0.02,  # [O] 0.02875 at list
        ((3_000 * 1.25 + 500 * 10) / M + 0.02) * 1.05,  # 5% on all of it: 0.0301875
    ),
    (
        "committed-rate",
        claude("claude-haiku-4-5", Usage(input=10_000, output=1_000, cache_read=4_000)),
        COMMITTED_KEY,
        (6_000 * 1 + 4_000 * 0.10 + 1_000 * 5) / M,  # [A] 0.0114 at list
        (10_000 * 0.8 + 1_000 * 4.0) / M,  # the committed rates, the cache read at the input rate: 0.012
    ),
    (
        "custom-model",
        openai_chat("acme-llm-1", Usage(input=1_000_000, output=500_000)),
        make_key(),
        1_000_000 * 2.0 / M + 500_000 * 8.0 / M,  # the config's own price: 2 + 4 = 6
        6.0,
    ),
]


@pytest.fixture(scope="module")
def stored(standin, tmp_path_factory):
    """Every case called once, its spans exported into one `spendwatch up`; the stored rows by case."""
    base = tmp_path_factory.mktemp("invoice")
    compatible = {name: StandinServer().__enter__() for name in ("groq", "x_ai", "azure.ai.openai")}
    hosts = ",".join(f"{server.address}={name}" for name, server in compatible.items())
    previous = os.environ.get("SPENDWATCH_PROVIDER_HOSTS")
    os.environ["SPENDWATCH_PROVIDER_HOSTS"] = hosts
    (base / "spendwatch.toml").write_text(CONFIG)
    collector = Collector(
        base / "spendwatch.duckdb",
        base / "log",
        config=base / "spendwatch.toml",
        env={"SPENDWATCH_PRICES_URL": "off"},
        shared=True,
    ).start()
    span_of: dict[str, str] = {}
    try:
        spendwatch.instrument()
        exported = []
        calls = [(case.name, case.call, make_key()) for case in CASES]
        calls += [(name, call, key) for name, call, key, _, _ in PAID_CASES]
        for name, call, key in calls:
            EXPORTER.clear()
            call(Env(standin, compatible, key))
            finished = list(EXPORTER.get_finished_spans())
            mine = ours(EXPORTER) or [
                span for span in finished if span.instrumentation_scope.name == "acme.batch-results"
            ]
            assert len(mine) == 1, (name, [span.name for span in finished])
            span_of[name] = format(mine[0].context.span_id, "016x")
            exported += finished
        spendwatch.uninstrument()
        exporter = OTLPSpanExporter(endpoint=collector.http_endpoint + "/v1/traces", timeout=30)
        assert exporter.export(exported) == SpanExportResult.SUCCESS  # answered once committed
        columns, rows = query(collector.db, "SELECT * FROM llm_calls")
        by_span = {row[columns.index("span_id")]: dict(zip(columns, row, strict=True)) for row in rows}
        yield {name: by_span.get(span_id) for name, span_id in span_of.items()}
    finally:
        spendwatch.uninstrument()
        if previous is None:
            os.environ.pop("SPENDWATCH_PROVIDER_HOSTS", None)
        else:
            os.environ["SPENDWATCH_PROVIDER_HOSTS"] = previous
        assert collector.stop() == 0
        for server in compatible.values():
            server.__exit__(None, None, None)


def test_the_table_covers_every_family_and_dimension():
    assert len(CASES) >= 40
    names = " ".join(case.name for case in CASES)
    for family in ("openai-", "anthropic-", "gemini-", "vertex-", "bedrock-", "groq-", "xai-", "azure-"):
        assert family in names
    for dimension in ("flex", "priority", "batch", "long-context", "1h-write", "5m", "reasoning", "audio", "image",
                      "cache-read", "web-search", "grounding", "fast-mode"):  # fmt: skip
        assert dimension in names, dimension


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_stored_cost_matches_the_invoice(stored, case):
    row = stored[case.name]
    assert row is not None, f"{case.name}: no row counted for its span"
    assert row["cost_usd"] == pytest.approx(case.expected, rel=1e-3), case.name
    assert row["list_cost_usd"] == row["cost_usd"]  # no discount rule matches these keys
    assert row["price_data_version"].startswith("bundled-") and row["price_data_source"] == "bundled"


@pytest.mark.parametrize("name,listed,paid", [(n, listed, paid) for n, _, _, listed, paid in PAID_CASES])
def test_what_is_paid_beside_list_price(stored, name, listed, paid):
    row = stored[name]
    assert row["list_cost_usd"] == pytest.approx(listed, rel=1e-3)
    assert row["cost_usd"] == pytest.approx(paid, rel=1e-3)
    if name == "markup-with-fees":
        assert row["fees_usd"] == pytest.approx(0.02 * 1.05, rel=1e-3)  # the fees' part, marked up as the rest
    if name == "custom-model":
        assert (row["price_data_version"], row["price_data_source"]) == ("config", "[prices.models]")
