"""The OTLP/HTTP server under hostile input and load: every malformed request gets its documented 4xx
(never a dropped connection), poison spans are refused or clamped alone, partial success says so, and
slow clients, bursts of exporters and a heavy query at once cost no acknowledged span."""

from __future__ import annotations

import gzip
import json
import secrets
import socket
import threading
import time
import zlib
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from spendwatch.collector.spans import Counts, rows_from_request
from spendwatch.collector.store import Store
from spendwatch.collector.writer import Writer
from tests.collector import Collector, run_cli
from tests.test_bad_input import otlp_status
from tests.test_rules_budget import call

READ_TIMEOUT = "2"  # seconds: how long the daemon under test waits for a slow client's headers or body


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ingest-server")
    collector = Collector(
        directory / "spendwatch.duckdb",
        directory / "log",
        env={"SPENDWATCH_HTTP_READ_TIMEOUT": READ_TIMEOUT},
        extra=("--log-level", "debug"),
        shared=True,
    ).start()
    yield collector
    if collector.process.poll() is None:
        assert collector.stop() == 0


def span_json(model: str, *, start: int | None = None, end: int | None = None, **attributes) -> dict:
    now = time.time_ns()
    start = now if start is None else start
    values = {
        "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": 10,
        **attributes,
    }
    return {
        "traceId": secrets.token_hex(16),
        "spanId": secrets.token_hex(8),
        "name": "chat",
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 1000 if end is None else end),
        "attributes": [
            {"key": key, "value": {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}}
            for key, value in values.items()
        ],
    }


def export_json(spans: list[dict], service: str = "svc") -> dict:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "x"}, "spans": spans}]}]}


