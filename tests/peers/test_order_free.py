"""Spans of one call arriving in any order, one export each, minutes apart or across a restart of the
daemon, end in the same rows — and no query in between sees a call twice.

The spans are real: the anthropic SDK's own, OpenLLMetry's anthropic instrumentor's (its siblings, or roots
of other traces) and spendwatch's, captured in memory from an app run against the stand-in, then replayed
to `spendwatch up` one span per export, in the order they ended and reversed, with the daemon restarted
half-way. `spendwatch explain` then shows for each call which spans were merged and why.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.collector import Collector, run_cli
from tests.conftest import make_key

CAPTURE = """
import os, sys
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider(resource=Resource.create({"service.name": "replayed"}))
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
AnthropicInstrumentor().instrument()
import spendwatch
spendwatch.instrument()
import anthropic
client = anthropic.Anthropic(base_url=os.environ["STANDIN"], api_key=os.environ["KEY"], max_retries=0)
messages = [{"role": "user", "content": "hello"}]
with trace.get_tracer("app").start_as_current_span("request"):
    client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=messages,
                           extra_headers={"x-standin-usage": "input=11,output=3"})
client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=messages,
                       extra_headers={"x-standin-usage": "input=12,output=4"})
with open(sys.argv[1], "wb") as out:
    for span in exporter.get_finished_spans():
        data = encode_spans([span]).SerializeToString()
        out.write(len(data).to_bytes(4, "big") + data)
"""


def captured_exports(tmp_path: Path, standin) -> list[bytes]:
    script, output = tmp_path / "capture.py", tmp_path / "spans.bin"
    script.write_text(CAPTURE)
    env = {"STANDIN": standin.base_url, "KEY": make_key("sk-ant-")}
    result = subprocess.run(
        [sys.executable, str(script), str(output)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**__import__("os").environ, **env},
    )
    assert result.returncode == 0, result.stderr
    data, exports = output.read_bytes(), []
    while data:
        size = int.from_bytes(data[:4], "big")
        exports.append(data[4 : 4 + size])
        data = data[4 + size :]
    return exports


def replay(tmp_path: Path, exports: list[bytes]) -> tuple[list, list, str]:
    tmp_path.mkdir()
    db = tmp_path / "spendwatch.duckdb"
    collector = Collector(db, tmp_path / "collector.log").start()
    for index, export in enumerate(exports):
        if index == len(exports) // 2:  # a restart between the spans of one call
            assert collector.stop() == 0
            collector = Collector(db, tmp_path / "collector.log").start()
        answer = httpx.post(
            f"{collector.http_endpoint}/v1/traces", content=export, headers={"content-type": "application/x-protobuf"}
        )
        assert answer.status_code == 200
        seen = run_cli("query", "--db", str(db), "--format", "json",
                       "SELECT response_id, count(*) AS n FROM llm_calls GROUP BY ALL")  # fmt: skip
        assert seen.returncode == 0, seen.stderr
        assert all(row["n"] == 1 for row in json.loads(seen.stdout)), seen.stdout  # never a call twice
    explained = run_cli("explain", "--db", str(db), trace_of(exports[0]))
    assert explained.returncode == 0, explained.stderr
    assert collector.stop() == 0
    calls = collector.query(
        "SELECT response_id, input_tokens, output_tokens, api_key_id IS NOT NULL, span_id FROM llm_calls ORDER BY 1"
    )
    spans = collector.query(
        "SELECT span_id, superseded, superseded_by, supersede_rule FROM llm_call_spans ORDER BY span_id"
    )
    return calls, spans, explained.stdout


def trace_of(export: bytes) -> str:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.ParseFromString(export)
    return request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()


def test_any_order_one_export_per_span_and_a_restart_give_the_same_calls(tmp_path, standin):
    exports = captured_exports(tmp_path, standin)
    model_exports = [export for export in exports if b"gen_ai" in export]
    assert len(model_exports) == 6  # two calls, each seen by the SDK, by OpenLLMetry and by spendwatch
    forward = replay(tmp_path / "forward", exports)
    backward = replay(tmp_path / "backward", list(reversed(exports)))
    assert forward[0] == backward[0] and forward[1] == backward[1]
    calls, spans, explained = forward
    assert [call[1:4] for call in calls] == [(11, 3, True), (12, 4, True)]  # spendwatch's spans are the rows
    assert sum(1 for span in spans if span[1]) == 4 and all(span[2] and span[3] for span in spans if span[1])
    assert "merged into" in explained and "call(s) counted" in explained and "response id" in explained
