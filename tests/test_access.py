"""Access and operations: ingest tokens, file modes, health and readiness, counters, SIGHUP, JSON logs."""

from __future__ import annotations

import json
import os
import secrets
import signal
import stat
import time

import grpc
import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.collector import Collector, run_cli
from tests.test_bad_input import valid_export


def test_listening_beyond_loopback_needs_a_token(tmp_path):
    result = run_cli(
        "up", "--db", str(tmp_path / "db.duckdb"), "--host", "0.0.0.0", "--http-port", "0", "--grpc-port", "0"
    )
    assert result.returncode == 2 and "refusing to listen on 0.0.0.0 without an ingest token" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "db.duckdb").exists()


@pytest.fixture
def guarded(tmp_path):
    token = "ingest-" + secrets.token_urlsafe(16)
    collector = Collector(
        tmp_path / "spendwatch.duckdb", tmp_path / "log", extra=("--host", "0.0.0.0", "--ingest-token", token)
    ).start()
    yield collector, token
    if collector.process.poll() is None:
        collector.stop()


def test_ingest_token_over_http(guarded):
    collector, token = guarded
    url = f"http://127.0.0.1:{collector.info['http_port']}/v1/traces"
    assert httpx.post(url, json=valid_export()).status_code == 401
    assert httpx.post(url, json=valid_export(), headers={"authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(url, json=valid_export(), headers={"authorization": f"Bearer {token}"}).status_code == 200
    assert httpx.get(f"http://127.0.0.1:{collector.info['http_port']}/health").status_code == 200
    assert collector.stop() == 0
    assert token not in collector.log.read_text()  # never logged
    assert collector.query("SELECT count(*) FROM llm_calls") == [(1,)]


def test_ingest_token_over_grpc(guarded):
    collector, token = guarded
    message = json_format.ParseDict(_base64(valid_export()), trace_service_pb2.ExportTraceServiceRequest())
    with grpc.insecure_channel(f"127.0.0.1:{collector.info['grpc_port']}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        for metadata in ((), (("authorization", "Bearer wrong"),)):
            with pytest.raises(grpc.RpcError) as refused:
                stub.Export(message, metadata=metadata, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stub.Export(message, metadata=(("authorization", f"Bearer {token}"),), timeout=10)
    assert collector.stop() == 0
    assert collector.query("SELECT count(*) FROM llm_calls") == [(1,)]


def _base64(document):
    import base64

    for item in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for field in ("traceId", "spanId"):
            item[field] = base64.b64encode(bytes.fromhex(item[field])).decode()
    return document


def test_files_are_private_health_ready_and_counters(tmp_path):
    collector = Collector(tmp_path / "data" / "spendwatch.duckdb", tmp_path / "log").start()
    daemon_file = collector.db.with_name(collector.db.name + ".daemon.json")
    assert stat.S_IMODE(daemon_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(collector.db.parent.stat().st_mode) == 0o700
    with httpx.Client(base_url=collector.http_endpoint) as client:
        assert client.get("/health").text == "ok\n"
        assert client.get("/ready").status_code == 200
        client.post("/v1/traces", json=valid_export())
        client.post(
            "/v1/traces",
            json={
                "resourceSpans": [
                    {
                        "scopeSpans": [
                            {
                                "spans": [
                                    {"traceId": "ab", "spanId": "cd", "name": "bad ids", "attributes": []},
                                    {
                                        "traceId": secrets.token_hex(16),
                                        "spanId": secrets.token_hex(8),
                                        "name": "GET /",
                                        "attributes": [],
                                    },
                                ]
                            }
                        ]
                    }
                ]
            },
        )
    status = json.loads(run_cli("status", "--db", str(collector.db), "--format", "json").stdout)
    assert (status["spans_received"], status["spans_stored"], status["spans_dropped"], status["spans_rejected"]) == (
        3,
        1,
        1,
        1,
    )
    assert status["duplicates_ignored"] == 0 and status["alert_deliveries_failing"] == 0
    assert collector.stop() == 0


def test_sighup_reloads_rules_and_refuses_a_bad_config(tmp_path):
    config = tmp_path / "spendwatch.toml"
    config.write_text('[notifiers]\nops = "json://127.0.0.1:9/x"\n')
    collector = Collector(
        tmp_path / "spendwatch.duckdb", tmp_path / "log", config=config, extra=("--log-format", "json")
    ).start()

    def rules_loaded():
        return json.loads(run_cli("status", "--db", str(collector.db), "--format", "json").stdout)["rules_loaded"]

    assert rules_loaded() == 0
    config.write_text(config.read_text() + '[[rules]]\nname = "b"\nkind = "budget"\nlimit_usd = 5\nnotify = ["ops"]\n')
    os.kill(collector.process.pid, signal.SIGHUP)
    _wait_for(lambda: rules_loaded() == 1)
    config.write_text('[[rules]]\nname = "broken"\nkind = "budget"\n')  # no limit, no notifier
    os.kill(collector.process.pid, signal.SIGHUP)
    _wait_for(lambda: "reload refused" in collector.log.read_text())
    assert rules_loaded() == 1  # the old configuration stays
    with httpx.Client(base_url=collector.http_endpoint) as client:  # ingest never paused
        assert client.post("/v1/traces", json=valid_export()).status_code == 200
    assert collector.stop() == 0
    lines = [json.loads(line) for line in collector.log.read_text().splitlines() if line.startswith("{")]
    assert any("limit_usd" in line["message"] for line in lines if line["level"] == "error")
    assert {"time", "level", "logger", "message"} <= set(lines[0])


def _wait_for(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_run_sends_the_ingest_token():
    from spendwatch.run import run_environment

    env = run_environment(["app"], "http://127.0.0.1:4317", {"SPENDWATCH_INGEST_TOKEN": "t0ken"})
    assert env["OTEL_EXPORTER_OTLP_HEADERS"] == "authorization=Bearer%20t0ken"
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in run_environment(["app"], "http://127.0.0.1:4317", {})


def test_the_daemons_counters_as_otel_metrics(tmp_path):
    """The counters arrive at an OTLP/HTTP metrics endpoint, decoded here from the protobuf the SDK sends."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

    points: dict[str, float] = {}

    class Receiver(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            request = metrics_service_pb2.ExportMetricsServiceRequest()
            request.ParseFromString(self.rfile.read(int(self.headers["content-length"])))
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        data = metric.sum if metric.HasField("sum") else metric.gauge
                        for point in data.data_points:
                            points[metric.name] = point.as_int or point.as_double
            answer = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        collector = Collector(
            tmp_path / "spendwatch.duckdb",
            tmp_path / "log",
            env={"SPENDWATCH_METRICS_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}"},
        ).start()
        with httpx.Client(base_url=collector.http_endpoint) as client:
            client.post("/v1/traces", json=valid_export())
            client.post("/v1/traces", json=valid_export(model="acme-unpriced"))
        assert collector.stop() == 0  # shutting down exports the counters once more
    finally:
        server.shutdown()
        server.server_close()
    assert points["spendwatch.spans.received"] == 2
    assert points["spendwatch.spans.stored"] == 2
    assert points["spendwatch.models.unpriced"] == 1


def test_queries_have_a_time_limit_through_the_daemon_and_on_the_file(tmp_path):
    slow = "SELECT count(*) FROM range(100000000) AS a, range(100000000) AS b"
    collector = Collector(
        tmp_path / "spendwatch.duckdb", tmp_path / "log", env={"SPENDWATCH_QUERY_TIMEOUT": "0.5"}
    ).start()
    for _ in range(2):  # running, then stopped
        started = time.monotonic()
        result = run_cli("query", "--db", str(collector.db), slow, env={"SPENDWATCH_QUERY_TIMEOUT": "0.5"})
        assert result.returncode == 2 and "ran longer than 0.5 s" in result.stderr
        assert time.monotonic() - started < 20
        if collector.process.poll() is None:
            assert collector.stop() == 0


def test_a_second_daemon_on_the_same_ports_is_refused(tmp_path):
    first = Collector(tmp_path / "first.duckdb", tmp_path / "log").start()
    for flag, port in (("--grpc-port", first.info["grpc_port"]), ("--http-port", first.info["http_port"])):
        ports = {"--http-port": "0", "--grpc-port": "0", "--ui-port": "0", flag: str(port)}
        result = run_cli("up", "--db", str(tmp_path / "second.duckdb"), *[x for pair in ports.items() for x in pair])
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("spendwatch: cannot listen on 127.0.0.1")
        assert "Traceback" not in result.stderr
    assert first.stop() == 0
