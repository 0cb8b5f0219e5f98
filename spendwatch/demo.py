"""`spendwatch demo`: a sample app's LLM calls, instrumented, against the built-in stand-in provider.

Offline and self-contained: several providers, models, keys, a stream without usage (estimated), and a
rate-limited call. Each call's span is read back and priced with genai-prices, as the collector will.
"""

from __future__ import annotations

import secrets
from typing import TextIO

from spendwatch import semconv
from spendwatch.standin import StandinServer, Usage

_CALLS = (
    # (path, body, usage, extra headers, key name)
    (
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
        Usage(input=1200, output=300, cache_read=1024),
        {},
        "backend",
    ),
    (
        "/v1/chat/completions",
        {
            "model": "gpt-4o",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Stream a haiku"}],
        },
        Usage(input=800, output=120),
        {},
        "backend",
    ),
    (
        "/v1/chat/completions",
        {
            "model": "gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "user", "content": "A stream that reports no usage"}],
        },
        Usage(),
        {},
        "batch-jobs",
    ),
    (
        "/v1/messages",
        {"model": "claude-sonnet-4-6", "max_tokens": 512, "messages": [{"role": "user", "content": "Hi"}]},
        Usage(input=5000, output=400, cache_read=4000, cache_write=500),
        {},
        "backend",
    ),
    (
        "/v1beta/models/gemini-2.5-flash:generateContent",
        {"contents": [{"parts": [{"text": "Hi"}]}]},
        Usage(input=900, output=700, reasoning=500),
        {},
        "batch-jobs",
    ),
    ("/v1/embeddings", {"model": "text-embedding-3-small", "input": ["a", "b", "c"]}, Usage(input=3000), {}, "backend"),
    (
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "Too fast"}]},
        Usage(),
        {"x-standin-status": "429"},
        "batch-jobs",
    ),
)


def run_demo(out: TextIO) -> int:
    import httpx2
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from spendwatch.collector.pricing import Pricer
    from spendwatch.instrumentation import SpendwatchInstrumentor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = SpendwatchInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    keys = {name: "sk-demo-" + secrets.token_urlsafe(24) for name in ("backend", "batch-jobs")}
    try:
        with StandinServer() as standin, httpx2.Client(base_url=standin.base_url) as client:
            for path, body, usage, headers, key_name in _CALLS:
                request_headers = {"authorization": f"Bearer {keys[key_name]}", "x-standin-usage": usage.header()}
                with client.stream("POST", path, json=body, headers={**request_headers, **headers}) as response:
                    response.read()
    finally:
        instrumentor.uninstrument()

    from spendwatch.instrumentation.keys import api_key_id

    names = {api_key_id(key): name for name, key in keys.items()}
    print("spendwatch demo: one span per LLM call, priced (no prompt or key leaves the app)\n", file=out)
    header = f"{'provider':<12} {'model':<24} {'key':<11} {'in':>6} {'out':>5} {'cached':>6} {'cost USD':>10}  note"
    print(header, file=out)
    print("-" * len(header), file=out)
    total = 0.0
    for span in exporter.get_finished_spans():
        attributes = span.attributes or {}
        provider_name = attributes.get(semconv.GEN_AI_PROVIDER_NAME, "")
        model = attributes.get(semconv.GEN_AI_RESPONSE_MODEL) or attributes.get(semconv.GEN_AI_REQUEST_MODEL)
        input_tokens = attributes.get(semconv.GEN_AI_USAGE_INPUT_TOKENS)
        output_tokens = attributes.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS)
        cached = attributes.get(semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)
        cost = Pricer().price(
            provider_name,
            (model,),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cached,
            cache_write_tokens=attributes.get(semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS),
        )
        total += cost or 0.0
        note = ""
        if attributes.get(semconv.ERROR_TYPE):
            note = f"error {attributes[semconv.ERROR_TYPE]}"
        elif attributes.get(semconv.SPENDWATCH_USAGE_ESTIMATED):
            note = "usage estimated (stream without usage)"
        key = names.get(attributes.get(semconv.SPENDWATCH_API_KEY_ID, ""), "")
        print(
            f"{provider_name:<12} {model or '':<24} {key:<11} {_number(input_tokens):>6} {_number(output_tokens):>5} "
            f"{_number(cached):>6} {'' if cost is None else f'{cost:.6f}':>10}  {note}",
            file=out,
        )
    print(f"\n{len(exporter.get_finished_spans())} calls, ${total:.6f} in all.", file=out)
    return 0


def _number(value: object) -> str:
    return "" if value is None else str(value)
