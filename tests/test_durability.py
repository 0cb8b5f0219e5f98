"""Durability: duplicates stored once, retention, write failures, a killed daemon, a slowed writer."""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx

from spendwatch.collector.store import Store
from tests.collector import Collector
from tests.test_rules_budget import call


def export_of(spans: list[tuple[str, str]]) -> dict:
    now = time.time_ns()
    attributes = [
        {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
        {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
        {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "10"}},
    ]
    return {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "scope": {"name": "spendwatch.instrumentation"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "name": "chat",
                                "attributes": attributes,
                                "startTimeUnixNano": str(now),
                                "endTimeUnixNano": str(now + 1000),
                            }
                            for trace_id, span_id in spans
                        ],
                    }
                ]
            }
        ]
    }


def new_spans(count: int) -> list[tuple[str, str]]:
    return [(secrets.token_hex(16), secrets.token_hex(8)) for _ in range(count)]


def test_duplicates_within_one_batch_and_across_batches(tmp_path):
    collector = Collector(tmp_path / "spendwatch.duckdb", tmp_path / "log").start()
    spans = new_spans(5)
    with httpx.Client(base_url=collector.http_endpoint) as client:
        assert client.post("/v1/traces", json=export_of(spans + spans[:2])).status_code == 200  # twice in a batch
        assert client.post("/v1/traces", json=export_of(spans[1:] + new_spans(1))).status_code == 200  # again
    assert collector.stop() == 0
    assert collector.query("SELECT count(*), count(DISTINCT span_id) FROM llm_calls") == [(6, 6)]


def test_retention_prunes_what_is_older_than_asked(tmp_path):
    store = Store(tmp_path / "spendwatch.duckdb")
    now = datetime(2026, 11, 25, tzinfo=UTC)
    store.write([call(now - timedelta(days=days), 1.0) for days in (1, 100, 399, 401, 800)])
    assert store.prune(now - timedelta(days=400)) == 2
    remaining = sorted(row[0] for row in store.con.execute("SELECT start_time FROM llm_calls").fetchall())
    assert [round((now - moment).total_seconds() / 86400) for moment in remaining] == [399, 100, 1]
    store.close()


def test_retention_runs_in_the_daemon(tmp_path):
    db = tmp_path / "spendwatch.duckdb"
    store = Store(db)
    store.write([call(datetime.now(UTC) - timedelta(days=days), 1.0) for days in (1, 30)])
    store.close()
    config = tmp_path / "spendwatch.toml"
    config.write_text('retention = "7d"\n')
    collector = Collector(db, tmp_path / "log", config=config).start()
    deadline = time.monotonic() + 10
    while "retention: deleted 1 calls" not in collector.log.read_text():
        assert time.monotonic() < deadline, collector.log.read_text()
        time.sleep(0.05)
    assert collector.stop() == 0
    assert collector.query("SELECT count(*) FROM llm_calls") == [(1,)]


class Exporter(threading.Thread):
    """Sends batches of new spans and retries each until it is acknowledged, as the OTel SDK's exporter does."""

    def __init__(self, endpoint: callable, batches: int, size: int) -> None:
        super().__init__(daemon=True)
        self.endpoint = endpoint
        self.batches, self.size = batches, size
        self.acknowledged: list[tuple[str, str]] = []
        self.retryable_answers = 0

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            for _ in range(self.batches):
                spans = new_spans(self.size)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    try:
                        answer = client.post(self.endpoint() + "/v1/traces", json=export_of(spans))
                    except httpx.TransportError:
                        time.sleep(0.05)
                        continue
                    if answer.status_code == 200:
                        self.acknowledged += spans
                        break
                    assert answer.status_code in (429, 503), answer.text
                    self.retryable_answers += 1
                    time.sleep(float(answer.headers.get("retry-after", "0.1")) / 10)


