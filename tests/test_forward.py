"""Forwarding to upstream OTLP endpoints (`[[forward]]`): an upstream that is down for a while, across a
restart of the daemon, gets every span once; no prompt, completion or secret leaves (canaries); a chain
of two daemons over OTLP/HTTP stores the same calls; the queue on disk is bounded."""

from __future__ import annotations

import secrets
import socket
import time

import httpx
import pytest

from spendwatch.config import ConfigError, resolve
from tests.collector import Collector
from tests.otlp_receiver import OtlpReceiver, attributes

CANARIES = (
    "CANARY-PROMPT-7f3a",
    "CANARY-COMPLETION-91bc",
    "CANARY-EVENT-2d4e",
    f"sk-proj-{secrets.token_hex(20)}",  # a key made up at run time
    "CANARYQUERYKEY42",
    "CANARY-TOOL-ARGS-5e6f",
    "CANARY-DB-STATEMENT-8a9b",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def attribute(key, value):
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def traffic(index: int) -> tuple[dict, set[str]]:
    """One export: an app's request span, the SDK call under it carrying content everywhere an
    instrumentation puts it, and spendwatch's own span; and the span ids sent."""
    trace_id = secrets.token_hex(16)
    root, call, ours = (secrets.token_hex(8) for _ in range(3))
    now = time.time_ns()

    def span(span_id, parent, name, attrs, events=()):
        document = {
            "traceId": trace_id,
            "spanId": span_id,
            "name": name,
            "kind": 3,
            "startTimeUnixNano": str(now - 3_000_000_000),
            "endTimeUnixNano": str(now),
            "attributes": [attribute(key, value) for key, value in attrs.items()],
            "events": list(events),
            "status": {"code": 2, "message": f"failed with key {CANARIES[3]}"},
        }
        if parent:
            document["parentSpanId"] = parent
        return document

    model_call = {
        "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 1000 + index,
        "gen_ai.usage.output_tokens": 10,
    }
    spans = [
        span(root, None, "POST /checkout", {"http.route": "/checkout", "db.statement": f"SELECT '{CANARIES[6]}'"}),
        span(
            call,
            root,
            f"chat gpt-4o-mini {CANARIES[3]}",
            {
                **model_call,
                "gen_ai.input.messages": f'[{{"role": "user", "content": "{CANARIES[0]}"}}]',
                "gen_ai.output.messages": f'[{{"role": "assistant", "content": "{CANARIES[1]}"}}]',
                "gen_ai.prompt": CANARIES[0],
                "gen_ai.tool.call.arguments": CANARIES[5],
                "app.debug": f"key={CANARIES[3]}",
                "url.full": f"https://api.openai.com/v1/chat/completions?key={CANARIES[4]}",
            },
            events=[
                {
                    "timeUnixNano": str(now),
                    "name": "gen_ai.content.prompt",
                    "attributes": [attribute("gen_ai.prompt", CANARIES[2])],
                }
            ],
        ),
        span(ours, call, "chat gpt-4o-mini", {**model_call, "spendwatch.fingerprint.id": "c" * 16}),
    ]
    document = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [attribute("service.name", "checkout"), attribute("user.email", CANARIES[0])]
                },
                "scopeSpans": [{"scope": {"name": "app"}, "spans": spans}],
            }
        ]
    }
    return document, {root, call, ours}


def send(collector, document) -> None:
    with httpx.Client(base_url=collector.http_endpoint) as client:
        answer = client.post("/v1/traces", json=document)
    assert answer.status_code == 200, answer.text


def metric(collector, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    answer = httpx.get(collector.info["metrics_url"], headers={"authorization": f"Bearer {collector.info['token']}"})
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"{name} not in /metrics")


def wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def start(tmp_path, forward: str) -> Collector:
    config = tmp_path / "spendwatch.toml"
    config.write_text('metrics_scrape_interval = "0s"\n[daemon]\nsettle = "0s"\n\n' + forward)
    return Collector(tmp_path / "spendwatch.duckdb", tmp_path / "log", config=config).start()


def test_an_upstream_down_for_a_while_and_a_restart_lose_nothing_and_send_no_content(tmp_path):
    port = free_port()
    forward = f"""[[forward]]
endpoint = "http://127.0.0.1:{port}"
protocol = "grpc"
timeout = "2s"
headers = {{ authorization = "Bearer upstream-token" }}
"""
    collector = start(tmp_path, forward)
    sent: set[str] = set()
    for index in range(10):  # the upstream is down
        document, ids = traffic(index)
        send(collector, document)
        sent |= ids
    wait_for(lambda: metric(collector, "spendwatch_forward_retries_total") >= 2, "no retry while the upstream is down")
    assert metric(collector, "spendwatch_forward_queue_exports") == 10
    assert collector.stop() == 0  # the queue stays on disk
    collector = Collector(collector.db, collector.log, config=collector.config).start()
    for index in range(10, 15):
        document, ids = traffic(index)
        send(collector, document)
        sent |= ids
    assert metric(collector, "spendwatch_forward_queue_exports") == 15
    with OtlpReceiver(port) as receiver:  # the upstream comes back
        wait_for(lambda: len(receiver.spans) >= len(sent), f"{len(receiver.spans)} of {len(sent)} spans arrived")
        wait_for(lambda: metric(collector, "spendwatch_forward_queue_exports") == 0, "the queue did not empty")
        received = [span.span_id.hex() for _, _, span in receiver.spans]
        payloads = [request.SerializeToString() for request in receiver.requests]
    assert sorted(received) == sorted(sent)  # every span, each once: nothing was in flight when it failed
    assert metric(collector, "spendwatch_forward_spans_total") == len(sent)  # all sent by the restarted daemon
    assert metric(collector, "spendwatch_forward_dropped_spans_total") == 0
    for payload in payloads:
        for canary in CANARIES:
            assert canary.encode() not in payload, canary
    # what a tracing backend needs is still there
    calls = [
        (resource, attributes(span)) for resource, _, span in receiver.spans if span.name.startswith("chat gpt-4o-mini")
    ]
    assert len(calls) == 30
    for resource, attrs in calls:
        assert resource == {"service.name": "checkout"}
        assert attrs["gen_ai.request.model"] == "gpt-4o-mini" and attrs["gen_ai.usage.output_tokens"] == 10
        assert "gen_ai.input.messages" not in attrs and "gen_ai.prompt" not in attrs and "app.debug" not in attrs
        if "url.full" in attrs:
            assert attrs["url.full"].startswith("https://api.openai.com/v1/chat/completions?key=")
    roots = [span for _, _, span in receiver.spans if span.name == "POST /checkout"]
    assert len(roots) == 15 and all(attributes(span) == {"http.route": "/checkout"} for span in roots)
    assert all(not span.events or not span.events[0].attributes for _, _, span in receiver.spans)
    assert collector.stop() == 0


