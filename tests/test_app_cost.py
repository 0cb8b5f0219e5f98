"""The cost of a call, to the app: `spendwatch.last_call().cost_usd` and the span's `gen_ai.usage.cost.amount`
are what the daemon stores for the call — its price data, the config's own prices and the discount rule
that matches the key — read from the daemon's rate cards, with no network call on the request path.
"""

from __future__ import annotations

import time

import anthropic
import openai
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spendwatch
from spendwatch import semconv
from spendwatch.collector.forward import with_costs
from spendwatch.instrumentation.keys import api_key_id
from tests.collector import Collector
from tests.conftest import make_key, ours

CONFIG = """
[prices.models."acme-llm-1"]
input = 2.0
output = 8.0
cache_read = 0.2

[[prices.discounts]]
name = "key-a-contract"
api_key_id = "{key_a}"
discount = 0.2

[[prices.discounts]]
name = "committed-haiku"
provider = "anthropic"
model = "claude-haiku-4-5*"
rates = {{ input = 0.5, output = 2.5, cache_read = 0.05 }}
"""


@pytest.fixture
def app(monkeypatch):
    """spendwatch instrumented in this process, exporting to a daemon and keeping its spans in memory."""
    providers = []

    def instrument(collector_url: str, export: bool = True) -> InMemorySpanExporter:
        monkeypatch.setenv("SPENDWATCH_BUDGETS_URL", collector_url + "/v1/spendwatch/budgets")
        memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
        if export:
            provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector_url + "/v1/traces")))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        providers.append(provider)
        spendwatch.instrument(tracer_provider=provider)
        return memory

    yield instrument
    spendwatch.uninstrument()
    for provider in providers:
        provider.shutdown()


def test_the_app_reads_what_each_call_cost_as_the_daemon_stores_it(tmp_path, standin, app):
    key_a, key_b, key_c = make_key(), make_key(), make_key("sk-ant-")
    config = tmp_path / "spendwatch.toml"
    config.write_text(CONFIG.format(key_a=api_key_id(key_a)))
    collector = Collector(tmp_path / "spendwatch.duckdb", tmp_path / "log", config=config).start()
    memory = app(collector.http_endpoint)
    openai_a = openai.OpenAI(base_url=f"{standin.base_url}/v1", api_key=key_a, max_retries=0)
    openai_b = openai.OpenAI(base_url=f"{standin.base_url}/v1", api_key=key_b, max_retries=0)
    claude = anthropic.Anthropic(base_url=standin.base_url, api_key=key_c, max_retries=0)
    hi = [{"role": "user", "content": "hi"}]

    def chat(client, model, usage):
        client.chat.completions.create(model=model, messages=hi, extra_headers={"x-standin-usage": usage})

    def stream(client, usage):
        chunks = client.chat.completions.create(
            model="gpt-4o-mini", messages=hi, stream=True, stream_options={"include_usage": True},
            extra_headers={"x-standin-usage": usage},
        )  # fmt: skip
        for _ in chunks:
            pass

    def message(usage):
        claude.messages.create(
            model="claude-haiku-4-5", max_tokens=50, messages=hi, extra_headers={"x-standin-usage": usage}
        )

    calls = {  # one of each kind: a discounted key, list price, the config's own model, committed rates, a stream
        "key a, 20% off": lambda: chat(openai_a, "gpt-4o-mini", "input=1200,output=340,cache_read=1024"),
        "key b, list price": lambda: chat(openai_b, "gpt-4o-mini", "input=1200,output=340,cache_read=1024"),
        "the config's model": lambda: chat(openai_b, "acme-llm-1", "input=5000,output=700,cache_read=4096"),
        "committed rates": lambda: message("input=3000,output=250,cache_read=2048"),
        "a stream": lambda: stream(openai_b, "input=777,output=99"),
    }
    first = {}
    for name, call in calls.items():
        call()
        first[name] = spendwatch.last_call()
    assert all(record is not None for record in first.values())
    deadline = time.monotonic() + 15
    costs: dict = {}
    while len(costs) < len(calls):  # the first call of a kind has its card asked for; it comes in milliseconds
        assert time.monotonic() < deadline, f"no cost in the app for {sorted(set(calls) - set(costs))}"
        for name, call in calls.items():
            call()
            record = spendwatch.last_call()
            if record.cost_usd is not None:
                costs[name] = record
        time.sleep(0.05)
    # a price that is more than per-token rates (cache writes by lifetime) is the daemon's alone
    message("input=3000,output=250,cache_read=2048,cache_write=512")
    time.sleep(0.5)
    message("input=3000,output=250,cache_read=2048,cache_write=512")
    alone = spendwatch.last_call()
    assert alone.cache_write_tokens == 512 and alone.cost_usd is None
    spans = {span.context.span_id: span for span in ours(memory)}
    for name, record in costs.items():  # the span says what last_call() says
        attributes = spans[int(record.span_id, 16)].attributes
        assert attributes[semconv.GEN_AI_USAGE_COST_AMOUNT] == record.cost_usd, name
        assert attributes[semconv.GEN_AI_USAGE_COST_CURRENCY] == "USD"
    ids = {record.span_id: name for name, record in costs.items()}
    collector.wait_until("spans_stored", len(spans))
    assert collector.stop() == 0
    stored = dict(
        collector.query("SELECT span_id, cost_usd FROM llm_calls WHERE span_id IN (SELECT unnest(?))", [list(ids)])
    )
    assert {ids[span]: cost for span, cost in stored.items()} == {name: r.cost_usd for name, r in costs.items()}
    assert collector.query("SELECT cost_usd FROM llm_calls WHERE span_id = ?", [alone.span_id])[0][0] > 0
    # and the figures are the contract's, not one price for all: the discounted key pays 80% of list price
    assert costs["key a, 20% off"].cost_usd == pytest.approx(costs["key b, list price"].cost_usd * 0.8, rel=1e-12)
    assert costs["the config's model"].cost_usd == pytest.approx((904 * 2.0 + 4096 * 0.2 + 700 * 8.0) / 1e6)
    assert costs["committed rates"].cost_usd == pytest.approx((952 * 0.5 + 2048 * 0.05 + 250 * 2.5) / 1e6)


