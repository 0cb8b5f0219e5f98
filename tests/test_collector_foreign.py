"""Spans from other semconv instrumentations, hand-built, over OTLP/JSON and protobuf: stored once, with
no content and no secrets; agent and tool spans are not model calls."""

from __future__ import annotations

import gzip
import json
import secrets

import grpc
import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.collector import Collector

CONTENT = "CONTENT-CANARY-" + secrets.token_hex(6)
SECRET = "sk-" + "live" + secrets.token_hex(16)
NS = 1_764_000_000_000_000_000


def attribute(key, value):
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, list):
        return {"key": key, "value": {"arrayValue": {"values": [{"stringValue": item} for item in value]}}}
    return {"key": key, "value": {"stringValue": value}}


def span(trace_id, span_id, parent, name, attributes, start=0, end=1_000_000_000, kind=3):
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(NS + start),
        "endTimeUnixNano": str(NS + end),
        "attributes": [attribute(key, value) for key, value in attributes.items()],
    }


def export(trace_id, scope, spans, service="agents"):
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [attribute("service.name", service)]},
                "scopeSpans": [{"scope": {"name": scope}, "spans": spans}],
            }
        ]
    }


def agent_trace(trace_id):
    """An agent span summing its children's usage, a tool span, and two model calls with content."""
    agent, tool, first, second = (secrets.token_hex(8) for _ in range(4))
    return export(
        trace_id,
        "opentelemetry.instrumentation.openai_agents",
        [
            span(
                trace_id,
                agent,
                "",
                "invoke_agent planner",
                {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.usage.input_tokens": 300,
                    "gen_ai.usage.output_tokens": 30,
                },
                end=5_000_000_000,
            ),
            span(
                trace_id,
                tool,
                agent,
                "execute_tool search",
                {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.tool.call.arguments": CONTENT,
                },
            ),
            span(
                trace_id,
                first,
                agent,
                "chat gpt-4o",
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o-2024-11-20",
                    "gen_ai.usage.input_tokens": 200,
                    "gen_ai.usage.output_tokens": 20,
                    "gen_ai.input.messages": json.dumps([{"role": "user", "content": CONTENT}]),
                    "gen_ai.output.messages": CONTENT,
                    "gen_ai.system_instructions": CONTENT,
                    "gen_ai.response.finish_reasons": ["stop"],
                    "http.request.header.authorization": ["Bearer " + SECRET],
                    "app.note": "called with " + SECRET,
                    "gen_ai.request.temperature": "0.2",
                },
            ),
            span(
                trace_id,
                second,
                agent,
                "chat",
                {  # the deprecated gen_ai.system, the SDK's cache-write name
                    "gen_ai.system": "anthropic",
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "claude-haiku-4-5",
                    "gen_ai.usage.input_tokens": 100,
                    "gen_ai.usage.output_tokens": 10,
                    "gen_ai.usage.cache_read.input_tokens": 50,
                    "gen_ai.usage.cache_write.input_tokens": 25,
                    "gen_ai.prompt.0.content": CONTENT,
                    "gen_ai.completion.0.content": CONTENT,
                },
                start=2_000_000_000,
                end=3_000_000_000,
            ),
        ],
    )


def openllmetry_wrapping_openai_v2(trace_id):
    """Two instrumentations of one call, nested: the inner span is the call, the outer a wrapper."""
    outer, inner = secrets.token_hex(8), secrets.token_hex(8)
    return export(
        trace_id,
        "opentelemetry.instrumentation.openai.v1",
        [
            span(
                trace_id,
                outer,
                "",
                "openai.chat",
                {
                    "gen_ai.system": "openai",
                    "llm.request.type": "chat",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.prompt_tokens": 40,
                    "gen_ai.usage.completion_tokens": 4,
                    "llm.prompts.0.content": CONTENT,
                    "traceloop.entity.input": CONTENT,
                },
            ),
            span(
                trace_id,
                inner,
                outer,
                "chat gpt-4o-mini",
                {
                    "gen_ai.provider.name": "openai",
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 40,
                    "gen_ai.usage.output_tokens": 4,
                },
                start=1000,
                end=999_000_000,
            ),
        ],
    )


@pytest.fixture
def collector(tmp_path):
    running = Collector(tmp_path / "spendwatch.duckdb", tmp_path / "collector.log").start()
    yield running
    if running.process.poll() is None:
        running.stop()