def stored(collector: Collector, where: str) -> list[dict]:
    result = run_cli(
        "query", "--db", str(collector.db), "--format", "json", f"SELECT * FROM llm_call_spans WHERE {where}"
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def raw_exchange(port: int, data: bytes, *, half_close: bool = False, timeout: float = 15) -> bytes:
    """Send bytes on a fresh connection and read the whole answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(data)
        if half_close:
            connection.shutdown(socket.SHUT_WR)
        answer = b""
        while True:
            try:
                piece = connection.recv(65536)
            except ConnectionResetError:
                break
            if not piece:
                break
            answer += piece
            if b"\r\n\r\n" in answer and not half_close and _complete(answer):
                break
    return answer


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def request_bytes(body: bytes, headers: dict[str, str], path: str = "/v1/traces") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "host: 127.0.0.1", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# -- transport: what Node's exporters and hostile clients send ------------------------------------------


def test_chunked_bodies_on_a_kept_connection_are_stored(daemon):
    tag = secrets.token_hex(4)
    bodies = [json.dumps(export_json([span_json(f"{tag}-{index}")])).encode() for index in range(3)]

    def chunks(body: bytes):
        yield body[:7]
        yield body[7:]

    with httpx.Client(base_url=daemon.http_endpoint) as client:
        for body in bodies:
            answer = client.post("/v1/traces", content=chunks(body), headers={"content-type": "application/json"})
            assert answer.request.headers["transfer-encoding"] == "chunked"
            assert answer.status_code == 200 and answer.json() == {}
    assert len(stored(daemon, f"request_model LIKE '{tag}-%'")) == 3


@pytest.mark.parametrize("encoding,compress", [("gzip", gzip.compress), ("deflate", zlib.compress)])
def test_compressed_bodies(daemon, encoding, compress):
    tag = secrets.token_hex(4)
    body = compress(json.dumps(export_json([span_json(tag)])).encode())
    answer = httpx.post(
        daemon.http_endpoint + "/v1/traces",
        content=body,
        headers={"content-type": "application/json", "content-encoding": encoding},
    )
    assert answer.status_code == 200, answer.text
    assert len(stored(daemon, f"request_model = '{tag}'")) == 1


def test_a_body_cut_short_by_a_half_closing_client_gets_400(daemon):
    body = json.dumps(export_json([span_json("cut")])).encode()
    headers = {"content-type": "application/json", "content-length": str(len(body))}
    answer = raw_exchange(daemon.info["http_port"], request_bytes(body[:20], headers), half_close=True)
    assert status_of(answer) == 400 and b"before the end" in answer
    chunked = request_bytes(
        b"10\r\n0123456789abcdef\r\n", {"content-type": "application/json", "transfer-encoding": "chunked"}
    )
    assert status_of(raw_exchange(daemon.info["http_port"], chunked, half_close=True)) == 400


def test_headers_cut_short_get_400_and_slow_ones_408(daemon):
    port = daemon.info["http_port"]
    answer = raw_exchange(port, b"POST /v1/traces HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-ty", half_close=True)
    assert status_of(answer) == 400
    answer = raw_exchange(port, b"POST /v1/traces HTTP/1.1\r\nhost: 127.0.0.1\r\n")  # then nothing, for ever
    assert status_of(answer) == 408
    body_never_finished = request_bytes(b"{", {"content-type": "application/json", "content-length": "100"})
    assert status_of(raw_exchange(port, body_never_finished)) == 408


@pytest.mark.parametrize("length", ["-1", "abc", "1, 2", "99999999999999999999999"])
def test_a_bad_content_length_gets_400_at_once(daemon, length):
    answer = raw_exchange(
        daemon.info["http_port"], request_bytes(b"{}", {"content-type": "application/json", "content-length": length})
    )
    assert status_of(answer) in (400, 413)


def test_content_length_minus_one_blocks_nothing(daemon):
    """Many such requests at once, then a clean export on its own connection: answered."""
    port = daemon.info["http_port"]
    bad = request_bytes(b"", {"content-type": "application/x-protobuf", "content-length": "-1"})
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
    for connection in sockets:
        connection.sendall(bad)
    tag = secrets.token_hex(4)
    assert (
        httpx.post(daemon.http_endpoint + "/v1/traces", json=export_json([span_json(tag)]), timeout=10).status_code
        == 200
    )
    for connection in sockets:
        assert status_of(connection.recv(65536)) == 400
        connection.close()


def test_hostile_bodies_get_their_documented_status_with_a_status_body(daemon):
    limit = 32 * 1024 * 1024
    deep = "[" * 100_000 + "]" * 100_000
    nested = {"key": "k", "value": {"stringValue": "x"}}
    for _ in range(200):
        nested = {"key": "k", "value": {"kvlistValue": {"values": [nested]}}}
    too_deep = export_json([{**span_json("deep"), "attributes": [nested]}])
    cases = [
        (b"\x0a\xff\xff\xff", "application/x-protobuf", None, 400),
        (b'{"resourceSpans": [', "application/json", None, 400),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "\xff\xfe"}]}]}]}', "application/json", None, 400),
        (deep.encode(), "application/json", None, 400),
        (json.dumps(too_deep).encode(), "application/json", None, 400),
        (json.dumps({"resourceSpans": "nope"}).encode(), "application/json", None, 400),
        (json.dumps(export_json([{**span_json("hex"), "traceId": "zz" * 16}])).encode(), "application/json", None, 400),
        (
            json.dumps(export_json([{**span_json("t"), "startTimeUnixNano": "1.5"}])).encode(),
            "application/json",
            None,
            400,
        ),
        (
            json.dumps(export_json([{**span_json("t"), "endTimeUnixNano": "soon"}])).encode(),
            "application/json",
            None,
            400,
        ),
        (b"not gzip at all", "application/json", "gzip", 400),
        (gzip.compress(b"{}")[:-6], "application/json", "gzip", 400),
        (gzip.compress(b" " * (limit + 1)), "application/json", "gzip", 413),
        (b"{}", "text/plain", None, 415),
        (b"{}", None, None, 415),
        (b"{}", "application/json", "br", 415),
    ]
    with httpx.Client(base_url=daemon.http_endpoint, timeout=30) as client:
        for body, content_type, encoding, status in cases:
            headers = {"content-type": content_type} if content_type else {}
            if encoding:
                headers["content-encoding"] = encoding
            answer = client.post("/v1/traces", content=body, headers=headers)
            assert answer.status_code == status, (body[-80:], answer.status_code, answer.text[:200])
            reason = otlp_status(answer)
            assert reason and "\n" not in reason
            if content_type == "application/x-protobuf":
                assert status_pb2.Status.FromString(answer.content).code == 3
        answer = client.post(
            "/v1/traces", content=b"x" * (limit + 1), headers={"content-type": "application/x-protobuf"}
        )
        assert answer.status_code == 413
    assert daemon.process.poll() is None


# -- poison spans and partial success -------------------------------------------------------------------


def test_poison_spans_are_refused_or_clamped_alone(daemon):
    tag = secrets.token_hex(4)
    now = time.time_ns()
    day = 24 * 3600 * 10**9
    spans = [
        span_json(f"{tag}-unicode-digit", **{"gen_ai.usage.input_tokens": "²"}),
        span_json(f"{tag}-arabic-digits", **{"gen_ai.usage.input_tokens": "٣٤"}),
        span_json(f"{tag}-negative", **{"gen_ai.usage.output_tokens": -3}),
        span_json(f"{tag}-huge", **{"gen_ai.usage.output_tokens": 10**15}),
        span_json(f"{tag}-end-2-63", end=2**63),
        span_json(f"{tag}-end-2-64", end=2**64 - 1),
        span_json(f"{tag}-start-2-64", start=2**64 - 1, end=2**64 - 1),
        span_json(f"{tag}-year-2200", end=7_258_118_400 * 10**9),
        span_json(f"{tag}-two-days", start=now - 3 * day, end=now - day),
        span_json(f"{tag}-backwards", end=now - 10**9),
        span_json(f"{tag}-backfill", start=now - 90 * day, end=now - 90 * day + 10**9),
        {**span_json(f"{tag}-short-id"), "spanId": "abcd"},
        span_json(f"{tag}-clean"),
    ]
    other = export_json([span_json(f"{tag}-other-service")], service="other")
    with httpx.Client(base_url=daemon.http_endpoint) as client:
        answer = client.post("/v1/traces", json=export_json(spans))
        assert answer.status_code == 200, answer.text
        assert answer.json()["partialSuccess"]["rejectedSpans"] == "1"  # int64 in OTLP/JSON is a string
        assert "wrong length" in answer.json()["partialSuccess"]["errorMessage"]
        assert client.post("/v1/traces", json=other).json() == {}  # nothing refused: no partial_success
        assert client.get("/ready").status_code == 200
    rows = {row["request_model"][len(tag) + 1 :]: row for row in stored(daemon, f"request_model LIKE '{tag}-%'")}
    assert set(rows) == {span["attributes"][2]["value"]["stringValue"][len(tag) + 1 :] for span in spans} - {
        "short-id"
    } | {"other-service"}

    def flagged(name: str) -> str:
        return " ".join(json.loads(rows[name]["attributes"]).get("spendwatch.invalid", []))

    for name in ("unicode-digit", "arabic-digits"):
        assert rows[name]["input_tokens"] is None and "not a token count" in flagged(name)
    assert rows["negative"]["output_tokens"] is None and rows["huge"]["output_tokens"] is None
    for name in ("end-2-63", "end-2-64", "year-2200", "two-days"):
        assert rows[name]["end_time"] == rows[name]["start_time"] and "not a plausible end" in flagged(name), name
    assert rows["start-2-64"]["start_time"] >= datetime.now(UTC).isoformat()[:10]
    assert rows["backwards"]["end_time"] == rows["backwards"]["start_time"]
    assert not flagged("backfill") and rows["backfill"]["duration_ms"] == 1000
    assert rows["clean"]["input_tokens"] == 10 and not flagged("clean")


def test_the_same_poison_over_protobuf_and_grpc_and_a_partial_success(daemon):
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    tag = secrets.token_hex(4)
    now = time.time_ns()

    def span(name: str, span_id: bytes, end: int) -> Span:
        attributes = {"gen_ai.provider.name": "openai", "gen_ai.request.model": f"{tag}-{name}"}
        return Span(
            trace_id=secrets.token_bytes(16),
            span_id=span_id,
            name="chat",
            start_time_unix_nano=now,
            end_time_unix_nano=end,
            attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items()],
        )

    def request(protocol: str) -> trace_service_pb2.ExportTraceServiceRequest:
        spans = [
            span(f"{protocol}-ok", secrets.token_bytes(8), now + 1),
            span(f"{protocol}-end", secrets.token_bytes(8), 2**64 - 1),
        ]
        spans.append(span(f"{protocol}-bad-id", b"\x01", now + 1))
        return trace_service_pb2.ExportTraceServiceRequest(
            resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
        )

    answer = httpx.post(
        daemon.http_endpoint + "/v1/traces",
        content=request("http").SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
    )
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/x-protobuf"
    response = trace_service_pb2.ExportTraceServiceResponse.FromString(answer.content)
    assert response.partial_success.rejected_spans == 1 and response.partial_success.error_message
    with grpc.insecure_channel(f"127.0.0.1:{daemon.info['grpc_port']}") as channel:
        response = trace_service_pb2_grpc.TraceServiceStub(channel).Export(request("grpc"), timeout=10)
    assert response.partial_success.rejected_spans == 1
    models = sorted(row["request_model"] for row in stored(daemon, f"request_model LIKE '{tag}-%'"))
    assert models == [f"{tag}-{name}" for name in ("grpc-end", "grpc-ok", "http-end", "http-ok")]


def test_a_row_the_database_refuses_is_refused_alone_and_the_writer_stays_healthy(tmp_path):
    """The writer's own net under the validation: a value no column takes fails its row, not the commit."""
    store = Store(tmp_path / "spendwatch.duckdb")
    writer = Writer(store)
    writer.start()
    try:
        now = datetime.now(UTC)
        good = [call(now, 1.0) for _ in range(3)]
        poisoned = list(call(now, 2.0))
        poisoned[4] = 2**63  # end_ns: beyond BIGINT
        others = [call(now, 3.0) for _ in range(2)]
        first = writer.submit([*good, tuple(poisoned)])
        second = writer.submit(others)  # very likely committed with the first, and must not pay for it
        assert first.result(timeout=30).refused == 1
        assert second.result(timeout=30).refused == 0
        assert writer.healthy() and not writer.last_write_failed
        assert writer.submit([call(now, 4.0)]).result(timeout=30).refused == 0
    finally:
        writer.stop()
    (count,) = store.con.execute("SELECT count(*) FROM llm_call_spans").fetchone()
    store.close()
    assert count == 3 + 2 + 1


def test_the_row_builder_never_fails_a_span_for_a_bug_silently(tmp_path):
    """Fuzzed poison through the builder: whatever is refused is refused for a named reason, not an exception."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans

    from tests.test_bad_input import EXAMPLES, spans  # the fuzz strategy of the bad-input tests

    @settings(derandomize=True, max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(batch=st.lists(spans, min_size=1, max_size=8))
    def check(batch):
        request = trace_service_pb2.ExportTraceServiceRequest(
            resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=batch)])]
        )
        refusals: Counter[str] = Counter()
        rows_from_request(request, Counts(), refusals)
        assert not [reason for reason in refusals if reason.startswith("could not be read")], refusals

    check()


# -- readiness, logs ------------------------------------------------------------------------------------


def test_health_ready_metrics_logs_and_unknown_paths(daemon):
    with httpx.Client(base_url=daemon.http_endpoint) as client:
        assert client.get("/health").status_code == 200 and client.get("/ready").status_code == 200
        for path in ("/v1/metrics", "/v1/logs"):
            answer = client.post(path, content=b"", headers={"content-type": "application/x-protobuf"})
            assert answer.status_code == 200 and answer.headers["content-type"] == "application/x-protobuf"
            assert client.post(path, json={}).json() == {}
        assert client.post("/v2/traces", json={}).status_code == 404
        assert client.get("/v1/traces").status_code == 405


def test_logs_carry_no_query_string_or_token_at_debug_level(tmp_path):
    ingest_token = "ingest-" + secrets.token_urlsafe(16)
    collector = Collector(
        tmp_path / "spendwatch.duckdb",
        tmp_path / "log",
        extra=("--log-level", "debug", "--ingest-token", ingest_token),
    ).start()
    secret_query = "secret-" + secrets.token_hex(8)
    with httpx.Client() as client:
        headers = {"authorization": f"Bearer {ingest_token}"}
        client.post(
            f"{collector.http_endpoint}/v1/traces?key={secret_query}",
            json=export_json([span_json("m")]),
            headers=headers,
        )
        client.post(
            f"{collector.http_endpoint}/v1/traces?key={secret_query}",
            json={},
            headers={"authorization": "Bearer wrong-" + secret_query},
        )
        ui = collector.info["ui_url"]
        client.get(f"{ui}?token={collector.info['ui_token']}")
        client.get(f"{ui}?token=wrong-{secret_query}")
        client.post(
            collector.info["read_url"] + "/query",
            json={"sql": f"SELECT '{secret_query}'"},
            headers={"authorization": f"Bearer {collector.info['token']}"},
        )
    assert collector.stop() == 0
    log = collector.log.read_text()
    assert "otlp/http: POST /v1/traces 200" in log and "dashboard: GET / 303" in log, log  # requests are logged ...
    for secret in (secret_query, ingest_token, collector.info["ui_token"], collector.info["token"]):
        assert secret not in log, [line for line in log.splitlines() if secret in line]  # ... without what they carried


# -- everything at once ---------------------------------------------------------------------------------

SLOW_CLIENTS = 64
EXPORTERS = 50
EXPORTS_EACH = 3
SPANS_EACH = 20


def test_slow_clients_a_burst_of_exporters_and_a_heavy_query_at_once(tmp_path):
    collector = Collector(
        tmp_path / "spendwatch.duckdb", tmp_path / "log", env={"SPENDWATCH_QUERY_TIMEOUT": "20"}
    ).start()
    port = collector.info["http_port"]
    tag = secrets.token_hex(4)
    # 64 clients that send their headers and the start of a body, then nothing: each costs the daemon a
    # coroutine until its read deadline, and takes no export slot.
    slow = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(SLOW_CLIENTS)]
    for connection in slow:
        connection.sendall(
            request_bytes(b'{"resourceSpans": [', {"content-type": "application/json", "content-length": "5000"})
        )
    acknowledged: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()

    def exporter(index: int) -> None:
        with httpx.Client(base_url=collector.http_endpoint, timeout=30) as client:
            for number in range(EXPORTS_EACH):
                models = [f"{tag}-{index}-{number}-{span}" for span in range(SPANS_EACH)]
                export = export_json([span_json(model) for model in models], service=f"svc-{index}")
                for _attempt in range(100):  # as an SDK exporter does: retry what OTLP says is retryable
                    answer = client.post("/v1/traces", json=export)
                    if answer.status_code not in (429, 503):
                        break
                    time.sleep(0.1)
                if answer.status_code == 200 and answer.json() == {}:
                    with lock:
                        acknowledged.extend(models)
                else:
                    failures.append(f"{answer.status_code} {answer.text[:100]}")

    query_answers: list[tuple[int, dict]] = []

    def heavy_reader() -> None:
        headers = {"authorization": f"Bearer {collector.info['token']}"}
        for sql in (
            "SELECT range, repeat('x', 200) AS padding FROM range(3000000)",  # 600 MB of result: capped
            "SELECT count(*) FROM range(20000000) AS a JOIN range(20000000) AS b ON a.range = b.range",
        ):
            answer = httpx.post(collector.info["read_url"] + "/query", json={"sql": sql}, headers=headers, timeout=120)
            query_answers.append((answer.status_code, answer.json()))

    threads = [threading.Thread(target=heavy_reader)]
    threads += [threading.Thread(target=exporter, args=(index,)) for index in range(EXPORTERS)]
    for thread in threads:
        thread.start()
    hostile = [
        (request_bytes(b"", {"content-type": "application/x-protobuf", "content-length": "-1"}), False, 400),
        (
            request_bytes(
                b"\x1f\x8b garbage",
                {"content-type": "application/json", "content-encoding": "gzip", "content-length": "11"},
            ),
            False,
            400,
        ),
        (request_bytes(b"{}", {"content-type": "text/csv", "content-length": "2"}), False, 415),
        (
            request_bytes(b'{"resourceSpans": [', {"content-type": "application/json", "content-length": "19"}),
            False,
            400,
        ),
        (request_bytes(b'{"resou', {"content-type": "application/json", "content-length": "100"}), True, 400),
    ]
    for data, half_close, status in hostile:
        assert status_of(raw_exchange(port, data, half_close=half_close)) == status
    for thread in threads:
        thread.join(timeout=180)
    assert not failures and len(acknowledged) == EXPORTERS * EXPORTS_EACH * SPANS_EACH
    (status, first), (_, second) = query_answers
    assert status == 200 and first["truncated"] is True and 0 < len(first["rows"]) <= 100_000
    assert second == {"columns": ["count_star()"], "rows": [[20000000]]} or "longer than" in second.get("error", "")
    for connection in slow:  # every slow client got an answer, none a dropped connection
        assert status_of(connection.recv(65536)) == 408
        connection.close()
    with httpx.Client(base_url=collector.http_endpoint) as client:  # afterwards, ingest as normal
        assert client.get("/ready").status_code == 200
        assert client.post("/v1/traces", json=export_json([span_json(f"{tag}-after")])).status_code == 200
    assert collector.stop() == 0
    rows = collector.query("SELECT request_model, count(*) FROM llm_call_spans GROUP BY ALL")
    counts = dict(rows)
    assert set(acknowledged) | {f"{tag}-after"} == set(counts) and set(counts.values()) == {1}


def test_the_ingest_token_is_checked_before_the_body_is_read(tmp_path):
    token = "ingest-" + secrets.token_urlsafe(16)
    collector = Collector(tmp_path / "spendwatch.duckdb", tmp_path / "log", extra=("--ingest-token", token)).start()
    headers = {"content-type": "application/x-protobuf", "content-length": str(30 * 1024 * 1024)}
    with socket.create_connection(("127.0.0.1", collector.info["http_port"]), timeout=10) as connection:
        connection.sendall(request_bytes(b"", headers))  # headers only: the 30 MB never come
        answer = connection.recv(65536)
    assert status_of(answer) == 401 and b"www-authenticate: Bearer" in answer.lower().replace(b"bearer", b"Bearer")
    assert collector.stop() == 0


def test_headers_too_large_get_400(daemon):
    huge = request_bytes(b"{}", {"content-type": "application/json", "content-length": "2", "x-padding": "y" * 100_000})
    assert status_of(raw_exchange(daemon.info["http_port"], huge)) == 400
    assert httpx.get(daemon.http_endpoint + "/health").status_code == 200
