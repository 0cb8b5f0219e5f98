"""The hourly rollup never disagrees with `llm_calls`: every answer read from it equals the raw one.

A database written through the store — calls over ten days in many groups, spans that arrive after their
hour was sealed, SDK spans superseded by spendwatch's span of the same call arriving later, a reprice,
a prune — then each rollup-backed answer (every rule kind's values, the dashboard's figures, the spend
report) against the same answer from `llm_calls` alone, to the cent; and the rollup's rows themselves
against a GROUP BY of `llm_calls`.
"""

from __future__ import annotations

import random
import secrets
import tomllib
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from functools import partial

import duckdb
import pytest

from spendwatch import hourly, latency
from spendwatch.collector import rollup
from spendwatch.collector.maintenance import reprice
from spendwatch.collector.pricing import PriceOverride, Pricer
from spendwatch.collector.rollup import _INSERT, _LATENCY_INSERT, SEAL_AFTER
from spendwatch.collector.rows import SpanRow
from spendwatch.collector.store import Store
from spendwatch.report import build_report
from spendwatch.rules.config import parse_rules_config
from spendwatch.rules.evaluate import evaluate
from spendwatch.ui import panels

PROVIDERS = {"openai": ("gpt-4o", "gpt-4o-mini"), "anthropic": ("claude-sonnet-4",), "acme": ("acme-unpriced-1",)}
KEYS = [f"{index:016x}" for index in range(1, 9)]
SERVICES = ("chat-api", "batch", "search", None)
USERS = ("alice", "bob", None)
RULES = """
[notifiers]
ops = "json://127.0.0.1:9/hook"

[[rules]]
name = "daily"
kind = "budget"
window = "day"
limit_usd = 0.01
notify = ["ops"]

[[rules]]
name = "weekly-per-key-openai"
kind = "budget"
window = "week"
limit_usd = 0.01
where = { provider = "openai" }
group_by = "api_key_id"
notify = ["ops"]

[[rules]]
name = "rolling-per-user"
kind = "budget"
window = "36h"
limit_usd = 0.01
group_by = "user"
notify = ["ops"]

[[rules]]
name = "model-by-service"
kind = "budget"
window = "month"
limit_usd = 0.01
where = { model = "gpt-4o" }
group_by = ["service", "api_key_id"]
notify = ["ops"]

[[rules]]
name = "spend-by-key"
kind = "anomaly"
metric = "cost_usd"
bucket = "1h"
baseline = "3d"
sensitivity = 0.01
group_by = "api_key_id"
notify = ["ops"]

[[rules]]
name = "errors-by-model"
kind = "anomaly"
metric = "error_rate"
bucket = "2h"
baseline = "2d"
sensitivity = 0.01
group_by = "model"
notify = ["ops"]

[[rules]]
name = "keys"
kind = "keys"
lookback = "2h"
notify = ["ops"]
"""


def _row(chance: random.Random, start: datetime, trace: str | None = None, *, ours: bool = True) -> SpanRow:
    provider = chance.choice(list(PROVIDERS))
    model = chance.choice(PROVIDERS[provider])
    ns = int(start.timestamp() * 1e9)
    failed = chance.random() < 0.1
    tokens = None if chance.random() < 0.05 else chance.randint(10, 5000)
    cost = None if provider == "acme" or tokens is None else round(tokens * chance.uniform(1e-7, 1e-5), 9)
    key = chance.choice(KEYS)
    return SpanRow(
        trace or secrets.token_hex(16),
        secrets.token_hex(8),
        None,
        ns,
        ns + chance.randint(1, 9000) * 1_000_000,
        chance.choice(SERVICES),
        provider,
        "chat",
        model,
        None if chance.random() < 0.3 else model + "-2025",
        None,
        False,
        tokens,
        None if tokens is None else chance.randint(1, 800),
        None if tokens is None else tokens // 3,
        None,
        None,
        False,
        cost,
        key,
        key[-4:],
        429 if failed else 200,
        "429" if failed else None,
        None,
        None,
        "{}",
        "spendwatch" if ours else "anthropic-sdk",
        ours,
        user=chance.choice(USERS),
        feature=chance.choice(("search", None)),
    )


