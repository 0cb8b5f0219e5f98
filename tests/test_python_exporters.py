"""OpenTelemetry Python's own OTLP exporters (HTTP protobuf, gRPC) against `spendwatch up`: every GenAI
span stored exactly once, and every export reported as a success to the SDK."""

from __future__ import annotations

import secrets
from collections import Counter

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from tests.collector import Collector

GENAI_SPANS, OTHER_SPANS = 300, 50


class Counting(SpanExporter):
    """The real exporter, with what each of its exports returned counted."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter
        self.results: Counter[SpanExportResult] = Counter()

    def export(self, spans) -> SpanExportResult:
        result = self.exporter.export(spans)
        self.results[result] += len(spans)
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_every_genai_span_from_the_python_exporters_is_stored_once(tmp_path, protocol):
    collector = Collector(tmp_path / "spendwatch.duckdb", tmp_path / "log").start()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        exporter = Counting(GrpcExporter(endpoint=collector.grpc_endpoint, insecure=True))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        exporter = Counting(HttpExporter(endpoint=collector.http_endpoint + "/v1/traces"))
    provider = TracerProvider(resource=Resource.create({"service.name": f"python-{protocol}"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=64, schedule_delay_millis=50))
    tracer = provider.get_tracer("python-exporter-test")
    tag = secrets.token_hex(4)
    for index in range(GENAI_SPANS + OTHER_SPANS):
        if index < GENAI_SPANS:
            attributes = {
                "gen_ai.provider.name": "openai",
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": f"{tag}-{index}",
                "gen_ai.usage.input_tokens": index,
            }
            tracer.start_span("chat", kind=SpanKind.CLIENT, attributes=attributes).end()
        else:
            tracer.start_span("GET /", kind=SpanKind.SERVER, attributes={"http.route": "/"}).end()
        if index % 100 == 99:
            provider.force_flush()
    provider.force_flush()
    provider.shutdown()
    assert exporter.results == {SpanExportResult.SUCCESS: GENAI_SPANS + OTHER_SPANS}
    assert collector.stop() == 0
    rows = collector.query(
        "SELECT request_model, count(*), min(input_tokens) FROM llm_call_spans "
        "WHERE request_model LIKE ? GROUP BY request_model",
        [f"{tag}-%"],
    )
    assert sorted((model, copies, tokens) for model, copies, tokens in rows) == sorted(
        (f"{tag}-{index}", 1, index) for index in range(GENAI_SPANS)
    )
