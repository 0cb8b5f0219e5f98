"""Forecasts, anomalies and key hygiene, with an injected clock over data in a real DuckDB file."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from spendwatch.collector.store import Store
from tests.collector import run_cli
from tests.test_rules_budget import KEY_A, KEY_B, Clock, call, engine_for, rules_config


@pytest.fixture
def store(tmp_path):
    opened = Store(tmp_path / "spendwatch.duckdb")
    yield opened
    opened.close()


FORECAST = """
[daemon]
settle = "0s"

[[rules]]
name = "monthly"
kind = "budget"
window = "day"
limit_usd = 50.0
thresholds = [1.0]
forecast = true
notify = ["ops"]
"""


def test_forecast_fires_mid_window_once(tmp_path, store):
    config = rules_config(tmp_path, FORECAST)
    day = datetime(2026, 11, 25, tzinfo=UTC)
    store.write([call(day + timedelta(hours=hour), 2.5) for hour in range(12)])  # $30 by noon: $60 by midnight
    sent = []
    clock = Clock(day + timedelta(hours=12))
    engine = engine_for(store, config, clock, sent)
    engine.tick(config.rules[0])
    assert [title for title, _ in sent] == ["monthly: forecast $60.00 of $50.00"]
    assert "$30.00 spent in the first 50% of the window" in sent[0][1]
    clock.now += timedelta(hours=1)
    engine.tick(config.rules[0])
    assert len(sent) == 1  # once per window


def test_forecast_stays_quiet_early_under_the_limit_and_after_it(tmp_path, store):
    config = rules_config(tmp_path, FORECAST)
    day = datetime(2026, 11, 25, tzinfo=UTC)
    sent = []
    clock = Clock(day + timedelta(hours=3))
    engine = engine_for(store, config, clock, sent)
    store.write([call(day + timedelta(hours=1), 10.0)])  # $10 in 3 hours: $80 a day, but too early to say
    engine.tick(config.rules[0])
    clock.now = day + timedelta(hours=12)  # $10 by noon: $20 a day, under the limit
    engine.tick(config.rules[0])
    assert sent == []
    store.write([call(day + timedelta(hours=12, minutes=30), 45.0)])  # over the limit itself now
    clock.now = day + timedelta(hours=13)
    engine.tick(config.rules[0])
    assert [title for title, _ in sent] == ["monthly: 110% of $50.00"]  # the threshold says it, not a forecast


ANOMALY = """
[daemon]
settle = "0s"

[[rules]]
name = "spend-spike"
kind = "anomaly"
metric = "cost_usd"
every = "5m"
bucket = "1h"
baseline = "2d"
sensitivity = 4.0
min_value = 1.0
group_by = "api_key_id"
notify = ["ops"]
"""


def hourly(store, start: datetime, hours: int, cost, key=KEY_A) -> None:
    store.write([call(start + timedelta(hours=hour, minutes=10), cost(hour), key) for hour in range(hours)])


def test_anomaly_on_a_spike_after_a_quiet_baseline_once_while_it_lasts(tmp_path, store):
    config = rules_config(tmp_path, ANOMALY)
    start = datetime(2026, 11, 20, tzinfo=UTC)
    noise = random.Random(7)
    hourly(store, start, 48, lambda hour: 2.0 + noise.uniform(-0.3, 0.3))
    hourly(store, start, 48, lambda hour: 3.0 + noise.uniform(-0.3, 0.3), key=KEY_B)
    hourly(store, start + timedelta(hours=48), 3, lambda hour: 20.0)  # a spike on key A, three hours long
    hourly(store, start + timedelta(hours=48), 3, lambda hour: 3.0, key=KEY_B)
    sent = []
    clock = Clock(start + timedelta(hours=49, minutes=1))  # the first spike hour is the latest complete bucket
    engine = engine_for(store, config, clock, sent)
    engine.tick(config.rules[0])
    assert len(sent) == 1
    title, message = sent[0]
    assert title.startswith("spend-spike: cost_usd $20.00 vs $") and title.endswith(" usual")
    assert KEY_A in message and KEY_B not in message and "score" in message
    for hours in (50, 51):  # the spike lasts: no more alerts
        clock.now = start + timedelta(hours=hours, minutes=1)
        engine.tick(config.rules[0])
    assert len(sent) == 1
    hourly(store, start + timedelta(hours=51), 2, lambda hour: 2.0)  # back to normal ...
    hourly(store, start + timedelta(hours=53), 1, lambda hour: 25.0)  # ... then a new spike: a new alert
    clock.now = start + timedelta(hours=54, minutes=1)
    engine.tick(config.rules[0])
    assert len(sent) == 2


def test_no_anomaly_for_growth_in_the_noise_under_the_floor_or_without_history(tmp_path, store):
    config = rules_config(tmp_path, ANOMALY)
    start = datetime(2026, 11, 20, tzinfo=UTC)
    noise = random.Random(3)
    hourly(store, start, 50, lambda hour: 5.0 + hour * 0.01 + noise.uniform(-1.0, 1.0))  # slow growth, noisy
    hourly(store, start, 50, lambda hour: 0.01, key=KEY_B)  # tiny spend ...
    hourly(store, start + timedelta(hours=50), 1, lambda hour: 0.5, key=KEY_B)  # ... a 50x spike, under $1
    hourly(store, start + timedelta(hours=40), 10, lambda hour: 1.0, key="c" * 16)  # too little history ...
    hourly(store, start + timedelta(hours=50), 1, lambda hour: 40.0, key="c" * 16)  # ... to judge this
    sent = []
    engine = engine_for(store, config, Clock(start + timedelta(hours=51, minutes=1)), sent)
    engine.tick(config.rules[0])
    assert sent == []


KEYS = f"""
[daemon]
settle = "0s"

