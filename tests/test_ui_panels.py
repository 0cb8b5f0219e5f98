"""The dashboard's panels against SQL of their own, its charts' geometry, escaping and empty states."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime, timedelta

import pytest

from spendwatch.collector.migrations import migrate
from spendwatch.collector.readonly import run_query
from spendwatch.collector.store import connect
from spendwatch.config import ConfigError, resolve
from spendwatch.ui import charts, panels
from spendwatch.ui.page import render
from tests.dashboard_data import CONFIG, MARKUP_SERVICE, NEW_KEY, generate

NOW = datetime(2026, 3, 20, 15, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ui")
    db = directory / "spendwatch.duckdb"
    generate(db, NOW)
    (directory / "spendwatch.toml").write_text(CONFIG)
    rules = resolve({"db": str(db), "config": str(directory / "spendwatch.toml")}).rules
    con = connect(db, read_only=True)
    yield con, rules
    con.close()


def query_on(con):
    return lambda sql, params: run_query(con, sql, params=list(params), rollback=False)[1]


def sql(con, text, params=()):
    return con.execute(text, list(params)).fetchall()


def test_spend_over_time_equals_sql_per_day_and_provider(world):
    con, rules = world
    period = panels.period_of("30d", NOW, rules)
    assert len(period.buckets) == 30 and period.start == datetime(2026, 2, 19, tzinfo=UTC)
    data = panels.spend_over_time(query_on(con), period, "provider", rules)
    expected = {
        (day.replace(tzinfo=None), provider): spent
        for day, provider, spent in sql(
            con,
            "SELECT date_trunc('day', start_time), provider, sum(cost_usd) FROM llm_calls "
            "WHERE start_time >= ? AND cost_usd IS NOT NULL GROUP BY ALL",
            [period.start],
        )
    }
    shown = {
        (bucket, series.label): value
        for series in data.series
        for bucket, value in zip(period.buckets, series.values, strict=True)
        if value
    }
    assert shown.keys() == expected.keys()
    for key, value in expected.items():
        assert shown[key] == pytest.approx(value)
    [(total, calls)] = sql(con, "SELECT sum(cost_usd), count(*) FROM llm_calls WHERE start_time >= ?", [period.start])
    assert data.total_usd == pytest.approx(total) and data.calls == calls
    assert [series.label for series in data.series] == ["anthropic", "openai", "google"]  # by spend


def test_spend_stacked_by_key_keeps_the_top_groups_and_sums_the_rest(world, monkeypatch):
    con, rules = world
    monkeypatch.setattr(panels, "TOP_GROUPS", 2)
    period = panels.period_of("7d", NOW, rules)
    data = panels.spend_over_time(query_on(con), period, "key", rules)
    ranked = sql(
        con,
        "SELECT api_key_id, sum(cost_usd) AS s FROM llm_calls WHERE start_time >= ? GROUP BY 1 ORDER BY s DESC",
        [period.start],
    )
    assert [series.key for series in data.series] == [ranked[0][0], ranked[1][0], None]
    assert data.series[0].label in ("production", "batch & backfill")  # names from [keys]
    assert data.series[2].total == pytest.approx(sum(spent for _, spent in ranked[2:]))
    assert sum(series.total for series in data.series) == pytest.approx(data.total_usd)


def test_hourly_buckets_for_a_day(world):
    con, rules = world
    period = panels.period_of("24h", NOW, rules)
    assert period.unit == "hour" and len(period.buckets) == 24
    assert period.buckets[-1] == datetime(2026, 3, 20, 15, 0)
    data = panels.spend_over_time(query_on(con), period, "model", rules)
    [(last_hour,)] = sql(
        con, "SELECT sum(cost_usd) FROM llm_calls WHERE start_time >= ?", [datetime(2026, 3, 20, 15, tzinfo=UTC)]
    )
    assert sum(series.values[-1] for series in data.series) == pytest.approx(last_hour or 0)


@pytest.mark.parametrize(
    ("what", "column"),
    [("keys", "api_key_id"), ("models", "coalesce(response_model, request_model)"), ("services", "service_name")],
)
def test_top_tables_equal_sql(world, what, column):
    con, rules = world
    period = panels.period_of("30d", NOW, rules)
    rows = panels.tops(query_on(con), period, rules)[what]
    expected = sql(
        con,
        f"""SELECT {column}, sum(cost_usd), sum(input_tokens) + sum(output_tokens), count(*),
                   avg(CASE WHEN error_type IS NULL THEN 0 ELSE 1 END), quantile_cont(duration_ms, 0.95),
                   sum(cache_read_tokens) / sum(input_tokens)
            FROM llm_calls WHERE start_time >= ? GROUP BY 1 ORDER BY 2 DESC NULLS LAST LIMIT 10""",
        [period.start],
    )
    assert len(rows) == len(expected) > 2
    for row, (group, spent, tokens, requests, error_rate, p95, cache) in zip(rows, expected, strict=True):
        if what == "keys":
            assert row.label == rules.keys.get(group) or row.label.startswith(group[:8])
        else:
            assert row.label == group
        assert row.spent_usd == (None if spent is None else pytest.approx(spent))
        assert (row.tokens, row.requests) == (tokens, requests)
        assert row.error_rate == pytest.approx(error_rate)
        assert row.p95_latency_ms == pytest.approx(p95)
        assert row.cache_hit_share == pytest.approx(cache)


def test_budgets_use_the_rules_windows(world):
    con, rules = world
    bars = panels.budgets(query_on(con), rules, NOW)
    monthly = [bar for bar in bars if bar.rule == "monthly-all"]
    [(month_spend,)] = sql(
        con,
        "SELECT sum(cost_usd) FROM llm_calls WHERE start_time >= ? AND start_time < ?",
        [datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)],
    )
    assert len(monthly) == 1 and monthly[0].spent_usd == pytest.approx(month_spend)
    assert monthly[0].limit_usd == 40.0 and monthly[0].thresholds == (0.5, 0.8, 1.0)
    as_of = NOW - rules.settle
    elapsed = (as_of - datetime(2026, 3, 1, tzinfo=UTC)) / timedelta(days=31)
    assert monthly[0].forecast_usd == pytest.approx(month_spend / elapsed)
    daily = {bar.group: bar.spent_usd for bar in bars if bar.rule == "daily-per-provider"}
    expected = sql(
        con,
        "SELECT provider, coalesce(sum(cost_usd), 0) FROM llm_calls WHERE start_time >= ? AND start_time < ? "
        "GROUP BY 1",
        [datetime(2026, 3, 20, tzinfo=UTC), datetime(2026, 3, 21, tzinfo=UTC)],
    )
    assert daily == pytest.approx(dict(expected))


def test_alerts_unpriced_and_new_keys(world):
    con, rules = world
    query = query_on(con)
    alerts = panels.recent_alerts(query)
    assert [alert.state for alert in alerts] == ["pending", "failed", "delivered"]  # newest first
    assert alerts[1].deliveries == "inbox: gave up" and alerts[1].last_error == "connection refused"
    [unpriced] = panels.unpriced_models(query)
    [(calls,)] = sql(con, "SELECT count(*) FROM llm_calls WHERE cost_usd IS NULL AND input_tokens IS NOT NULL")
    assert (unpriced.model, unpriced.calls) == ("acme-unpriced-1", calls)
    [new] = panels.new_keys(query, NOW, rules)
    assert new.label == f"{NEW_KEY[0][:8]} …{NEW_KEY[1]}" and new.calls == 5


def test_the_page_escapes_what_users_named(world):
    con, rules = world
    page = render(panels.gather(query_on(con), rules, NOW, "30d", "service"))
    assert "<script" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&#x27;svc&#x27;)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "batch &amp; backfill" in page
    ElementTree.fromstring(charts.spend_chart(panels.gather(query_on(con), rules, NOW, "30d", "service").spend))
    assert MARKUP_SERVICE not in page


def test_an_empty_database_renders_friendly_empty_states(tmp_path):
    con = connect(tmp_path / "empty.duckdb")
    migrate(con)
    rules = resolve({"db": str(tmp_path / "empty.duckdb")}).rules
    page = render(panels.gather(query_on(con), rules, NOW, "7d", "provider"))
    con.close()
    for text in (
        "No priced calls in the last 7d.",
        "No budget rules",
        "No alerts yet.",
        "Every model with calls",
        "No provider bill imported",
    ):
        assert text in page
    assert 'class="chart"' not in page and "$0.00" in page


def test_a_period_with_no_data(world):
    con, rules = world
    later = NOW + timedelta(days=200)
    page = render(panels.gather(query_on(con), rules, later, "24h", "provider"))
    assert "No priced calls in the last 24h." in page and page.count("No calls in this period.") == 3
    assert "acme-unpriced-1" in page  # unpriced models are not bound to the period


def test_the_chart_draws_one_group_per_bucket_with_heights_in_proportion(world):
    con, rules = world
    data = panels.spend_over_time(query_on(con), panels.period_of("30d", NOW, rules), "provider", rules)
    svg = ElementTree.fromstring(charts.spend_chart(data))
    namespace = {"svg": "http://www.w3.org/2000/svg"}
    groups = svg.findall("svg:g[@class='bucket']", namespace)
    assert len(groups) == 30
    heights = {}
    for group in groups:
        rects = group.findall("svg:rect", namespace)
        assert all(float(rect.get("height")) > 0 for rect in rects)
        assert all(rect.find("svg:title", namespace).text for rect in rects)
        height = sum(float(rect.get("height")) for rect in rects)
        heights[group.get("data-bucket")] = (height, float(group.get("data-total")))
    (tall_height, tall_total), (other_height, other_total) = sorted(heights.values())[-1], sorted(heights.values())[5]
    assert tall_height / other_height == pytest.approx(tall_total / other_total, rel=1e-3)
    assert tall_height <= charts.HEIGHT - charts.TOP - charts.BOTTOM


def test_axis_ticks_are_round():
    assert charts.nice_ticks(0.87) == [0.0, 0.5, 1.0]
    assert charts.nice_ticks(0.79) == [0.0, 0.2, 0.4, 0.6, 0.8]
    assert charts.nice_ticks(1234) == [0, 500, 1000, 1500]
    assert charts.nice_ticks(0) == [0.0, 1.0]
    assert charts.tick_label(0.5, 0.5) == "$0.50" and charts.tick_label(1500, 500) == "$1,500"


def test_ui_port_setting(tmp_path, monkeypatch):
    config = tmp_path / "spendwatch.toml"
    assert resolve({}).ui_port == 4320 and resolve({}).ui is True
    config.write_text("ui_port = 5000\nui = false\n")
    assert (resolve({"config": str(config)}).ui_port, resolve({"config": str(config)}).ui) == (5000, False)
    monkeypatch.setenv("SPENDWATCH_UI_PORT", "5001")
    monkeypatch.setenv("SPENDWATCH_UI", "on")
    assert (resolve({"config": str(config)}).ui_port, resolve({"config": str(config)}).ui) == (5001, True)
    assert resolve({"config": str(config), "ui_port": 0, "ui": False}).ui_port == 0
    monkeypatch.delenv("SPENDWATCH_UI")
    config.write_text('ui = "maybe"\n')
    with pytest.raises(ConfigError, match="ui: expected true or false"):
        resolve({"config": str(config)})