def test_a_chain_of_two_daemons_over_otlp_http_stores_the_same_calls(tmp_path):
    upstream = Collector(tmp_path / "upstream.duckdb", tmp_path / "upstream.log").start()
    collector = start(tmp_path, f'[[forward]]\nendpoint = "{upstream.http_endpoint}"\n')
    for index in range(5):
        send(collector, traffic(index)[0])
    wait_for(lambda: metric(collector, "spendwatch_forward_spans_total") == 15, "not every span was forwarded")
    assert metric(upstream, "spendwatch_spans_received_total") == 15
    sql = "SELECT trace_id, span_id, model, input_tokens, cost_usd FROM llm_calls ORDER BY ALL"
    assert collector.stop() == 0
    assert upstream.stop() == 0
    downstream_calls = collector.query(sql)
    assert len(downstream_calls) == 5
    assert upstream.query(sql) == downstream_calls


def forward_three_calls(directory, port: int, strip: str) -> dict[str, float]:
    """Three calls of two spans each through a daemon forwarding to `port`; the cost of each call stored."""
    directory.mkdir()
    collector = start(
        directory, f'[[forward]]\nendpoint = "http://127.0.0.1:{port}"\nprotocol = "grpc"\nstrip = {strip}\n'
    )
    for index in range(3):
        send(collector, traffic(index)[0])
    wait_for(lambda: metric(collector, "spendwatch_forward_spans_total") == 9, "not every span was forwarded")
    assert collector.stop() == 0
    return {span_id: cost for span_id, cost in collector.query("SELECT span_id, cost_usd FROM llm_calls")}


@pytest.mark.parametrize("strip", ["true", "false"])
def test_each_call_is_forwarded_with_its_cost_once_on_the_span_counted(tmp_path, strip):
    """The cost proposal's `gen_ai.usage.cost.amount` on the span `llm_calls` counts, not on the sibling
    span of the same call it superseded: an upstream that sums the attribute counts each call once."""
    with OtlpReceiver() as receiver:
        stored = forward_three_calls(tmp_path / "daemon", receiver.port, strip)
        spans = [span for _, _, span in receiver.spans]
    assert len(stored) == 3 and all(cost > 0 for cost in stored.values())
    assert len(spans) == 9
    priced = {span.span_id.hex(): attributes(span) for span in spans if "gen_ai.usage.cost.amount" in attributes(span)}
    assert {span_id: attrs["gen_ai.usage.cost.amount"] for span_id, attrs in priced.items()} == stored
    assert all(
        (attrs["gen_ai.usage.cost.currency"], attrs["gen_ai.usage.cost.source"]) == ("USD", "local")
        for attrs in priced.values()
    )


def test_the_queue_on_disk_is_bounded(tmp_path):
    forward = f'[[forward]]\nendpoint = "http://127.0.0.1:{free_port()}"\nmax_queue_mb = 0.01\ntimeout = "1s"\n'
    collector = start(tmp_path, forward)
    for index in range(20):  # about 2 KB each, the upstream down: about 5 fit
        send(collector, traffic(index)[0])
    queued = metric(collector, "spendwatch_forward_queue_exports")
    assert 0 < queued < 20
    assert metric(collector, "spendwatch_forward_dropped_spans_total") == (20 - queued) * 3
    files = list((tmp_path / "spendwatch.duckdb.forward").rglob("*.pb"))
    assert len(files) == queued and sum(path.stat().st_size for path in files) <= 0.01 * 1024 * 1024
    assert collector.stop() == 0


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('endpoint = "collector:4318"', "forward[0].endpoint: expected a URL"),
        ('endpoint = "http://c:4318"\nprotocol = "thrift"', "forward[0].protocol: expected one of"),
        ('endpoint = "http://c:4318"\nheaders = { x = 1 }', "forward[0].headers: expected a table of strings"),
        ('endpoint = "http://c:4318"\nqueue = 1', "forward[0].queue: unknown key"),
        ('endpoint = "http://c:4318"\nmax_queue_mb = 0', "forward[0].max_queue_mb: expected a number"),
    ],
)
def test_a_bad_forward_table_names_the_file_and_the_key(tmp_path, table, message):
    config = tmp_path / "spendwatch.toml"
    config.write_text(f"[[forward]]\n{table}\n")
    with pytest.raises(ConfigError) as raised:
        resolve({"config": str(config)})
    assert str(raised.value).startswith(f"{config}: {message}")
