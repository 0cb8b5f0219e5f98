"""Bad input never kills the daemon: fuzzed bodies get a 4xx, odd values a sane row, bad files a line."""

from __future__ import annotations

import gzip
import json
import os
import secrets
import time

import grpc
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from spendwatch.collector import otlp
from spendwatch.collector.pricing import Pricer, price_rows
from spendwatch.collector.spans import Counts, rows_from_request
from spendwatch.collector.store import Store
from tests.collector import Collector, run_cli

# A fixed seed and a bounded number of cases in the suite; `benchmarks/FUZZING.md` runs many more.
EXAMPLES = int(os.environ.get("SPENDWATCH_FUZZ_EXAMPLES", "150"))
FUZZ = settings(derandomize=True, max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

# -- the decoder, in process ----------------------------------------------------------------------------


@FUZZ
@given(body=st.binary(max_size=2048), content_type=st.sampled_from(["application/x-protobuf", "application/json"]))
def test_fuzzed_bytes_decode_or_get_a_4xx(body, content_type):
    try:
        message, _ = otlp.decode(trace_service_pb2.ExportTraceServiceRequest, body, content_type)
    except otlp.BadRequest as error:
        assert 400 <= error.status < 500
        return
    rows_from_request(message, Counts())  # whatever decodes, the row builder takes


scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(lambda v: AnyValue(int_value=v)),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda v: AnyValue(double_value=v)),
    st.text(max_size=300).map(lambda v: AnyValue(string_value=v)),
    st.booleans().map(lambda v: AnyValue(bool_value=v)),
    st.binary(max_size=64).map(lambda v: AnyValue(bytes_value=v)),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: AnyValue(array_value=ArrayValue(values=items))),
        st.lists(st.tuples(st.text(max_size=20), inner), max_size=4).map(
            lambda pairs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in pairs]))
        ),
    ),
    max_leaves=12,
)
GEN_AI_KEYS = [
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.operation.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.response.finish_reasons",
    "http.response.status_code",
    "spendwatch.api_key.id",
    "error.type",
    "gen_ai.request.stream",
    "gen_ai.input.messages",
]
attributes = st.lists(
    st.tuples(st.one_of(st.sampled_from(GEN_AI_KEYS), st.text(max_size=30)), values), max_size=10
).map(lambda pairs: [KeyValue(key=k, value=v) for k, v in pairs])
spans = st.builds(
    lambda trace_id, span_id, start, end, attrs: Span(
        trace_id=trace_id,
        span_id=span_id,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        name="x",
        attributes=[KeyValue(key="gen_ai.provider.name", value=AnyValue(string_value="openai")), *attrs],
    ),
    st.one_of(st.just(secrets.token_bytes(16)), st.binary(max_size=20)),
    st.one_of(st.binary(min_size=8, max_size=8), st.binary(max_size=10)),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.integers(min_value=0, max_value=2**64 - 1),
    attributes,
)


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("fuzz") / "spendwatch.duckdb")
    yield store
    store.close()


@FUZZ
@given(batch=st.lists(spans, min_size=1, max_size=8))
def test_fuzzed_spans_become_sane_rows_that_store(fuzz_store, batch):
    request = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=batch)])]
    )
    counts = Counts()
    rows = price_rows(rows_from_request(request, counts), Pricer())
    assert counts.received == len(batch) == counts.kept + counts.dropped + counts.rejected
    fuzz_store.write(rows)  # every row the builder makes, DuckDB takes
    for row in rows:
        assert len(row[0]) == 32 and len(row[1]) == 16
        assert row[3] <= row[4]
        for count in row[12:17]:
            assert count is None or 0 <= count <= 10**9
        assert "gen_ai.input.messages" not in json.loads(row[25])


# -- the live endpoints -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bad-input")
    config = directory / "spendwatch.toml"
    config.write_text('[attributes]\nkeep = ["app.*", "deep"]\n')  # odd values in attributes the user keeps
    collector = Collector(directory / "spendwatch.duckdb", directory / "log", config=config, shared=True).start()
    yield collector
    if collector.process.poll() is None:
        collector.stop()


def valid_export(model: str = "gpt-4o-mini", **extra) -> dict:
    now = time.time_ns()
    attributes = {
        "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": 10,
        **extra,
    }
    return {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "scope": {"name": "x"},
                        "spans": [
                            {
                                "traceId": secrets.token_hex(16),
                                "spanId": secrets.token_hex(8),
                                "name": "chat",
                                "startTimeUnixNano": str(now),
                                "endTimeUnixNano": str(now + 1000),
                                "attributes": [
                                    {
                                        "key": k,
                                        "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v},
                                    }
                                    for k, v in attributes.items()
                                ],
                            }
                        ],
                    }
                ]
            }
        ]
    }