def test_foreign_spans_over_json_protobuf_and_grpc(collector):
    json_trace, protobuf_trace, grpc_trace, nested_trace = (secrets.token_hex(16) for _ in range(4))
    base = collector.http_endpoint
    with httpx.Client(base_url=base) as client:
        json_export = agent_trace(json_trace)
        answer = client.post("/v1/traces", json=json_export)
        assert (answer.status_code, answer.headers["content-type"]) == (200, "application/json")
        message = json_format.ParseDict(
            _base64_ids(agent_trace(protobuf_trace)), trace_service_pb2.ExportTraceServiceRequest()
        )
        answer = client.post(
            "/v1/traces",
            content=gzip.compress(message.SerializeToString()),
            headers={"content-type": "application/x-protobuf", "content-encoding": "gzip"},
        )
        assert (answer.status_code, answer.headers["content-type"]) == (200, "application/x-protobuf")
        client.post("/v1/traces", json=openllmetry_wrapping_openai_v2(nested_trace))
        for _ in range(2):  # an exporter's retry: the same spans again
            assert client.post("/v1/traces", json=json_export).status_code == 200
    with grpc.insecure_channel(f"127.0.0.1:{collector.info['grpc_port']}") as channel:
        grpc_message = json_format.ParseDict(
            _base64_ids(agent_trace(grpc_trace)), trace_service_pb2.ExportTraceServiceRequest()
        )
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(grpc_message, timeout=10)
    assert collector.stop() == 0

    rows = collector.query(
        "SELECT trace_id, provider, request_model, response_model, input_tokens, output_tokens, cache_read_tokens,"
        " cache_write_tokens, finish_reasons, service_name, attributes FROM llm_calls ORDER BY trace_id, start_time"
    )
    by_trace: dict[str, list] = {}
    for row in rows:
        by_trace.setdefault(row[0], []).append(row)
    for trace_id in (json_trace, protobuf_trace, grpc_trace):
        assert len(by_trace[trace_id]) == 2, by_trace[trace_id]
        chat, claude = by_trace[trace_id]  # the agent and the tool span are not model calls; nothing twice
        assert chat[1:6] == ("openai", "gpt-4o", "gpt-4o-2024-11-20", 200, 20)
        assert chat[8] == ["stop"] and chat[9] == "agents"
        assert claude[1:8] == ("anthropic", "claude-haiku-4-5", None, 100, 10, 50, 25)
        attributes = json.loads(chat[10])
        assert attributes["gen_ai.request.temperature"] == "0.2"
        # not on the allow-list: dropped, and only their names counted
        assert "http.request.header.authorization" not in attributes and "app.note" not in attributes
    (nested,) = by_trace[nested_trace]
    assert nested[1:6] == ("openai", "gpt-4o-mini", None, 40, 4)
    ids = {row[0] for row in collector.query("SELECT trace_id FROM llm_call_spans")}
    assert {json_trace, protobuf_trace, grpc_trace, nested_trace} <= ids  # hex ids as sent, not base64-mangled
    stored = repr(collector.query("SELECT * FROM llm_call_spans"))
    assert CONTENT not in stored and SECRET not in stored
    dropped = dict(collector.query("SELECT name, spans FROM dropped_attributes"))
    # per span received: the JSON export came three times (two retries), protobuf and gRPC once each
    assert dropped["http.request.header.authorization"] == 5 and dropped["app.note"] == 5
    assert dropped["gen_ai.input.messages"] == 5 and CONTENT not in repr(dropped)
    assert CONTENT not in collector.log.read_text()


def _base64_ids(document):
    import base64

    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for item in scope_spans["spans"]:
                for field in ("traceId", "spanId", "parentSpanId"):
                    item[field] = base64.b64encode(bytes.fromhex(item[field])).decode()
    return document


def test_bad_bodies_get_4xx_and_the_daemon_keeps_running(collector):
    with httpx.Client(base_url=collector.http_endpoint) as client:
        assert (
            client.post(
                "/v1/traces", content=b"\x00garbage", headers={"content-type": "application/x-protobuf"}
            ).status_code
            == 400
        )
        assert (
            client.post("/v1/traces", content=b"{not json", headers={"content-type": "application/json"}).status_code
            == 400
        )
        assert client.post("/v1/traces", content=b"x", headers={"content-type": "text/plain"}).status_code == 415
        assert (
            client.post(
                "/v1/traces", content=b"x", headers={"content-type": "application/json", "content-encoding": "br"}
            ).status_code
            == 415
        )
        assert (
            client.post("/v1/metrics", content=b"", headers={"content-type": "application/x-protobuf"}).status_code
            == 200
        )
        assert client.get("/health").status_code == 200
        good = client.post("/v1/traces", json=openllmetry_wrapping_openai_v2(secrets.token_hex(16)))
        assert good.status_code == 200
    assert collector.stop() == 0
    assert collector.query("SELECT count(*) FROM llm_calls") == [(1,)]
