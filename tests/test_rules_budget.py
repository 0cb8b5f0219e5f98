"""Budget rules with an injected clock over data in a real DuckDB file: thresholds, windows and zones,
groups, late data, unpriced calls, and deliveries that fail and are retried."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spendwatch.collector.rows import SpanRow
from spendwatch.collector.store import Store
from spendwatch.config import load_file
from spendwatch.rules.config import parse_rules_config
from spendwatch.rules.engine import RulesEngine

KEY_A, KEY_B = "a" * 16, "b" * 16


def rules_config(tmp_path: Path, text: str):
    path = tmp_path / "spendwatch.toml"
    path.write_text(text + '\n[notifiers]\nops = "json://127.0.0.1:9/alerts"\n')
    return parse_rules_config(load_file(path), path)


def call(
    at: datetime,
    cost: float | None,
    key: str = KEY_A,
    provider: str = "openai",
    model: str = "gpt-4o",
    service: str = "billing",
) -> SpanRow:
    ns = int(at.timestamp() * 1e9)
    return SpanRow(
        secrets.token_hex(16),
        secrets.token_hex(8),
        None,
        ns,
        ns + 1_000_000,
        service,
        provider,
        "chat",
        model,
        model,
        None,
        False,
        100,
        10,
        None,
        None,
        None,
        False,
        cost,
        key,
        key[-4:],
        200,
        None,
        None,
        None,
        "{}",
        "spendwatch.instrumentation",
        True,
    )


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(tmp_path):
    opened = Store(tmp_path / "spendwatch.duckdb")
    yield opened
    opened.close()


def engine_for(store, config, clock, sent):
    def send(urls, title, body):
        sent.append((title, body))
        return None

    return RulesEngine(store.con, config, clock=clock, send=send)


def alerts(store):
    return store.con.execute(
        "SELECT rule, group_value, threshold, state, round(value, 2) FROM alerts ORDER BY id"
    ).fetchall()


def test_threshold_fires_at_the_right_moment_and_once(tmp_path, store):
    config = rules_config(
        tmp_path,
        """
[daemon]
settle = "30s"

[[rules]]
name = "daily"
kind = "budget"
limit_usd = 10.0
notify = ["ops"]
""",
    )
    (rule,) = config.rules
    day = datetime(2026, 11, 25, 9, tzinfo=UTC)
    clock, sent = Clock(day), []
    engine = engine_for(store, config, clock, sent)
    store.write([call(day, 7.0)])
    assert engine.tick(rule) == [] and sent == []  # 70%: under the first threshold (80%)
    store.write([call(day + timedelta(minutes=1), 1.5)])
    clock.now = day + timedelta(minutes=2)
    assert len(engine.tick(rule)) == 1  # 85%
    assert sent[-1][0] == "daily: 85% of $10.00"
    for _ in range(3):  # later ticks: nothing again
        clock.now += timedelta(minutes=1)
        assert engine.tick(rule) == []
    store.write([call(day + timedelta(minutes=5), 2.0)])
    clock.now += timedelta(minutes=1)
    assert len(engine.tick(rule)) == 1  # 105%
    assert [title for title, _ in sent] == ["daily: 85% of $10.00", "daily: 105% of $10.00"]
    assert alerts(store) == [("daily", "", 0.8, "delivered", 8.5), ("daily", "", 1.0, "delivered", 10.5)]
    # The next day the window is new: the thresholds fire again.
    store.write([call(day + timedelta(days=1), 9.0)])
    clock.now = day + timedelta(days=1, minutes=1)
    assert len(engine.tick(rule)) == 1
    assert sent[-1][0] == "daily: 90% of $10.00"


def test_a_jump_over_two_thresholds_sends_the_highest_only(tmp_path, store):
    config = rules_config(tmp_path, '[[rules]]\nname = "b"\nkind = "budget"\nlimit_usd = 1.0\nnotify = ["ops"]\n')
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    store.write([call(now - timedelta(hours=1), 5.0)])
    sent = []
    engine = engine_for(store, config, Clock(now), sent)
    engine.tick(config.rules[0])
    assert [title for title, _ in sent] == ["b: 500% of $1.00"]
    assert [row[2:4] for row in alerts(store)] == [(0.8, "superseded"), (1.0, "delivered")]


def test_calendar_windows_in_a_zone_month_boundary_and_dst(tmp_path, store):
    config = rules_config(
        tmp_path,
        """