@settings(derandomize=True, max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.binary(max_size=1024),
    content_type=st.sampled_from(["application/x-protobuf", "application/json", "text/plain", ""]),
    encoding=st.sampled_from([None, "gzip", "br", "identity"]),
)
def test_fuzzed_http_bodies_get_a_4xx_and_the_daemon_answers_after(daemon, body, content_type, encoding):
    headers = {"content-type": content_type}
    if encoding:
        headers["content-encoding"] = encoding
    answer = httpx.post(daemon.http_endpoint + "/v1/traces", content=body, headers=headers, timeout=10)
    assert answer.status_code in (200, 400, 413, 415), answer.text
    assert answer.status_code == 200 or "\n" not in otlp_status(answer).strip()  # a one-line reason


@settings(derandomize=True, max_examples=EXAMPLES // 3, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=1024))
def test_fuzzed_grpc_messages(daemon, body):
    with grpc.insecure_channel(f"127.0.0.1:{daemon.info['grpc_port']}") as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=lambda raw: raw,
            response_deserializer=lambda raw: raw,
        )
        try:
            export(body, timeout=10)
        except grpc.RpcError as error:
            assert error.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT), error


def test_the_daemon_still_answers_a_valid_export_correctly(daemon):
    # Runs after the fuzz tests (file order): the daemon is alive and stores a good export exactly.
    model = "model-" + secrets.token_hex(4)
    with httpx.Client(base_url=daemon.http_endpoint) as client:
        assert client.post("/v1/traces", json=valid_export(model)).status_code == 200
    result = run_cli(
        "query",
        "--db",
        str(daemon.db),
        "--format",
        "json",
        f"SELECT input_tokens FROM llm_calls WHERE request_model = '{model}'",
    )
    assert json.loads(result.stdout) == [{"input_tokens": 10}]


def otlp_status(answer: httpx.Response) -> str:
    """The message of an OTLP/HTTP failure's body: a google.rpc.Status in the request's encoding (JSON when
    the request's content type is not OTLP's)."""
    from google.rpc import status_pb2

    if answer.headers["content-type"] == "application/x-protobuf":
        return status_pb2.Status.FromString(answer.content).message
    assert answer.headers["content-type"] == "application/json", answer.headers
    return answer.json()["message"]


# -- each listed bad input --------------------------------------------------------------------------------

LIMIT = otlp.DEFAULT_MAX_BODY_BYTES


@pytest.mark.parametrize(
    "content,headers,status",
    [
        (b"\x0a\xff\xff\xff", {"content-type": "application/x-protobuf"}, 400),  # truncated protobuf
        (b"\xde\xad\xbe\xef" * 8, {"content-type": "application/x-protobuf"}, 400),  # random bytes
        (b'{"resourceSpans": [', {"content-type": "application/json"}, 400),  # invalid JSON
        (b'{"resourceSpans": "\xff\xfe"}', {"content-type": "application/json"}, 400),  # invalid UTF-8
        (b"{}", {"content-type": "application/xml"}, 415),  # wrong content type
        (b"{}", {"content-type": "application/json", "content-encoding": "zstd"}, 415),  # unknown encoding
        (
            gzip.compress(b"x" * (LIMIT + 1)),
            {"content-type": "application/json", "content-encoding": "gzip"},
            413,
        ),  # a gzip bomb, found while inflating
        (b"not gzip", {"content-type": "application/json", "content-encoding": "gzip"}, 400),
    ],
)
def test_each_bad_body(daemon, content, headers, status):
    answer = httpx.post(daemon.http_endpoint + "/v1/traces", content=content, headers=headers, timeout=30)
    assert answer.status_code == status, answer.text
    reason = otlp_status(answer)
    assert reason.strip() and "\n" not in reason.strip()


def test_a_body_over_the_limit(daemon):
    answer = httpx.post(
        daemon.http_endpoint + "/v1/traces",
        content=b"x" * (LIMIT + 1),
        headers={"content-type": "application/x-protobuf"},
        timeout=30,
    )
    assert answer.status_code == 413


