"""How many GenAI spans per second the collector stores, next to a minimal pipeline with no server.

The payloads are built once: OTLP ExportTraceServiceRequests of 512 GenAI spans each, as spendwatch's
instrumentation sends them (provider, models, usage, key id, finish reasons), every span with its own ids.
The same bytes go to every row of one run:
- the **in-process limit** (INTERFACES.md's definition): one thread decodes them with upb, puts each
  span's ids and ~16 attribute values into a tuple and appends the tuples with DuckDB's Appender into a
  17-column table — no scrubbing, call identity, pricing or duplicate check. Whatever spendwatch does
  beyond that counts against the ratio;
- spendwatch's own pipeline in one thread (decode, rows, `Store.write`), for scale;
- `spendwatch up` over **OTLP/HTTP** and over **OTLP/gRPC**, each from 4 concurrent exporters that send
  the pre-serialised bytes and wait for the acknowledgement, which the daemon gives after its commit;
- OTLP/HTTP again while a heavy read runs through the read API (a scan of a large generated result,
  capped), to see what a read costs the acknowledgements.
The daemon runs as a real subprocess on a fresh database for each row (started as the tests start
it); its peak RSS is read from /proc at the end.
"""

from __future__ import annotations

import http.client
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import Section, Spread, Target, peak_rss_mib, report_main, table
from tests.collector import Collector  # `spendwatch up` as a subprocess, as the tests run it

SPANS_PER_EXPORT = 512
EXPORTERS = 4
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5", "claude-haiku-4-5", "gemini-2.5-flash"]
PROVIDERS = {"gpt": "openai", "claude": "anthropic", "gemini": "gcp.gemini"}


