"""The GenAI client metrics (`gen_ai.client.token.usage`, `gen_ai.client.operation.duration`) from the real
openai SDK's calls against the stand-in, through the app's own meter provider: names, units, attributes
and bucket boundaries as the semantic conventions advise, equal to what the spans and the stand-in say."""

from __future__ import annotations

import openai
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import spendwatch
from spendwatch.instrumentation.metrics import DURATION_BUCKETS, TOKEN_BUCKETS
from spendwatch.standin import Usage
from tests.conftest import EXPORTER, make_key, ours

USAGE = Usage(input=120, output=40, cache_read=64)


@pytest.fixture
def reader():
    reader = InMemoryMetricReader()
    EXPORTER.clear()
    spendwatch.instrument(meter_provider=MeterProvider(metric_readers=[reader]))
    yield reader
    spendwatch.uninstrument()


def points(reader) -> dict[str, tuple]:
    """{metric name: (metric, [data points])} of everything recorded so far."""
    found = {}
    for resource_metrics in reader.get_metrics_data().resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            assert scope_metrics.scope.name == "spendwatch.instrumentation"
            for metric in scope_metrics.metrics:
                found[metric.name] = (metric, list(metric.data.data_points))
    return found


def test_token_usage_and_duration_follow_the_conventions(reader, standin):
    key = make_key()
    client = openai.OpenAI(base_url=f"{standin.base_url}/v1", api_key=key, max_retries=0)
    for _ in range(2):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Say hello"}],
            extra_headers={"x-standin-usage": USAGE.header()},
        )
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-standin-status": "429"}
        )
    stream = client.chat.completions.create(  # no include_usage: spendwatch estimates, and says so
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 400}], stream=True
    )
    for _ in stream:
        pass
    found = points(reader)
    usage, token_points = found["gen_ai.client.token.usage"]
    duration, duration_points = found["gen_ai.client.operation.duration"]
    assert (usage.unit, duration.unit) == ("{token}", "s")
    assert all(tuple(point.explicit_bounds) == TOKEN_BUCKETS for point in token_points)
    assert all(tuple(point.explicit_bounds) == DURATION_BUCKETS for point in duration_points)
    base = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini",
        "server.address": "127.0.0.1",
        "server.port": standin.server_address[1],
    }
    by_attributes = {frozenset(point.attributes.items()): point for point in token_points}
    reported_input = by_attributes[frozenset({**base, "gen_ai.token.type": "input"}.items())]
    reported_output = by_attributes[frozenset({**base, "gen_ai.token.type": "output"}.items())]
    assert (reported_input.count, reported_input.sum) == (2, 240)  # input includes the cached tokens
    assert (reported_output.count, reported_output.sum) == (2, 80)
    estimated = [point for point in token_points if point.attributes.get("spendwatch.usage.estimated")]
    assert {point.attributes["gen_ai.token.type"] for point in estimated} == {"input", "output"}
    (stream_span,) = [span for span in ours(EXPORTER) if span.attributes.get("spendwatch.usage.estimated")]
    estimated_input = next(point for point in estimated if point.attributes["gen_ai.token.type"] == "input")
    assert estimated_input.sum == stream_span.attributes["gen_ai.usage.input_tokens"]
    # every call has a duration; the failed one says how it failed, and has no tokens
    assert sum(point.count for point in duration_points) == 4 == len(ours(EXPORTER))
    (failed,) = [point for point in duration_points if "error.type" in point.attributes]
    assert failed.attributes["error.type"] == ours(EXPORTER)[2].attributes["error.type"]
    assert failed.attributes["gen_ai.request.model"] == "gpt-4o"
    assert not [point for point in token_points if point.attributes.get("gen_ai.request.model") == "gpt-4o"]
    # the key id stays on the span: a metric label set is a time series for ever
    assert not [point for point in token_points + duration_points if any("fingerprint" in k for k in point.attributes)]
    assert all(0 < point.sum < 10 for point in duration_points)


def test_without_a_meter_provider_the_calls_and_spans_are_as_ever(spans, standin):
    """The global provider is the API's proxy: nothing recorded anywhere, the span unchanged."""
    client = openai.OpenAI(base_url=f"{standin.base_url}/v1", api_key=make_key(), max_retries=0)
    headers = {"x-standin-usage": USAGE.header()}
    messages = [{"role": "user", "content": "hi"}]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages, extra_headers=headers)
    (span,) = ours(spans)
    assert span.attributes["gen_ai.usage.input_tokens"] == 120