def _database(tmp_path, now: datetime):
    db = tmp_path / "calls.duckdb"
    chance = random.Random(7)
    store = Store(db)
    sealed = store.con.execute(hourly.WATERMARK_SQL).fetchone()[0]
    assert sealed == hourly.hour_floor(now - SEAL_AFTER)
    for day in range(10, -1, -1):  # a day's calls in batches, as exporters send them; the last in this hour
        batch = [_row(chance, now - timedelta(days=day, seconds=chance.uniform(0, 86400))) for _ in range(150)]
        store.write(batch)
    late = [_row(chance, now - timedelta(days=2, hours=chance.uniform(0, 20))) for _ in range(40)]  # sealed hours
    store.write(late)
    # SDK spans first, then (a later export) spendwatch's span of the same call inside each: the SDK's is
    # superseded after its hour was sealed.
    outer = [_row(chance, now - timedelta(days=1, hours=chance.uniform(0, 20)), ours=False) for _ in range(30)]
    store.write(outer)
    before = store.con.execute("SELECT count(*) FROM llm_calls").fetchone()[0]
    inner = []
    for span in outer:
        row = _row(chance, datetime.fromtimestamp(span.start_ns / 1e9 + 0.0001, UTC), trace=span.trace_id)
        inner.append(
            row._replace(
                parent_span_id=span.span_id,
                end_ns=span.end_ns - 100_000,
                provider=span.provider,
                service_name=span.service_name,
                request_model=span.request_model,
            )
        )
    store.write(inner)
    assert store.con.execute("SELECT count(*) FROM llm_calls").fetchone()[0] == before  # each call once
    assert store.con.execute("SELECT count(*) FROM llm_call_spans WHERE superseded").fetchone()[0] == 30
    store.prune(now - timedelta(days=9, hours=5, minutes=30))  # inside an hour: that hour summed again
    store.close()
    changed, _ = reprice(db, Pricer({"gpt-4o": PriceOverride(input=3.0, output=12.0)}), None)
    assert changed > 100
    return db


def _queries(db):
    con = duckdb.connect(str(db), read_only=True)
    con.execute("SET TimeZone = 'UTC'")

    def rolled(sql, params):
        return [list(row) for row in con.execute(sql, list(params)).fetchall()]

    def raw(sql, params):  # as on a database without the rollup: every answer from llm_calls
        if sql == hourly.WATERMARK_SQL:
            raise duckdb.CatalogException("no rollup")
        return rolled(sql, params)

    return con, rolled, raw