def test_without_the_daemon_calls_go_through_and_say_no_cost(tmp_path, standin, app):
    with socket_closed() as url:
        memory = app(url, export=False)
        client = openai.OpenAI(base_url=f"{standin.base_url}/v1", api_key=make_key(), max_retries=0)
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            time.sleep(0.05)  # the background read has been tried, and refused
            record = spendwatch.last_call()
            assert record is not None and record.input_tokens and record.cost_usd is None
        assert all(semconv.GEN_AI_USAGE_COST_AMOUNT not in span.attributes for span in ours(memory))


def test_a_forwarded_span_carries_the_stored_cost_and_only_a_counted_one():
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for number, app_cost in ((1, 9.99), (2, 7.77)):
        span = spans.add(trace_id=bytes(16), span_id=number.to_bytes(8, "big"), name="chat")
        pair = span.attributes.add(key=semconv.GEN_AI_USAGE_COST_AMOUNT)
        pair.value.double_value = app_cost
        span.attributes.add(key="gen_ai.request.model").value.string_value = "gpt-4o-mini"
    with_costs(request, {(bytes(16), (1).to_bytes(8, "big")): 0.25})
    counted, superseded = ({pair.key: pair.value for pair in span.attributes} for span in spans)
    assert counted[semconv.GEN_AI_USAGE_COST_AMOUNT].double_value == 0.25  # the store's figure, not the app's
    assert counted[semconv.GEN_AI_USAGE_COST_SOURCE].string_value == semconv.COST_SOURCE_LOCAL
    assert semconv.GEN_AI_USAGE_COST_AMOUNT not in superseded and "gen_ai.request.model" in superseded


class socket_closed:
    """A loopback address nothing listens on: a daemon that is down."""

    def __enter__(self) -> str:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        pass
