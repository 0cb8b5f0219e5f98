"""A model call whose span says nothing of its tokens is a state, not $0: flagged on its row, counted by
`report`, `top` and the dashboard, and something a rule can alert on."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime, timedelta

import httpx

from spendwatch.collector.store import Store
from tests.collector import Collector, run_cli
from tests.test_rules_budget import Clock, call, engine_for, rules_config


def export(input_tokens: int | None) -> dict:
    now = time.time_ns()
    attributes = [
        {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
        {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
        {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
    ]
    if input_tokens is not None:
        attributes.append({"key": "gen_ai.usage.input_tokens", "value": {"intValue": str(input_tokens)}})
        attributes.append({"key": "gen_ai.usage.output_tokens", "value": {"intValue": "5"}})
    span = {
        "traceId": secrets.token_hex(16),
        "spanId": secrets.token_hex(8),
        "name": "chat gpt-4o-mini",
        "startTimeUnixNano": str(now - 10**9),
        "endTimeUnixNano": str(now),
        "attributes": attributes,
    }
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "search"}}]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "some-sdk"}, "spans": [span]}]}]}


def test_report_top_and_the_dashboard_say_how_many_calls_have_usage_unknown(tmp_path):
    collector = Collector(tmp_path / "spendwatch.duckdb", tmp_path / "log").start()
    db = str(collector.db)
    for tokens in (None, None, 40):
        assert httpx.post(f"{collector.http_endpoint}/v1/traces", json=export(tokens)).status_code == 200
    report = run_cli("report", "--db", db, "--format", "json")
    assert report.returncode == 0, report.stderr
    total = json.loads(report.stdout)["total"]
    assert (total["calls"], total["usage_unknown_calls"], total["unpriced_calls"]) == (3, 2, 0)
    table = run_cli("report", "--db", db)
    assert "2 call(s), usage unknown" in table.stdout
    top = run_cli("top", "--db", db, "--once")
    assert "2 calls, usage unknown" in top.stdout
    with httpx.Client(base_url=collector.info["ui_url"], follow_redirects=True) as browser:
        page = browser.get("/", params={"token": collector.info["ui_token"]})
    assert page.status_code == 200
    assert '<strong id="total-usage-unknown">2</strong> calls, usage unknown' in page.text
    rows = run_cli("query", "--db", db, "--format", "json", "SELECT usage_unknown, cost_usd FROM llm_calls ORDER BY 1")
    flags = [(row["usage_unknown"], row["cost_usd"] is None) for row in json.loads(rows.stdout)]
    assert flags == [(False, False), (True, True), (True, True)]  # unknown is not $0: no cost at all
    assert collector.stop() == 0


ALERT_ON_UNKNOWN = """
[daemon]
settle = "0s"

[[rules]]
name = "uncounted-calls"
kind = "anomaly"
metric = "usage_unknown"
bucket = "1h"
baseline = "1d"
min_value = 1
notify = ["ops"]
"""


def test_a_rule_alerts_when_calls_with_usage_unknown_appear(tmp_path):
    store = Store(tmp_path / "spendwatch.duckdb")
    config = rules_config(tmp_path, ALERT_ON_UNKNOWN)
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    store.write([call(now - timedelta(hours=hours), 0.5) for hours in range(2, 26)])  # a day of counted calls
    unknown = [
        call(now - timedelta(minutes=30), None)._replace(input_tokens=None, output_tokens=None) for _ in range(3)
    ]
    store.write(unknown)
    sent = []
    engine = engine_for(store, config, Clock(now), sent)
    engine.tick(config.rules[0])
    assert len(sent) == 1 and sent[0][0].startswith("uncounted-calls: usage_unknown 3")
    engine.tick(config.rules[0])
    assert len(sent) == 1
    store.close()