def build_payloads(exports: int, seed: int = 1) -> list[bytes]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    generator = random.Random(seed)
    now = time.time_ns()

    def attribute(key: str, value: object) -> KeyValue:
        if isinstance(value, bool):
            return KeyValue(key=key, value=AnyValue(bool_value=value))
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        if isinstance(value, list):
            from opentelemetry.proto.common.v1.common_pb2 import ArrayValue

            return KeyValue(
                key=key, value=AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=v) for v in value]))
            )
        return KeyValue(key=key, value=AnyValue(string_value=str(value)))

    payloads = []
    for export in range(exports):
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.append(attribute("service.name", f"service-{export % 10}"))
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = "spendwatch"
        for _ in range(SPANS_PER_EXPORT):
            model = generator.choice(MODELS)
            provider = PROVIDERS[model.split("-")[0]]
            start = now - generator.randrange(0, 3_600_000_000_000)
            input_tokens = generator.randrange(20, 4000)
            span = Span(
                trace_id=generator.randbytes(16),
                span_id=generator.randbytes(8),
                name=f"chat {model}",
                kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=start,
                end_time_unix_nano=start + generator.randrange(200_000_000, 9_000_000_000),
            )
            span.attributes.extend(
                [
                    attribute("gen_ai.provider.name", provider),
                    attribute("gen_ai.operation.name", "chat"),
                    attribute("gen_ai.request.stream", generator.random() < 0.5),
                    attribute("server.address", f"api.{provider}.example"),
                    attribute("server.port", 443),
                    attribute("gen_ai.request.model", model),
                    attribute("gen_ai.response.model", model + "-2025-01-01"),
                    attribute("gen_ai.response.id", f"resp-{generator.getrandbits(64):016x}"),
                    attribute("gen_ai.response.finish_reasons", ["stop"]),
                    attribute("http.response.status_code", 200),
                    attribute("gen_ai.usage.input_tokens", input_tokens),
                    attribute("gen_ai.usage.output_tokens", generator.randrange(1, 800)),
                    attribute("gen_ai.usage.cache_read.input_tokens", input_tokens // 3),
                    attribute("spendwatch.usage.estimated", False),
                    attribute("spendwatch.api_key.id", f"{generator.randrange(50):016x}"),
                    attribute("spendwatch.api_key.hint", f"{generator.randrange(10000):04d}"),
                ]
            )
            scope_spans.spans.append(span)
        payloads.append(request.SerializeToString())
    return payloads


# In the reference table: the two times, server.port, the status code and the three token counts.
INTEGER_COLUMNS = (2, 3, 8, 13, 14, 15, 16)


def in_process_limit(payloads: list[bytes], directory: Path) -> float:
    """Spans per second through the minimal pipeline: upb decode, a tuple per span, the Appender."""
    import duckdb
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    con = duckdb.connect(str(directory / "limit.duckdb"))
    columns = [f"c{index} {'BIGINT' if index in INTEGER_COLUMNS else 'VARCHAR'}" for index in range(17)]
    con.execute(f"CREATE TABLE spans ({', '.join(columns)})")
    appender = con.appender("spans")
    started = time.perf_counter()
    for body in payloads:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        rows = []
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    values = [
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                    ]
                    for attribute in span.attributes:
                        kind = attribute.value.WhichOneof("value")
                        values.append(getattr(attribute.value, kind) if kind != "array_value" else "stop")
                    row = values[:17]
                    rows.append(
                        tuple(value if index in INTEGER_COLUMNS else str(value) for index, value in enumerate(row))
                    )
        appender.append_rows(rows)
        appender.flush()
    elapsed = time.perf_counter() - started
    con.close()
    return len(payloads) * SPANS_PER_EXPORT / elapsed


def spendwatch_in_process(payloads: list[bytes], directory: Path) -> float:
    """Spans per second through decode → rows → Store.write, one thread, one commit per export."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from spendwatch.collector import otlp
    from spendwatch.collector.pricing import Pricer, price_rows
    from spendwatch.collector.spans import Counts, rows_from_request
    from spendwatch.collector.store import Store

    store = Store(directory / "in-process.duckdb")
    pricer = Pricer()
    counts = Counts()
    started = time.perf_counter()
    for body in payloads:
        request, _ = otlp.decode(ExportTraceServiceRequest, body, "application/x-protobuf")
        store.write(price_rows(rows_from_request(request, counts), pricer))
    elapsed = time.perf_counter() - started
    store.close()
    return len(payloads) * SPANS_PER_EXPORT / elapsed


HEAVY_READ = "SELECT range, repeat('x', 200) AS padding FROM range(20000000) ORDER BY range DESC"


def heavy_reads(info: dict, stop: threading.Event, answers: list[int]) -> None:
    """Heavy queries through the read API, one after another, until `stop`: each answers its capped result."""
    import json
    import urllib.request

    while not stop.is_set():
        request = urllib.request.Request(
            info["read_url"] + "/query",
            data=json.dumps({"sql": HEAVY_READ}).encode(),
            headers={"authorization": f"Bearer {info['token']}", "content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
            answers.append(response.status)


def send_http(port: int, bodies: list[bytes], latencies: list[float]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"content-type": "application/x-protobuf"}
    for body in bodies:
        started = time.perf_counter()
        connection.request("POST", "/v1/traces", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"export answered {response.status}")
        latencies.append(time.perf_counter() - started)
    connection.close()


def send_grpc(port: int, bodies: list[bytes], latencies: list[float]) -> None:
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,  # the bytes are already the serialised request
            response_deserializer=None,
        )
        for body in bodies:
            started = time.perf_counter()
            export(body, timeout=60)
            latencies.append(time.perf_counter() - started)


def through_daemon(payloads: list[bytes], directory: Path, protocol: str, read: bool = False) -> dict[str, float]:
    name = protocol + ("-read" if read else "")
    daemon = Collector(directory / f"{name}.duckdb", directory / f"{name}.log", extra=("--no-ui",)).start()
    stop_reading = threading.Event()
    reads: list[int] = []
    reader = threading.Thread(target=heavy_reads, args=(daemon.info, stop_reading, reads))
    if read:
        reader.start()
        time.sleep(0.5)  # the first read is running when the exporters start
    send = send_http if protocol == "http" else send_grpc
    port = daemon.info["http_port"] if protocol == "http" else daemon.info["grpc_port"]
    shares = [payloads[index::EXPORTERS] for index in range(EXPORTERS)]
    latencies: list[list[float]] = [[] for _ in shares]
    errors: list[BaseException] = []

    def exporter(index: int) -> None:
        try:
            send(port, shares[index], latencies[index])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=exporter, args=(index,)) for index in range(EXPORTERS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if read:
        stop_reading.set()
        reader.join()
        if not reads:
            raise RuntimeError("no heavy read was answered")
    rss = peak_rss_mib(daemon.process.pid)
    daemon.stop()
    if errors:
        raise RuntimeError(f"{protocol} exporter failed: {errors[0]!r}")
    import duckdb

    with duckdb.connect(str(daemon.db), read_only=True) as con:
        (stored,) = con.execute("SELECT count(*) FROM llm_call_spans").fetchone()
    expected = len(payloads) * SPANS_PER_EXPORT
    if stored != expected:
        raise RuntimeError(f"{protocol}: {stored} spans stored, {expected} sent")
    every = sorted(value for share in latencies for value in share)
    return {
        "rate": expected / elapsed,
        "p50_ms": statistics.median(every) * 1000,
        "p99_ms": every[min(len(every) - 1, int(len(every) * 0.99))] * 1000,
        "rss_mib": rss or 0.0,
        "reads": float(len(reads)),
    }


def run(quick: bool) -> Section:
    exports, rounds = (20, 1) if quick else (120, 3)
    payloads = build_payloads(exports)
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as temporary:
        for round_number in range(rounds):
            directory = Path(temporary) / str(round_number)
            directory.mkdir()
            figures.setdefault("limit", []).append(in_process_limit(payloads, directory))
            figures.setdefault("own", []).append(spendwatch_in_process(payloads, directory))
            for protocol, read in (("http", False), ("grpc", False), ("http", True)):
                name = protocol + ("_read" if read else "")
                for figure, value in through_daemon(payloads, directory, protocol, read).items():
                    figures.setdefault(f"{name}_{figure}", []).append(value)
    limit = Spread(figures["limit"])

    def ratio(name: str) -> Spread:
        return Spread([value / figures["limit"][index] for index, value in enumerate(figures[name])])

    rows = [
        ["in-process limit (upb decode, tuples, Appender; one thread)", limit.show(" spans/s", 0), "1.00", "", "", ""],
        [
            "spendwatch's pipeline in process (decode, rows, Store.write; one thread)",
            Spread(figures["own"]).show(" spans/s", 0),
            ratio("own").show("", 2),
            "",
            "",
            "",
        ],
    ]
    targets = []
    for name, label in (
        ("http", "OTLP/HTTP"),
        ("grpc", "OTLP/gRPC"),
        ("http_read", "OTLP/HTTP, during heavy reads"),
    ):
        rows.append(
            [
                f"`spendwatch up`, {label}, {EXPORTERS} exporters",
                Spread(figures[f"{name}_rate"]).show(" spans/s", 0),
                ratio(f"{name}_rate").show("", 2),
                Spread(figures[f"{name}_p50_ms"]).show(" ms", 0),
                Spread(figures[f"{name}_p99_ms"]).show(" ms", 0),
                Spread(figures[f"{name}_rss_mib"]).show(" MiB", 0),
            ]
        )
    for name, label in (("http", "OTLP/HTTP"), ("grpc", "OTLP/gRPC")):
        share = ratio(f"{name}_rate")
        targets.append(Target(f"ingest over {label} / in-process limit", share.median, 0.7, share.show("", 2), True))
    p99 = Spread(figures["http_read_p99_ms"])
    targets.append(Target("OTLP/HTTP acknowledgement p99 during heavy reads", p99.median, 1000, p99.show(" ms", 0)))
    reads = Spread(figures["http_read_reads"])
    body = f"""{exports} exports of {SPANS_PER_EXPORT} GenAI spans ({exports * SPANS_PER_EXPORT:,} spans), {rounds}
round(s), each round into fresh databases; the same payload bytes for every row. Each exporter
sends its next export when the previous one is acknowledged, and the daemon acknowledges after the
commit. Every stored count is checked against what was sent. The last row sends the same exports while
the read API answers a heavy query again and again, a sort of 20M rows of 200 bytes whose answer is
capped at 100,000 rows ({reads.show("", 0)} answered, one running the whole time):
`{HEAVY_READ}`.

{table(["", "spans/s", "× limit", "ack p50", "ack p99", "daemon peak RSS"], rows)}
"""
    return Section("Collector ingest", body, targets)


if __name__ == "__main__":
    report_main(run)