timezone = "Europe/Paris"

[daemon]
settle = "0s"

[[rules]]
name = "monthly"
kind = "budget"
window = "month"
limit_usd = 10.0
thresholds = [1.0]
notify = ["ops"]

[[rules]]
name = "daily"
kind = "budget"
window = "day"
limit_usd = 10.0
thresholds = [1.0]
notify = ["ops"]
""",
    )
    monthly, daily = config.rules
    # 23:30 UTC on 30 November is 00:30 on 1 December in Paris: a December call.
    store.write(
        [call(datetime(2026, 11, 30, 22, 30, tzinfo=UTC), 6.0), call(datetime(2026, 11, 30, 23, 30, tzinfo=UTC), 6.0)]
    )
    sent = []
    engine = engine_for(store, config, Clock(datetime(2026, 12, 1, 0, 0, tzinfo=UTC)), sent)
    assert engine.tick(monthly) == []  # $6 in November, $6 in December: neither month is over
    # 29 March 2026 is 23 hours long in Paris: 22:30 UTC that day is already 30 March.
    store.write(
        [
            call(datetime(2026, 3, 28, 23, 30, tzinfo=UTC), 6.0),  # 00:30 Paris, 29 March
            call(datetime(2026, 3, 29, 21, 30, tzinfo=UTC), 5.0),  # 23:30 Paris, 29 March
            call(datetime(2026, 3, 29, 22, 30, tzinfo=UTC), 5.0),
        ]
    )  # 00:30 Paris, 30 March
    engine._clock = Clock(datetime(2026, 3, 29, 21, 45, tzinfo=UTC))
    assert len(engine.tick(daily)) == 1
    assert "Sun 2026-03-29 (Europe/Paris)" in sent[-1][1] and "$11.00" in sent[-1][1]


def test_group_by_key_one_alert_per_offending_key_named_in_full(tmp_path, store):
    config = rules_config(
        tmp_path,
        f"""
[keys]
"{KEY_A}" = "prod-backend"