def test_sigkill_mid_stream_loses_no_acknowledged_span(tmp_path):
    db = tmp_path / "spendwatch.duckdb"
    collector = Collector(db, tmp_path / "log").start()
    port = collector.info["http_port"]
    current = {"endpoint": collector.http_endpoint}
    exporters = [Exporter(lambda: current["endpoint"], batches=40, size=50) for _ in range(4)]
    for exporter in exporters:
        exporter.start()
    deadline = time.monotonic() + 20
    while not all(exporter.acknowledged for exporter in exporters):  # mid-stream: each has had answers
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(collector.process.pid, signal.SIGKILL)  # mid-stream: exports in flight are lost, unacknowledged
    collector.process.wait()
    restarted = Collector(db, tmp_path / "log2", http_port=port).start()  # the same port: exporters retry
    for exporter in exporters:
        exporter.join(timeout=120)
    assert restarted.stop() == 0
    acknowledged = {span for exporter in exporters for span in exporter.acknowledged}
    assert len(acknowledged) == 4 * 40 * 50
    stored = restarted.query("SELECT trace_id, span_id FROM llm_call_spans")
    assert len(stored) == len(set(stored))  # none twice
    assert acknowledged <= set(stored)  # every acknowledged span


def test_a_slowed_writer_answers_retryably_and_stores_everything_once(tmp_path):
    db = tmp_path / "spendwatch.duckdb"
    collector = Collector(
        db,
        tmp_path / "log",
        env={"FAULT_WRITE_DELAY": "0.2", "SPENDWATCH_MAX_QUEUED_SPANS": "50"},
        module="tests.faulty_daemon",
    ).start()
    exporters = [Exporter(lambda: collector.http_endpoint, batches=15, size=20) for _ in range(8)]
    peak_rss = 0
    for exporter in exporters:
        exporter.start()
    while any(exporter.is_alive() for exporter in exporters):
        peak_rss = max(peak_rss, _rss_kib(collector.process.pid))
        time.sleep(0.1)
    assert collector.stop() == 0
    assert sum(exporter.retryable_answers for exporter in exporters) > 0  # the writer fell behind, and said so
    assert peak_rss < 400_000  # KiB: bounded, not growing with the backlog
    acknowledged = {span for exporter in exporters for span in exporter.acknowledged}
    stored = collector.query("SELECT trace_id, span_id FROM llm_call_spans")
    assert len(stored) == len(set(stored)) == len(acknowledged) == 8 * 15 * 20


def test_a_write_failure_is_retryable_and_recovers_by_itself(tmp_path):
    fail = tmp_path / "fail-writes"
    fail.touch()
    collector = Collector(
        tmp_path / "spendwatch.duckdb",
        tmp_path / "log",
        env={"FAULT_FAIL_WRITES_WHILE": str(fail)},
        module="tests.faulty_daemon",
    ).start()
    spans = new_spans(3)
    with httpx.Client(base_url=collector.http_endpoint) as client:
        failed = client.post("/v1/traces", json=export_of(spans))
        assert failed.status_code == 503 and failed.headers["retry-after"] == "1"
        assert client.get("/ready").status_code == 503 and client.get("/health").status_code == 200
        fail.unlink()  # the disk has room again
        assert client.post("/v1/traces", json=export_of(spans)).status_code == 200
        assert client.get("/ready").status_code == 200
    assert collector.stop() == 0
    assert "writing 3 calls failed" in collector.log.read_text()
    assert collector.query("SELECT count(*) FROM llm_calls") == [(3,)]


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_exports_in_flight_are_bounded(tmp_path):
    env = {"FAULT_WRITE_DELAY": "1.5", "SPENDWATCH_MAX_EXPORTS_IN_FLIGHT": "1"}
    collector = Collector(
        tmp_path / "spendwatch.duckdb", tmp_path / "log", env=env, module="tests.faulty_daemon"
    ).start()
    answers = []

    def post() -> None:
        answers.append(httpx.post(collector.http_endpoint + "/v1/traces", json=export_of(new_spans(1)), timeout=30))

    first = threading.Thread(target=post)
    first.start()
    collector.wait_until("exports_in_flight", 1)  # the first export now waits for the slowed writer
    post()
    first.join()
    assert collector.stop() == 0
    assert sorted(answer.status_code for answer in answers) == [200, 503]
    refused = next(answer for answer in answers if answer.status_code == 503)
    assert "too many exports in flight" in refused.text and refused.headers["retry-after"] == "1"
