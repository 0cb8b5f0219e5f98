"""`/metrics` scraped by a real Prometheus server (Debian's package), and the counters' arithmetic: every
call counted once, also when a later span supersedes one already counted, and the cardinality guard."""

from __future__ import annotations

import math
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.collector import Collector, run_cli

OPENAI_V2 = "opentelemetry.instrumentation.openai_v2"  # a peer's scope: a span that is not spendwatch's
SPENDWATCH = "spendwatch.instrumentation"
KEYS = ("a" * 16, "b" * 16)


def attribute(key, value):
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def call_span(trace_id, span_id, *, model="gpt-4o-mini", input_tokens=1_000_000, key=None, parent=None, error=None):
    """A chat call: gpt-4o-mini input is $0.15 a million tokens, gpt-4o's $2.50."""
    now = time.time_ns()
    attributes = {
        "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": 0,
    }
    if key:
        attributes["spendwatch.api_key.id"] = key
    if error:
        attributes["error.type"] = error
    span = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": f"chat {model}",
        "kind": 3,
        "startTimeUnixNano": str(now - 2_000_000_000),
        "endTimeUnixNano": str(now),
        "attributes": [attribute(name, value) for name, value in attributes.items()],
    }
    if parent:
        span["parentSpanId"] = parent
    return span


def export(scope, spans, service="checkout"):
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [attribute("service.name", service)]},
                "scopeSpans": [{"scope": {"name": scope}, "spans": spans}],
            }
        ]
    }


def send(collector, document):
    with httpx.Client(base_url=collector.http_endpoint) as client:
        answer = client.post("/v1/traces", json=document)
    assert answer.status_code == 200, answer.text