[[rules]]
name = "per-key"
kind = "budget"
limit_usd = 5.0
thresholds = [1.0]
where = {{ provider = "openai" }}
group_by = "api_key_id"
notify = ["ops"]
""",
    )
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    store.write(
        [
            call(now - timedelta(hours=2), 4.0, KEY_A, model="gpt-4o"),
            call(now - timedelta(hours=2), 2.0, KEY_A, model="gpt-4o-mini", service="search"),
            call(now - timedelta(hours=2), 6.0, KEY_B),
            call(now - timedelta(hours=2), 1.0, "c" * 16),
            call(now - timedelta(hours=2), 50.0, KEY_A, provider="anthropic"),  # another provider: not this rule's
        ]
    )
    sent = []
    engine_for(store, config, Clock(now), sent).tick(config.rules[0])
    assert sorted(row[1] for row in alerts(store)) == [KEY_A, KEY_B]
    (message_a,) = [body for _, body in sent if KEY_A in body]
    assert f"api_key_id {KEY_A} (prod-backend)" in message_a  # the whole id, and its name
    assert "$6.00 spent of the $5.00 limit (120%)" in message_a
    assert "Top models: gpt-4o $4.00, gpt-4o-mini $2.00." in message_a
    assert "Top services: billing $4.00, search $2.00." in message_a


def test_late_data_counts_toward_its_own_window(tmp_path, store):
    config = rules_config(
        tmp_path, '[[rules]]\nname = "d"\nkind = "budget"\nlimit_usd = 10.0\nthresholds = [1.0]\nnotify = ["ops"]\n'
    )
    yesterday = datetime(2026, 11, 24, 23, 59, tzinfo=UTC)
    store.write([call(yesterday, 8.0)])
    sent = []
    clock = Clock(datetime(2026, 11, 25, 0, 5, tzinfo=UTC))
    engine = engine_for(store, config, clock, sent)
    assert engine.tick(config.rules[0]) == []
    store.write([call(yesterday, 3.0)])  # arrives after midnight, for yesterday
    clock.now += timedelta(minutes=1)
    assert len(engine.tick(config.rules[0])) == 1
    assert "Tue 2026-11-24 (UTC)" in sent[0][1]


def test_unpriced_calls_are_reported(tmp_path, store):
    config = rules_config(tmp_path, '[[rules]]\nname = "u"\nkind = "budget"\nlimit_usd = 1.0\nnotify = ["ops"]\n')
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    store.write(
        [
            call(now - timedelta(hours=1), 2.0),
            call(now - timedelta(hours=1), None, model="acme-1"),
            call(now - timedelta(hours=1), None, model="acme-1"),
        ]
    )
    sent = []
    engine_for(store, config, Clock(now), sent).tick(config.rules[0])
    assert "2 call(s) in this window have no known price and are not in this total." in sent[-1][1]


def test_rolling_window_fires_once_per_period(tmp_path, store):
    config = rules_config(
        tmp_path,
        '[[rules]]\nname = "r"\nkind = "budget"\nwindow = "1h"\nlimit_usd = 1.0\n'
        'thresholds = [1.0]\nnotify = ["ops"]\n[daemon]\nsettle = "0s"\n',
    )
    now = datetime(2026, 11, 25, 12, 10, tzinfo=UTC)
    store.write([call(now - timedelta(minutes=5), 2.0)])
    sent = []
    clock = Clock(now)
    engine = engine_for(store, config, clock, sent)
    engine.tick(config.rules[0])
    clock.now += timedelta(minutes=20)
    engine.tick(config.rules[0])
    assert len(sent) == 1
    store.write([call(now + timedelta(minutes=55), 2.0)])
    clock.now = now + timedelta(minutes=60)
    engine.tick(config.rules[0])
    assert len(sent) == 2


def test_failed_delivery_is_retried_with_backoff_and_survives_a_restart(tmp_path):
    db = tmp_path / "spendwatch.duckdb"
    config = rules_config(
        tmp_path,
        '[[rules]]\nname = "f"\nkind = "budget"\nevery = "1m"\nlimit_usd = 1.0\nthresholds = [1.0]\nnotify = ["ops"]\n',
    )
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    store = Store(db)
    store.write([call(now - timedelta(hours=1), 2.0)])
    outcomes = ["connection refused", "connection refused"]
    sent = []

    def send(urls, title, body):
        if outcomes:
            return outcomes.pop(0)
        sent.append(title)
        return None

    clock = Clock(now)
    engine = RulesEngine(store.con, config, clock=clock, send=send)
    engine.tick(config.rules[0])  # attempt 1 fails; next in 1 minute
    assert store.con.execute("SELECT state, attempts, last_error FROM alerts").fetchall() == [
        ("pending", 1, "connection refused")
    ]
    clock.now += timedelta(seconds=30)
    assert engine.deliver() == 0 and outcomes == ["connection refused"]  # not due yet
    clock.now += timedelta(seconds=31)
    assert engine.deliver() == 0  # attempt 2 fails; next in 2 minutes
    store.close()

    store = Store(db)  # a restart: the alert is neither fired again nor forgotten
    engine = RulesEngine(store.con, config, clock=clock, send=send)
    clock.now += timedelta(minutes=3)
    assert engine.tick(config.rules[0]) == []
    assert sent == ["f: 200% of $1.00"]
    assert store.con.execute("SELECT state, attempts FROM alerts").fetchall() == [("delivered", 3)]
    store.close()