def test_odd_values_are_stored_sanely_and_flagged(daemon):
    tag = secrets.token_hex(4)
    now = time.time_ns()

    def span(name, start=now, end=now + 1000, trace_id=None, span_id=None, **attrs):
        base = {"gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat", "gen_ai.request.model": name}
        base.update(attrs)
        attributes = []
        for key, value in base.items():
            if isinstance(value, bool):
                attributes.append({"key": key, "value": {"boolValue": value}})
            elif isinstance(value, int):
                attributes.append({"key": key, "value": {"intValue": str(value)}})
            elif isinstance(value, float):
                attributes.append({"key": key, "value": {"doubleValue": value}})
            elif isinstance(value, list):
                attributes.append(
                    {"key": key, "value": {"arrayValue": {"values": [{"stringValue": v} for v in value]}}}
                )
            else:
                attributes.append({"key": key, "value": {"stringValue": value}})
        return {
            "traceId": trace_id or secrets.token_hex(16),
            "spanId": span_id or secrets.token_hex(8),
            "name": "c",
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(end),
            "attributes": attributes,
        }

    nested = {"key": "deep", "value": {"stringValue": "x"}}
    for _ in range(25):  # deeper than spendwatch keeps; protobuf itself refuses ~33 and beyond
        nested = {"key": "deep", "value": {"kvlistValue": {"values": [nested]}}}
    deep = span(f"{tag}-deep")
    deep["attributes"].append(nested)
    batch = [
        span(f"{tag}-negative", **{"gen_ai.usage.input_tokens": -5}),
        span(f"{tag}-fraction", **{"gen_ai.usage.input_tokens": 2.5}),
        span(f"{tag}-string", **{"gen_ai.usage.input_tokens": "42"}),
        span(f"{tag}-huge", **{"gen_ai.usage.input_tokens": 10**12}),
        span(f"{tag}-1970", start=0, end=1000),
        span(f"{tag}-2100", start=4_102_444_800 * 10**9, end=4_102_444_801 * 10**9),
        span(f"{tag}-backwards", end=now - 10**9),
        span(f"{tag}-array", **{"gen_ai.response.id": ["a", "b"]}),
        span(f"{tag}-megabyte", **{"app.blob": "y" * 2_000_000}),
        span(f"{tag}-" + "m" * 10_000),
        span(f"{tag}-badid", trace_id="abcd"),
        deep,
    ]
    export = {"resourceSpans": [{"scopeSpans": [{"scope": {"name": "other"}, "spans": batch}]}]}
    answer = httpx.post(daemon.http_endpoint + "/v1/traces", json=export, timeout=30)
    assert answer.status_code == 200, answer.text
    result = run_cli(
        "query",
        "--db",
        str(daemon.db),
        "--format",
        "json",
        f"SELECT request_model AS m, input_tokens, start_time, end_time, response_id, attributes "
        f"FROM llm_calls WHERE request_model LIKE '{tag}-%'",
    )
    rows = {row["m"][len(tag) + 1 :][:20]: row for row in json.loads(result.stdout)}
    assert "badid" not in rows and len(rows) == 11  # the bad id alone is rejected; the batch is stored

    def invalid(name):
        return json.loads(rows[name]["attributes"]).get("spendwatch.invalid", [])

    assert rows["negative"]["input_tokens"] is None and "not a token count" in invalid("negative")[0]
    assert rows["fraction"]["input_tokens"] is None and invalid("fraction")
    assert rows["string"]["input_tokens"] == 42
    assert rows["huge"]["input_tokens"] is None and invalid("huge")
    for name in ("1970", "2100"):
        assert rows[name]["start_time"] >= "2026" and "not a plausible time" in invalid(name)[0]
    assert rows["backwards"]["start_time"] == rows["backwards"]["end_time"] and invalid("backwards")
    assert rows["array"]["response_id"] is None and "expected a string" in invalid("array")[0]
    assert len(json.loads(rows["megabyte"]["attributes"])["app.blob"]) == 4096
    assert len(rows["m" * 20]["m"]) == 512 and "cut to 512" in invalid("m" * 20)[0]
    assert "too deeply nested" in rows["deep"]["attributes"]


# -- bad database files -----------------------------------------------------------------------------------


def test_a_locked_database(daemon):
    result = run_cli("up", "--db", str(daemon.db), "--http-port", "0", "--grpc-port", "0", "--ui-port", "0")
    assert result.returncode == 2 and "in use by another process" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_database_from_a_newer_schema(tmp_path):
    store = Store(tmp_path / "new.duckdb")
    store.con.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', now())")
    store.close()
    before = (tmp_path / "new.duckdb").read_bytes()
    ports = ("--http-port", "0", "--grpc-port", "0", "--ui-port", "0")
    result = run_cli("up", "--db", str(tmp_path / "new.duckdb"), *ports)
    assert result.returncode == 2 and "written by a newer spendwatch" in result.stderr
    assert (tmp_path / "new.duckdb").read_bytes() == before  # nothing changed


def test_an_unreadable_database(tmp_path):
    directory = tmp_path / "locked-away"
    directory.mkdir()
    db = directory / "spendwatch.duckdb"
    db.mkdir()  # a directory where the file should be: unreadable as a database, whoever runs the test
    result = run_cli("up", "--db", str(db), "--http-port", "0", "--grpc-port", "0", "--ui-port", "0")
    assert result.returncode == 2 and str(db) in result.stderr and "Traceback" not in result.stderr