def _cents(value):
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, dict):
        return {key: _cents(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_cents(item) for item in value]
    return value


def test_the_rollup_rows_are_the_sums_of_llm_calls(tmp_path):
    now = datetime.now(UTC)
    db = _database(tmp_path, now)
    con = duckdb.connect(str(db))
    con.execute("SET TimeZone = 'UTC'")
    sealed = con.execute(hourly.WATERMARK_SQL).fetchone()[0]
    columns = "grain, hour, provider, request_model, response_model, operation, api_key_id, service_name, user, "
    columns += "tenant, feature, agent, calls, errors, input_tokens, output_tokens, cache_read_tokens, "
    columns += "round(cost_usd, 9), unpriced_calls, usage_unknown_calls, first_start, last_start, api_key_hint"
    stored = sorted(con.execute(f"SELECT {columns} FROM llm_calls_hourly").fetchall(), key=repr)
    assert len(stored) > 500
    con.execute("CREATE TEMP TABLE expected AS SELECT * FROM llm_calls_hourly LIMIT 0")
    con.execute(
        _INSERT.replace("llm_calls_hourly", "expected"), {"first": datetime(1970, 1, 1, tzinfo=UTC), "last": sealed}
    )
    assert sorted(con.execute(f"SELECT {columns} FROM expected").fetchall(), key=repr) == stored
    # ... and so is the daily latency histogram, for every whole day before `complete_before`
    histogram = sorted(con.execute(f"SELECT * FROM {latency.TABLE}").fetchall())
    assert len(histogram) > 500 and max(day for day, *_ in histogram) < latency.day_floor(sealed)
    con.execute(f"CREATE TEMP TABLE counted AS SELECT * FROM {latency.TABLE} LIMIT 0")
    con.execute(
        _LATENCY_INSERT.replace(latency.TABLE, "counted"),
        {"first": datetime(1970, 1, 1, tzinfo=UTC), "last": latency.day_floor(sealed)},
    )
    assert sorted(con.execute("SELECT * FROM counted").fetchall()) == histogram


def test_every_answer_from_the_rollup_equals_the_raw_one(tmp_path):
    now = datetime.now(UTC)
    db = _database(tmp_path, now)
    con, rolled, raw = _queries(db)
    config = parse_rules_config(tomllib.loads(RULES), tmp_path / "rules.toml")
    for rule in config.rules:
        for at in (now, now - timedelta(days=1, minutes=7)):
            with_rollup, from_raw = (
                sorted(
                    (asdict(finding) | {"message": None} for finding in evaluate(rule, at, config, query)),
                    key=lambda finding: repr(_cents(finding)),
                )
                for query in (rolled, raw)
            )
            assert _cents(with_rollup) == _cents(from_raw), rule.name
            assert with_rollup or rule.kind != "budget", rule.name  # the answers compared are not empty
    for period in panels.PERIODS:
        for stack in panels.STACKS:
            assert _cents(asdict(panels.gather(rolled, config, now, period, stack))) == _cents(
                asdict(panels.gather(raw, config, now, period, stack))
            ), (period, stack)

    def as_report(query, sql, params):
        cursor = con.execute(sql, params)
        rows = query(sql, params) if sql == hourly.WATERMARK_SQL else cursor.fetchall()
        return [column[0] for column in cursor.description], [list(row) for row in rows]

    for by in (["provider", "model"], ["api_key_id", "day"], ["user"], ["service", "tag.team"], []):
        for since in (timedelta(days=7), timedelta(hours=30), None):
            reports = [build_report(partial(as_report, query), by, since, now=now) for query in (rolled, raw)]
            assert _cents(asdict(reports[0])) == _cents(asdict(reports[1])), (by, since)
    # ... and raw means llm_calls: the spend per key this week, written by hand
    week = config.rules[1]
    window = panels.windows_to_check(week, now, config)[-1]
    by_hand = con.execute(
        """SELECT api_key_id, round(sum(cost_usd), 2) FROM llm_calls
           WHERE provider = 'openai' AND start_time >= ? AND start_time < ? GROUP BY ALL ORDER BY 1""",
        [window.start, window.end],
    ).fetchall()
    assert (
        sorted((value, round(spent, 2)) for value, spent, _ in panels.spend_in_window(week, window, rolled)) == by_hand
    )
    (total,) = con.execute("SELECT round(sum(cost_usd), 2) FROM llm_calls").fetchone()
    assert round(build_report(partial(as_report, rolled), [], None, now=now).total["cost_usd"], 2) == total


def _quantiles(con, start, fraction):
    """`quantile_cont` per spender over the raw rows since `start`, as the dashboard asked it before."""
    found = {}
    for what, column in latency.GROUPINGS.items():
        for group, value in con.execute(
            f"""SELECT coalesce(CAST({column} AS VARCHAR), '(none)'), quantile_cont(duration_ms, {fraction})
                FROM llm_calls WHERE start_time >= ? GROUP BY 1""",
            [start],
        ).fetchall():
            found[(what, group)] = value
    return found


def _through_the_histogram(con, rolled, start, fraction):
    asked = []

    def recording(sql, params):
        asked.append(sql)
        return rolled(sql, params)

    sealed = hourly.complete_before(lambda: rolled(hourly.WATERMARK_SQL, []))
    expected = _quantiles(con, start, fraction)
    found = latency.percentiles(recording, sealed, start, expected, fraction)
    assert asked and not any("quantile_cont" in sql for sql in asked)  # not from sorting the raw rows
    return found, expected


def test_percentiles_from_the_latency_histogram_are_quantile_cont(tmp_path):
    now = datetime.now(UTC)
    db = _database(tmp_path, now)  # late spans, superseded spans, a prune inside a day, a reprice
    con, rolled, _ = _queries(db)
    starts = (now - timedelta(days=30), now - timedelta(days=7, minutes=13), latency.day_floor(now - timedelta(days=3)))
    for start in starts:
        for fraction in (0.5, 0.95, 0.99):
            found, expected = _through_the_histogram(con, rolled, start, fraction)
            assert len(expected) > 10
            assert found == pytest.approx(expected, rel=1e-12), (start, fraction)


def test_percentiles_at_ties_bucket_edges_and_odd_latencies(tmp_path):
    """Equal latencies, latencies on a bucket's edge, zero and negative ones (a skewed clock), groups of
    one and two calls; counted as late spans (a day summed again), then by the clock sealing days."""
    now = datetime.now(UTC)
    store = Store(tmp_path / "calls.duckdb")
    chance = random.Random(11)
    edges = [round(2.718281828459045 ** (bucket / latency.RESOLUTION) * 1e6) for bucket in range(300, 420, 7)]
    rows = []
    for _ in range(600):
        row = _row(chance, now - timedelta(days=4, hours=chance.uniform(0, 60)))
        duration = chance.choice([250_000_000, 250_000_000, 0, -3_000_000, *edges, chance.randint(1, 9_000_000_000)])
        rows.append(row._replace(end_ns=row.start_ns + duration))
    lonely = _row(chance, now - timedelta(days=3))._replace(api_key_id="00000000000000a1", service_name="lonely")
    pair = [
        _row(chance, now - timedelta(days=3, hours=hours))._replace(api_key_id="00000000000000a2") for hours in (1, 30)
    ]
    today = [_row(chance, now - timedelta(minutes=chance.uniform(0, 30))) for _ in range(20)]  # not sealed yet
    store.write([*rows, lonely, *pair, *today])
    store.close()
    con, rolled, _ = _queries(tmp_path / "calls.duckdb")
    for fraction in (0.0, 0.5, 0.95, 1.0):
        found, expected = _through_the_histogram(con, rolled, now - timedelta(days=7), fraction)
        assert {("keys", "00000000000000a1"), ("keys", "00000000000000a2"), ("services", "lonely")} <= expected.keys()
        assert found == pytest.approx(expected, rel=1e-12), fraction
    con.close()
    # The clock moves on: the days up to two days from now are sealed, each counted once.
    con = duckdb.connect(str(tmp_path / "calls.duckdb"))
    counted_days = {day for (day,) in con.execute(f"SELECT DISTINCT day FROM {latency.TABLE}").fetchall()}
    assert len(counted_days) >= 3 and latency.day_floor(now - timedelta(minutes=30)) not in counted_days
    later = now + timedelta(days=2)
    con.execute("BEGIN TRANSACTION")
    rollup.advance(con, later)
    con.execute("COMMIT")
    sealed = rollup.sealed_through(con)
    stored = sorted(con.execute(f"SELECT * FROM {latency.TABLE}").fetchall())
    assert max(day for day, *_ in stored) == latency.day_floor(now - timedelta(minutes=30))  # sealed by the clock
    con.execute(f"CREATE TEMP TABLE counted AS SELECT * FROM {latency.TABLE} LIMIT 0")
    con.execute(
        _LATENCY_INSERT.replace(latency.TABLE, "counted"),
        {"first": datetime(1970, 1, 1, tzinfo=UTC), "last": latency.day_floor(sealed)},
    )
    assert sorted(con.execute("SELECT * FROM counted").fetchall()) == stored
    con.close()


def test_the_dashboards_p95_comes_through_the_histogram_once_sorting_would_cost_more(tmp_path, monkeypatch):
    now = datetime.now(UTC)
    db = _database(tmp_path, now)
    _, rolled, raw = _queries(db)
    config = parse_rules_config(tomllib.loads(RULES), tmp_path / "rules.toml")
    asked = []

    def recording(sql, params):
        asked.append(sql)
        return rolled(sql, params)

    for sort_below, sorted_ in ((0, False), (10**9, True)):
        monkeypatch.setattr(latency, "SORT_BELOW", sort_below)
        for name in ("7d", "30d"):
            period = panels.period_of(name, now, config)
            asked.clear()
            through = panels.tops(recording, period, config)
            assert any("quantile_cont" in sql for sql in asked) == sorted_
            assert _cents(asdict(panels.gather(raw, config, now, name, "provider"))["tops"]) == _cents(
                {what: [asdict(row) for row in rows] for what, rows in through.items()}
            )
            assert all(row.p95_latency_ms for rows in through.values() for row in rows)
