"""How many GenAI spans per second the collector stores, next to what one thread can do with no server.

The payloads are built once: OTLP ExportTraceServiceRequests of 512 GenAI spans each, as spendwatch's
instrumentation sends them (provider, models, usage, key id, finish reasons), every span with its own ids.
The same bytes go to three places in one run:
- the **in-process limit**: one thread decodes them, turns them into rows and commits them with the
  collector's own Store (Appender, staging table, keyed insert) — everything but the server;
- `spendwatch up` over **OTLP/HTTP** and over **OTLP/gRPC**, each from 4 concurrent exporters that send
  the pre-serialised bytes and wait for the acknowledgement, which the daemon gives after its commit.
The daemon runs as a real subprocess on a fresh database for each protocol (started as the tests start
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


def in_process_limit(payloads: list[bytes], directory: Path) -> float:
    """Spans per second through decode → rows → Store.write, one thread, one commit per export."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from spendwatch.collector import otlp
    from spendwatch.collector.pricing import Pricer
    from spendwatch.collector.spans import Counts, rows_from_request
    from spendwatch.collector.store import Store

    store = Store(directory / "in-process.duckdb")
    pricer = Pricer()
    counts = Counts()
    started = time.perf_counter()
    for body in payloads:
        request, _ = otlp.decode(ExportTraceServiceRequest, body, "application/x-protobuf")
        store.write(rows_from_request(request, pricer, counts))
    elapsed = time.perf_counter() - started
    store.close()
    return len(payloads) * SPANS_PER_EXPORT / elapsed


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


def through_daemon(payloads: list[bytes], directory: Path, protocol: str) -> dict[str, float]:
    daemon = Collector(directory / f"{protocol}.duckdb", directory / f"{protocol}.log", extra=("--no-ui",)).start()
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
            for protocol in ("http", "grpc"):
                for name, value in through_daemon(payloads, directory, protocol).items():
                    figures.setdefault(f"{protocol}_{name}", []).append(value)
    limit = Spread(figures["limit"])
    rows = [["in-process limit (decode, rows, Store.write; one thread)", limit.show(" spans/s", 0), "1.00", "", "", ""]]
    targets = []
    for protocol, label in (("http", "OTLP/HTTP"), ("grpc", "OTLP/gRPC")):
        rate = Spread(figures[f"{protocol}_rate"])
        ratio = Spread([value / figures["limit"][index] for index, value in enumerate(figures[f"{protocol}_rate"])])
        rows.append(
            [
                f"`spendwatch up`, {label}, {EXPORTERS} exporters",
                rate.show(" spans/s", 0),
                ratio.show("", 2),
                Spread(figures[f"{protocol}_p50_ms"]).show(" ms", 0),
                Spread(figures[f"{protocol}_p99_ms"]).show(" ms", 0),
                Spread(figures[f"{protocol}_rss_mib"]).show(" MiB", 0),
            ]
        )
        targets.append(Target(f"ingest over {label} / in-process limit", ratio.median, 0.7, ratio.show("", 2), True))
    body = f"""{exports} exports of {SPANS_PER_EXPORT} GenAI spans ({exports * SPANS_PER_EXPORT:,} spans), {rounds}
round(s), each round into fresh databases; the same payload bytes for all three rows. Each exporter
sends its next export when the previous one is acknowledged, and the daemon acknowledges after the
commit. Every stored count is checked against what was sent.

{table(["", "spans/s", "× limit", "ack p50", "ack p99", "daemon peak RSS"], rows)}
"""
    return Section("Collector ingest", body, targets)


if __name__ == "__main__":
    report_main(run)
