"""Budget alerts from a real `spendwatch up`: through apprise to a real local HTTP receiver and a real
SMTP server, exactly once, across restarts and receiver outages; and `rules check` on broken configs."""

from __future__ import annotations

import json
import secrets
import socket
import time

import httpx
import pytest

from tests.collector import Collector, run_cli
from tests.receivers import JsonReceiver, SmtpReceiver

KEY = "k" * 16


def spend_export(input_tokens: int) -> dict:
    """gpt-4o-mini at $0.15 per million input tokens: 1M tokens is $0.15."""
    now = time.time_ns()
    attributes = {
        "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": 0,
        "spendwatch.api_key.id": KEY,
    }
    span = {
        "traceId": secrets.token_hex(16),
        "spanId": secrets.token_hex(8),
        "name": "chat",
        "startTimeUnixNano": str(now - 1_000_000_000),
        "endTimeUnixNano": str(now),
        "attributes": [
            {"key": key, "value": {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}}
            for key, value in attributes.items()
        ],
    }
    return {"resourceSpans": [{"scopeSpans": [{"scope": {"name": "spendwatch.instrumentation"}, "spans": [span]}]}]}


def config_text(notifier_url: str) -> str:
    return f"""
[daemon]
settle = "0s"

[notifiers]
ops = "{notifier_url}"

[keys]
"{KEY}" = "prod-backend"

[[rules]]
name = "openai-daily"
kind = "budget"
every = "1s"
window = "day"
limit_usd = 0.10
thresholds = [1.0]
where = {{ provider = "openai" }}
group_by = "api_key_id"
notify = ["ops"]
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_budget_alert_reaches_a_json_receiver_exactly_once_across_a_restart(tmp_path):
    with JsonReceiver() as receiver:
        config = tmp_path / "spendwatch.toml"
        config.write_text(config_text(f"json://127.0.0.1:{receiver.port}/alerts"))
        db = tmp_path / "spendwatch.duckdb"
        collector = Collector(db, tmp_path / "log", config=config).start()
        with httpx.Client(base_url=collector.http_endpoint) as client:
            assert client.post("/v1/traces", json=spend_export(1_000_000)).status_code == 200
        started = time.monotonic()
        (alert,) = receiver.wait_for(1, timeout=10)
        assert time.monotonic() - started < 2 * 1 + 3  # two evaluation periods, and start-up slack
        assert alert["title"] == "openai-daily: 150% of $0.1000"
        assert f"api_key_id {KEY} (prod-backend)" in alert["message"]
        collector.more("rule_evaluations", 2)  # more ticks: nothing more
        assert collector.stop() == 0
        collector = Collector(db, tmp_path / "log", config=config).start()  # a restart
        collector.more("rule_evaluations", 2)
        listed = json.loads(run_cli("alerts", "--db", str(db), "--format", "json").stdout)
        assert [(row["rule"], row["group_value"], row["state"]) for row in listed] == [
            ("openai-daily", KEY, "delivered")
        ]
        assert collector.stop() == 0
        assert len(receiver.received) == 1


def test_an_alert_to_a_receiver_that_is_down_is_delivered_when_it_returns(tmp_path):
    port = free_port()
    config = tmp_path / "spendwatch.toml"
    config.write_text(config_text(f"json://127.0.0.1:{port}/alerts"))
    db = tmp_path / "spendwatch.duckdb"
    collector = Collector(db, tmp_path / "log", config=config).start()
    with httpx.Client(base_url=collector.http_endpoint) as client:
        client.post("/v1/traces", json=spend_export(1_000_000))
    deadline = time.monotonic() + 10
    while "alert 1 (openai-daily) to ops:" not in collector.log.read_text():  # the failed first attempt
        assert time.monotonic() < deadline, collector.log.read_text()
        time.sleep(0.1)
    with JsonReceiver(port) as receiver:
        (alert,) = receiver.wait_for(1, timeout=15)
        assert alert["title"].startswith("openai-daily")
        collector.more("delivery_rounds", 2)
        assert len(receiver.received) == 1
    assert collector.stop() == 0


def test_an_email_alert_reaches_a_local_smtp_server(tmp_path):
    with SmtpReceiver() as smtp:
        config = tmp_path / "spendwatch.toml"
        url = f"mailto://127.0.0.1:{smtp.port}?from=spendwatch@example.com&to=oncall@example.com&secure=no"
        config.write_text(config_text(url))
        collector = Collector(tmp_path / "spendwatch.duckdb", tmp_path / "log", config=config).start()
        with httpx.Client(base_url=collector.http_endpoint) as client:
            client.post("/v1/traces", json=spend_export(2_000_000))
        (message,) = smtp.wait_for(1, timeout=15)
        assert collector.stop() == 0
    assert message.rcpt_tos == ["oncall@example.com"]
    body = message.content.decode(errors="replace")
    assert "openai-daily: 300% of $0.1000" in body


@pytest.mark.parametrize(
    "text,messages",
    [
        (
            '[[rules]]\nname = "a"\nkind = "bugdet"\nnotify = []\n',
            ["rule 'a': kind: expected budget, anomaly, keys or reconcile, got 'bugdet'"],
        ),
        (
            '[notifiers]\nops = "json://127.0.0.1:9/x"\n[[rules]]\nname = "a"\nkind = "budget"\nlimit_usd = 5\n'
            'every = "soon"\ncolour = "red"\nnotify = ["pager"]\nthresholds = [0.5, 11]\n',
            [
                "rule 'a': every: expected a duration",
                "rule 'a': colour: unknown key",
                "rule 'a': notify: no notifier named 'pager' in [notifiers] (ops)",
                "rule 'a': thresholds: expected fractions of the limit in (0, 10]",
            ],
        ),
        (
            '[notifiers]\nops = "json://127.0.0.1:9/x"\n'
            '[[rules]]\nname = "a"\nkind = "budget"\nlimit_usd = 5\nnotify = ["ops"]\n'
            '[[rules]]\nname = "a"\nkind = "budget"\nlimit_usd = -1\nwindow = "fortnight"\nnotify = ["ops"]\n',
            [
                "rule 'a': name: used by another rule",
                "rule 'a': limit_usd: expected a number of dollars above 0",
                "rule 'a': window: expected day, week, month or a duration",
            ],
        ),
        (
            '[notifiers]\nops = "notaurl://user:hunter2@example.com/path"\n',
            ["notifiers.ops: apprise cannot use the URL notaurl://***@example.com/***"],
        ),
        ('timezone = "Mars/Olympus"\n', ["timezone: expected an IANA zone"]),
        (
            '[notifiers]\nops = "json://127.0.0.1:9/x"\n[[rules]]\nname = "bill"\nkind = "reconcile"\n'
            'min_capture = 1.5\nlookback = "ever"\ngroup_by = "model"\nmin_billed_usd = -1\n'
            'allow_unobserved = "key_a"\nwhere = { service = "x" }\nnotify = ["ops"]\n',
            [
                "rule 'bill': min_capture: expected a fraction of the bill in (0, 1] such as 0.9, got 1.5",
                "rule 'bill': lookback: expected a duration",
                "rule 'bill': group_by: expected provider or api_key_id, got 'model'",
                "rule 'bill': min_billed_usd: expected a number of dollars of at least 0",
                "rule 'bill': allow_unobserved: expected a list of key ids",
                "rule 'bill': where.service: a reconcile rule filters by provider or api_key_id",
            ],
        ),
        (
            '[notifiers]\nops = "json://127.0.0.1:9/x"\n[[rules]]\nname = "bill"\nkind = "reconcile"\n'
            'missing_keys = false\nnotify = ["ops"]\n',
            ["rule 'bill': min_capture: set min_capture, or leave missing_keys on: this rule would check nothing"],
        ),
    ],
)
def test_rules_check_reports_every_mistake(tmp_path, text, messages):
    config = tmp_path / "spendwatch.toml"
    config.write_text(text)
    result = run_cli("rules", "check", "--config", str(config))
    assert result.returncode == 2, result.stdout
    for message in messages:
        assert f"{config}: {message}" in result.stderr, result.stderr
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr
    refused = run_cli("up", "--config", str(config), "--db", str(tmp_path / "db.duckdb"))
    assert refused.returncode == 2 and messages[0] in refused.stderr


def test_rules_check_accepts_a_good_config(tmp_path):
    config = tmp_path / "spendwatch.toml"
    config.write_text(config_text("json://127.0.0.1:9/alerts"))
    result = run_cli("rules", "check", "--config", str(config))
    assert result.returncode == 0 and "1 rule(s), 1 notifier(s), 1 key name(s): ok" in result.stdout


def test_rules_run_dry_run_with_the_daemon_running_and_for_real_when_stopped(tmp_path):
    with JsonReceiver() as receiver:
        config = tmp_path / "spendwatch.toml"
        config.write_text(
            config_text(f"json://127.0.0.1:{receiver.port}/alerts").replace('every = "1s"', 'every = "1h"')
        )
        db = tmp_path / "spendwatch.duckdb"
        collector = Collector(db, tmp_path / "log", config=config).start()
        with httpx.Client(base_url=collector.http_endpoint) as client:
            client.post("/v1/traces", json=spend_export(1_000_000))
        dry = run_cli("rules", "run", "--dry-run", "--db", str(db), "--config", str(config))
        assert dry.returncode == 0, dry.stderr
        assert "would fire: openai-daily" in dry.stdout
        refused = run_cli("rules", "run", "--db", str(db), "--config", str(config))
        assert refused.returncode == 2 and "--dry-run" in refused.stderr
        assert collector.stop() == 0
        # Stopped: `rules run` records and delivers (the daemon's one tick, at start, came before the spend).
        result = run_cli("rules", "run", "--db", str(db), "--config", str(config))
        assert result.returncode == 0 and "openai-daily\tkkkkkkkkkkkkkkkk\t100%\tdelivered" in result.stdout
        again = run_cli("rules", "run", "--db", str(db), "--config", str(config))
        assert again.returncode == 0 and "nothing fired" in again.stdout
        assert len(receiver.wait_for(1, timeout=5)) == 1


def test_notify_test(tmp_path):
    with JsonReceiver() as receiver:
        config = tmp_path / "spendwatch.toml"
        config.write_text(config_text(f"json://127.0.0.1:{receiver.port}/alerts"))
        result = run_cli("notify", "test", "ops", "--config", str(config))
        assert result.returncode == 0 and "sent a test message to ops" in result.stdout
        assert receiver.wait_for(1, timeout=5)[0]["title"] == "spendwatch test"
    down = run_cli("notify", "test", "ops", "--config", str(config))
    assert down.returncode == 2 and "delivery failed" in down.stderr
    missing = run_cli("notify", "test", "pager", "--config", str(config))
    assert missing.returncode == 2 and "no notifier named 'pager'" in missing.stderr


def test_daemon_notices_go_to_their_own_notifier_never_to_a_rules(tmp_path):
    with JsonReceiver() as rules_receiver, JsonReceiver() as daemon_receiver:
        config = tmp_path / "spendwatch.toml"
        config.write_text(
            config_text(f"json://127.0.0.1:{rules_receiver.port}/alerts")
            .replace('settle = "0s"', 'settle = "0s"\nnotify = ["daemon"]')
            .replace("[notifiers]\n", f'[notifiers]\ndaemon = "json://127.0.0.1:{daemon_receiver.port}/daemon"\n')
        )
        collector = Collector(tmp_path / "spendwatch.duckdb", tmp_path / "log", config=config).start()
        collector.wait_until("delivery_rounds", 1)  # the first look at unpriced models: none yet
        unpriced = spend_export(1000)
        unpriced["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"][2]["value"]["stringValue"] = "acme-9"
        with httpx.Client(base_url=collector.http_endpoint) as client:
            client.post("/v1/traces", json=unpriced)
        notices = daemon_receiver.wait_for(2, timeout=10)
        assert collector.stop() == 0
    titles = [notice["title"] for notice in notices]
    assert titles[0] == "spendwatch: spendwatch up started"
    assert (
        "spendwatch: unpriced models" in titles
        and "acme-9 (openai)" in notices[titles.index("spendwatch: unpriced models")]["message"]
    )
    assert rules_receiver.received == []


def test_an_anomaly_on_one_of_two_keys_alerts_once_naming_that_key(tmp_path):
    import random
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    if (now + timedelta(seconds=30)).hour != now.hour:  # keep the whole test inside one clock hour
        time.sleep(31)
        now = datetime.now(UTC)
    latest = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)  # the latest complete hour
    noise = random.Random(11)
    spans = []
    for key, tokens in (("a" * 16, 100_000), ("b" * 16, 150_000)):
        for hours_back in range(1, 7 * 24 + 1):
            at = latest - timedelta(hours=hours_back) + timedelta(minutes=20)
            spans.append((key, at, int(tokens * noise.uniform(0.8, 1.2))))
    spans.append(("a" * 16, latest + timedelta(minutes=5), 5_000_000))  # the spike: $0.75 against ~$0.015
    spans.append(("b" * 16, latest + timedelta(minutes=5), 150_000))
    export = {"resourceSpans": [{"scopeSpans": [{"scope": {"name": "spendwatch.instrumentation"}, "spans": []}]}]}
    for key, at, tokens in spans:
        start = int(at.timestamp() * 1e9)
        attributes = {
            "gen_ai.provider.name": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": tokens,
            "gen_ai.usage.output_tokens": 0,
            "spendwatch.api_key.id": key,
        }
        export["resourceSpans"][0]["scopeSpans"][0]["spans"].append(
            {
                "traceId": secrets.token_hex(16),
                "spanId": secrets.token_hex(8),
                "name": "chat",
                "startTimeUnixNano": str(start),
                "endTimeUnixNano": str(start + 500_000_000),
                "attributes": [
                    {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
                    for k, v in attributes.items()
                ],
            }
        )
    with JsonReceiver() as receiver:
        config = tmp_path / "spendwatch.toml"
        config.write_text(f"""
[daemon]
settle = "0s"

[notifiers]
ops = "json://127.0.0.1:{receiver.port}/alerts"

[[rules]]
name = "spend-spike"
kind = "anomaly"
metric = "cost_usd"
every = "1s"
bucket = "1h"
baseline = "7d"
sensitivity = 4.0
min_value = 0.1
group_by = "api_key_id"
notify = ["ops"]
""")
        collector = Collector(tmp_path / "spendwatch.duckdb", tmp_path / "log", config=config).start()
        with httpx.Client(base_url=collector.http_endpoint) as client:
            assert client.post("/v1/traces", json=export).status_code == 200
        (alert,) = receiver.wait_for(1, timeout=10)
        collector.more("rule_evaluations", 3)  # more ticks: the lasting spike does not alert again
        assert collector.stop() == 0
        assert len(receiver.received) == 1
    assert "a" * 16 in alert["message"] and "b" * 16 not in alert["message"]
    assert alert["title"].startswith("spend-spike: cost_usd $0.7500 vs $0.01")