[[rules]]
name = "key-hygiene"
kind = "keys"
lookback = "1h"
retired = ["{KEY_B}"]
notify = ["ops"]
"""


def test_new_retired_and_new_service_keys(tmp_path, store):
    config = rules_config(tmp_path, KEYS)
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    store.write(
        [
            call(now - timedelta(days=3), 1.0, KEY_A, service="billing"),
            call(now - timedelta(days=3), 1.0, KEY_B, service="billing"),
            call(now - timedelta(minutes=20), 1.0, KEY_A, service="billing"),
            call(now - timedelta(minutes=10), 1.0, KEY_A, service="scraper"),  # a service key A never served
            call(now - timedelta(minutes=15), 1.0, KEY_B, service="billing"),  # a retired key in use
            call(now - timedelta(minutes=5), 1.0, "n" * 16, service="billing"),  # a key never seen before
        ]
    )
    sent = []
    clock = Clock(now)
    engine = engine_for(store, config, clock, sent)
    engine.tick(config.rules[0])
    kinds = sorted(store.con.execute("SELECT kind, group_value FROM alerts").fetchall())
    assert kinds == [("key_new_service", f"{KEY_A} scraper"), ("new_key", "n" * 16), ("retired_key", KEY_B)]
    assert any(f"the retired key {KEY_B}" in body for _, body in sent)
    clock.now += timedelta(minutes=10)
    store.write([call(clock.now - timedelta(minutes=1), 1.0, KEY_B)])
    engine.tick(config.rules[0])
    assert len(sent) == 3  # once per key (and per day for the retired one)
    clock.now = now + timedelta(days=1)
    store.write([call(clock.now - timedelta(minutes=1), 1.0, KEY_B)])
    engine.tick(config.rules[0])
    assert sent[-1][0] == "key-hygiene: retired key in use" and len(sent) == 4  # the next day: again


def test_history_older_than_a_week_still_counts(tmp_path, store):
    """Keys back from a long rest: their history beyond the last week is read, so nothing is new by mistake."""
    config = rules_config(tmp_path, KEYS)
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    store.write(
        [
            call(now - timedelta(days=40), 1.0, KEY_A, service="billing"),
            call(now - timedelta(days=2), 1.0, KEY_A, service="search"),  # last week: another service
            call(now - timedelta(minutes=20), 1.0, KEY_A, service="billing"),  # billing, 40 days ago: not new
            call(now - timedelta(days=30), 1.0, "c" * 16, service="reports"),
            call(now - timedelta(minutes=10), 1.0, "c" * 16, service="scraper"),  # new to this key
        ]
    )
    sent = []
    engine_for(store, config, Clock(now), sent).tick(config.rules[0])
    kinds = sorted(store.con.execute("SELECT kind, group_value FROM alerts").fetchall())
    assert kinds == [("key_new_service", f"{'c' * 16} scraper")]
    assert any("before, only by reports" in body for _, body in sent)


def test_backfilled_history_makes_no_key_new(tmp_path, store):
    config = rules_config(tmp_path, KEYS)
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    store.write([call(now - timedelta(days=30 - day), 1.0, "h" * 16) for day in range(10)])  # loaded now, old
    sent = []
    engine_for(store, config, Clock(now), sent).tick(config.rules[0])
    assert sent == []


def test_the_key_inventory(tmp_path):
    store = Store(tmp_path / "spendwatch.duckdb")
    now = datetime.now(UTC)
    store.write(
        [
            call(now - timedelta(days=40), 1.0, KEY_A, service="billing"),
            call(now - timedelta(days=2), 2.0, KEY_A, service="search"),
            call(now - timedelta(hours=1), 3.0, KEY_A, provider="anthropic", service="billing"),
            call(now - timedelta(hours=2), 0.5, KEY_B, service="billing"),
        ]
    )
    store.close()
    config = tmp_path / "spendwatch.toml"
    config.write_text(KEYS + f'\n[notifiers]\nops = "json://127.0.0.1:9/x"\n\n[keys]\n"{KEY_A}" = "prod"\n')
    result = run_cli("keys", "--db", str(tmp_path / "spendwatch.duckdb"), "--config", str(config), "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = {row["api_key_id"]: row for row in json.loads(result.stdout)}
    a, b = rows[KEY_A], rows[KEY_B]
    assert (a["name"], a["calls"], a["cost_usd"], a["providers"].split(",")) == (
        "prod",
        2,
        5.0,
        ["anthropic", "openai"],
    )
    assert sorted(a["services"].split(",")) == ["billing", "search"]
    assert a["first_seen"] < (now - timedelta(days=39)).isoformat()  # first seen ever, not within --since
    assert b["status"] == "retired, in use" and b["hint"] == KEY_B[-4:]