def scrape(collector) -> dict[str, list]:
    """{metric family: [(labels, value), ...]} as /metrics answers now."""
    answer = httpx.get(
        collector.info["metrics_url"], headers={"authorization": f"Bearer {collector.info['token']}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return {
        family.name: [(sample.labels, sample.value) for sample in family.samples if sample.name.endswith("_total")]
        or [(sample.labels, sample.value) for sample in family.samples]
        for family in text_string_to_metric_families(answer.text)
    }


def stored(collector, sql):
    answer = httpx.post(
        collector.info["read_url"] + "/query",
        json={"sql": sql},
        headers={"authorization": f"Bearer {collector.info['token']}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["rows"]


def total(samples, **match) -> float:
    return sum(value for labels, value in samples if all(labels.get(name) == want for name, want in match.items()))


def start(tmp_path, extra_config="", settings='metrics_scrape_interval = "0s"\n'):
    config = tmp_path / "spendwatch.toml"
    config.write_text(settings + '[daemon]\nsettle = "0s"\n' + extra_config)
    return Collector(tmp_path / "spendwatch.duckdb", tmp_path / "log", config=config).start()


def test_metrics_need_the_token(tmp_path):
    collector = start(tmp_path)
    assert httpx.get(collector.info["metrics_url"]).status_code == 401
    wrong = httpx.get(collector.info["metrics_url"], headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert collector.stop() == 0


def test_each_call_counted_once_also_when_a_later_span_supersedes_a_counted_one(tmp_path):
    collector = start(tmp_path)
    # the SDK's span (a peer's: no key) arrives first and is counted on the next scrape
    trace_id, outer = secrets.token_hex(16), secrets.token_hex(8)
    send(collector, export(OPENAI_V2, [call_span(trace_id, outer, input_tokens=1_000_000)]))
    spend = scrape(collector)["spendwatch_cost_usd"]
    assert math.isclose(total(spend), 0.15, rel_tol=1e-9)
    # spendwatch's span inside it, with the key and the exact usage, arrives later and wins
    send(collector, export(SPENDWATCH, [call_span(trace_id, secrets.token_hex(8), key=KEYS[0], parent=outer,
                                                  input_tokens=2_000_000)]))  # fmt: skip
    # and a call whose two spans arrive in one export, counted once from the start
    trace_id, outer = secrets.token_hex(16), secrets.token_hex(8)
    sdk_span = export(OPENAI_V2, [call_span(trace_id, outer, model="gpt-4o")])
    ours = export(SPENDWATCH, [call_span(trace_id, secrets.token_hex(8), model="gpt-4o", key=KEYS[1], parent=outer)])
    send(collector, {"resourceSpans": sdk_span["resourceSpans"] + ours["resourceSpans"]})
    metrics = scrape(collector)
    ((stored_spend, stored_calls),) = stored(collector, "SELECT sum(cost_usd), count(*) FROM llm_calls")
    assert stored_calls == 2
    assert math.isclose(total(metrics["spendwatch_cost_usd"]), stored_spend, rel_tol=1e-9)
    assert total(metrics["spendwatch_calls"]) == 2
    # nothing went down: the first span's labels keep what they had, the winner's have the rest
    assert math.isclose(total(metrics["spendwatch_cost_usd"], api_key_id=""), 0.15, rel_tol=1e-9)
    assert math.isclose(total(metrics["spendwatch_cost_usd"], api_key_id=KEYS[0]), 0.30 - 0.15, rel_tol=1e-9)
    assert math.isclose(total(metrics["spendwatch_cost_usd"], api_key_id=KEYS[1]), 2.50, rel_tol=1e-9)
    assert total(metrics["spendwatch_tokens"], kind="input") == 3_000_000  # 1M, then 2M less 1M, then 1M
    assert total(metrics["spendwatch_spans_received"]) == 4
    assert collector.stop() == 0


def test_the_cardinality_guard_keeps_the_top_values_and_sums_the_rest_as_other(tmp_path):
    collector = start(tmp_path, settings='metrics_top = 2\nmetrics_scrape_interval = "0s"\n')
    models = {"gpt-4o": 2.50, "gpt-4o-mini": 0.15, "gpt-4.1-mini": 0.40}
    for model in models:
        send(collector, export(SPENDWATCH, [call_span(secrets.token_hex(16), secrets.token_hex(8), model=model)]))
        scrape(collector)  # seen one at a time: the first two take the places
    spend = scrape(collector)["spendwatch_cost_usd"]
    assert {labels["model"] for labels, _ in spend} == {"gpt-4o", "gpt-4o-mini", "[other]"}
    assert math.isclose(total(spend, model="[other]"), 0.40, rel_tol=1e-9)
    assert math.isclose(total(spend), sum(models.values()), rel_tol=1e-9)
    assert collector.stop() == 0


def test_the_guard_bounds_the_label_sets_of_each_spend_metric(tmp_path):
    collector = start(tmp_path, settings='metrics_max_series = 3\nmetrics_scrape_interval = "0s"\n')
    services = [f"service-{index}" for index in range(5)]
    for service in services:
        send(collector, export(SPENDWATCH, [call_span(secrets.token_hex(16), secrets.token_hex(8))], service=service))
        scrape(collector)
    spend = scrape(collector)["spendwatch_cost_usd"]
    assert len(spend) == 4  # three label sets, and the one all [other]
    assert [labels["service"] for labels, _ in spend].count("[other]") == 1
    assert math.isclose(total(spend, service="[other]"), 2 * 0.15, rel_tol=1e-9)
    assert math.isclose(total(spend), 5 * 0.15, rel_tol=1e-9)
    assert collector.stop() == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Prometheus:
    """Debian's Prometheus server on loopback, scraping one target every second with a bearer token."""

    def __init__(self, tmp_path: Path, target_url: str, token: str) -> None:
        binary = shutil.which("prometheus")
        assert binary, "Debian's prometheus package is needed (.ci/run installs it)"
        address = target_url.split("//", 1)[1].split("/", 1)[0]
        tmp_path.mkdir(parents=True, exist_ok=True)
        (tmp_path / "token").write_text(token)
        (tmp_path / "prometheus.yml").write_text(
            f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: spendwatch
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials_file: {tmp_path / "token"}
    static_configs:
      - targets: ["{address}"]
"""
        )
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = (tmp_path / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address={self.url.split('//')[1]}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, promql: str) -> list:
        try:
            answer = httpx.get(self.url + "/api/v1/query", params={"query": promql}, timeout=10)
        except httpx.TransportError:
            return []  # not listening yet
        return answer.json()["data"]["result"] if answer.status_code == 200 else []

    def wait_for(self, promql: str, expected: float, timeout: float = 60) -> float:
        """Poll a query until it returns one sample equal to `expected`."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "prometheus exited"
            result = self.query(promql)
            if len(result) == 1:
                last = float(result[0]["value"][1])
                if math.isclose(last, expected, rel_tol=1e-9, abs_tol=1e-12):
                    return last
            time.sleep(0.2)
        raise AssertionError(f"{promql} stayed at {last}, not {expected}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def test_prometheus_scrapes_the_daemon_and_promql_returns_the_stored_spend(tmp_path):
    collector = start(
        tmp_path,
        extra_config=f"""
[notifiers]
ops = "json://127.0.0.1:{free_port()}/alerts"      # nobody listens: every delivery fails

[[rules]]
name = "openai-daily"
kind = "budget"
every = "1s"
window = "day"
limit_usd = 10.0
thresholds = [0.2]
where = {{ provider = "openai" }}
notify = ["ops"]
""",
        settings='metrics_scrape_interval = "2s"\n',  # Prometheus below scrapes every second
    )
    for model, key, service in (("gpt-4o", KEYS[0], "checkout"), ("gpt-4o-mini", KEYS[1], "search")):
        spans = [call_span(secrets.token_hex(16), secrets.token_hex(8), model=model, key=key)]
        send(collector, export(SPENDWATCH, spans, service=service))
    send(collector, export(SPENDWATCH, [call_span(secrets.token_hex(16), secrets.token_hex(8), key=KEYS[1],
                                                  error="RateLimitError", input_tokens=0)]))  # fmt: skip
    prometheus = Prometheus(tmp_path / "prometheus", collector.info["metrics_url"], collector.info["token"])
    try:
        ((spend, calls),) = stored(collector, "SELECT sum(cost_usd), count(*) FROM llm_calls")
        assert math.isclose(spend, 2.65, rel_tol=1e-9)
        prometheus.wait_for('up{job="spendwatch"}', 1)
        prometheus.wait_for("sum(spendwatch_cost_usd_total)", spend)
        prometheus.wait_for("sum(spendwatch_calls_total)", calls)
        prometheus.wait_for("sum(spendwatch_call_errors_total)", 1)
        per_key = dict(stored(collector, "SELECT api_key_id, sum(cost_usd) FROM llm_calls GROUP BY ALL"))
        for key, amount in per_key.items():
            prometheus.wait_for(f'sum(spendwatch_cost_usd_total{{api_key_id="{key}"}})', amount)
        prometheus.wait_for('sum(spendwatch_cost_usd_total{service="search"})', 0.15)
        prometheus.wait_for('spendwatch_budget_usage_ratio{rule="openai-daily"}', spend / 10.0)
        prometheus.wait_for('sum(spendwatch_tokens_total{kind="input"})', 2_000_000)
        prometheus.wait_for('spendwatch_alerts_total{rule="openai-daily", kind="budget"}', 1)
        deadline = time.monotonic() + 60
        while not prometheus.query('spendwatch_alert_delivery_failures_total{notifier="ops"} >= 1'):
            assert time.monotonic() < deadline, "no failed delivery was counted"
            time.sleep(0.2)
        # more calls arrive: the counters move, and Prometheus sees them
        send(collector, export(SPENDWATCH, [call_span(secrets.token_hex(16), secrets.token_hex(8), model="gpt-4o")]))
        ((spend,),) = stored(collector, "SELECT sum(cost_usd) FROM llm_calls")
        prometheus.wait_for("sum(spendwatch_cost_usd_total)", spend)
        prometheus.wait_for("sum(spendwatch_spans_stored_total)", 4)
        check_the_dashboard(prometheus, collector)
    finally:
        prometheus.stop()
    assert collector.stop() == 0
    assert run_cli("status", "--db", str(tmp_path / "spendwatch.duckdb")).returncode == 0


DASHBOARD = Path(__file__).parent.parent / "contrib" / "grafana" / "spendwatch.json"


def check_the_dashboard(prometheus: Prometheus, collector) -> None:
    """Every query of the Grafana dashboard runs on Prometheus, and names only metrics the daemon serves."""
    import json
    import re

    served = set()
    for name in scrape(collector):
        served |= {name, f"{name}_total"}
    dashboard = json.loads(DASHBOARD.read_text())
    targets = [target for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(targets) >= 20
    for target in targets:
        expr = target["expr"]
        assert set(re.findall(r"spendwatch_[a-z_]+", expr)) <= served, expr
        for variable, value in (("$__range", "1h"), ("$__rate_interval", "1m"), ("$provider", ".*"),
                                ("$model", ".*"), ("$service", ".*")):  # fmt: skip
            expr = expr.replace(variable, value)
        answer = httpx.get(prometheus.url + "/api/v1/query", params={"query": expr}, timeout=10).json()
        assert answer["status"] == "success", (expr, answer)
    spend = prometheus.query('sum(increase(spendwatch_cost_usd_total{provider=~".*", model=~".*", service=~".*"}[1h]))')
    assert spend and float(spend[0]["value"][1]) > 0
