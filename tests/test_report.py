"""`spendwatch report` over a DuckDB file with known rows: the numbers per group and in total against SQL
written here independently, the money and the sparklines as people see them, the JSON and CSV scripts
read, no escape codes in a pipe, and budgets coloured by where they stand."""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import duckdb
import pytest
from rich.console import Console

from spendwatch.collector.store import ROW_COLUMNS, Store
from spendwatch.config import load_file
from spendwatch.reads import query
from spendwatch.report import MEASURES, build_report
from spendwatch.report_table import aligned_money, bucketed, money, render_report, sparkline
from spendwatch.rules.budget import budget_standings
from spendwatch.rules.config import parse_rules_config
from tests.collector import Collector

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TERMINAL_VARIABLES = ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "TERM", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


def call(
    at: datetime,
    cost: float | None,
    *,
    provider: str = "openai",
    model: str = "gpt-4o",
    service: str = "billing",
    key: str | None = "key-a",
    input_tokens: int | None = 100,
    output_tokens: int | None = 10,
    cache_read_tokens: int | None = None,
    error: str | None = None,
) -> tuple:
    start_ns = int(at.timestamp() * 1e9)
    values = dict.fromkeys((name for name, _ in ROW_COLUMNS), None)
    values.update(
        trace_id=secrets.token_hex(16),
        span_id=secrets.token_hex(8),
        start_ns=start_ns,
        end_ns=start_ns + 1_000_000,
        service_name=service,
        provider=provider,
        operation="chat",
        request_model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        usage_estimated=False,
        cost_usd=cost,
        api_key_id=key,
        error_type=error,
        attributes="{}",
        instrumentation_scope="spendwatch.instrumentation",
        from_spendwatch=True,
    )
    return tuple(values[name] for name, _ in ROW_COLUMNS)


def day(offset: int, hour: int = 10) -> datetime:
    """`offset` days before NOW's day, at `hour` UTC."""
    return (NOW - timedelta(days=offset)).replace(hour=hour)


# Four days back from NOW (12:00 on 03-10) the period starts at 12:00 on 03-06: five UTC days, the first partial.
KNOWN_CALLS = [
    call(day(4, hour=18), 1.0),
    call(day(3), 2.0, cache_read_tokens=50),
    call(day(1), 4.0, key="key-b"),
    call(day(0, hour=6), 8.0),
    call(day(1), 0.0042, provider="anthropic", model="claude-haiku-4-5", input_tokens=1000, cache_read_tokens=800),
    call(
        day(1), None, provider="anthropic", model="claude-haiku-4-5", input_tokens=None, output_tokens=None, error="429"
    ),
    call(day(0), None, provider="acme", model="acme-1", key=None),  # unpriced: tokens, no price
    call(day(4, hour=6), 50.0),  # before the period: on its first day, but before 12:00
    call(day(30), 100.0),
]


def write_database(path: Path, calls: list[tuple]) -> Path:
    store = Store(path)
    store.write(calls)
    store.close()
    return path


@pytest.fixture
def known_db(tmp_path):
    return write_database(tmp_path / "spendwatch.duckdb", KNOWN_CALLS)


def independent(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def test_groups_and_totals_match_sql(known_db):
    report = build_report(partial(query, known_db), ["provider", "model"], timedelta(days=4), NOW)
    expected = independent(
        known_db,
        """SELECT provider, request_model, count(*), count(error_type), sum(input_tokens), sum(cost_usd),
                  count(*) FILTER (cost_usd IS NULL AND input_tokens IS NOT NULL)
           FROM llm_calls WHERE start_time >= ? GROUP BY ALL ORDER BY sum(cost_usd) DESC NULLS LAST""",
        [NOW - timedelta(days=4)],
    )
    got = [
        (r["provider"], r["model"], r["calls"], r["errors"], r["input_tokens"], r["cost_usd"], r["unpriced_calls"])
        for r in report.rows
    ]
    assert got == [tuple(row) for row in expected]
    assert [row[0] for row in got] == ["openai", "anthropic", "acme"]  # most spend first, unpriced last
    assert report.total["cost_usd"] == pytest.approx(15.0042)  # neither the 50 before 12:00 nor the 100
    assert (report.total["calls"], report.total["errors"], report.total["unpriced_calls"]) == (7, 1, 1)
    assert report.total["input_tokens"] == 100 * 5 + 1000
    assert report.total["cache_hit_share"] == pytest.approx(850 / 1500)
    assert set(report.total) == set(MEASURES)


def test_daily_spend_per_row_and_its_sparkline(known_db):
    report = build_report(partial(query, known_db), ["provider"], timedelta(days=4), NOW)
    assert [d.isoformat() for d in report.days] == [f"2026-03-{n:02}" for n in range(6, 11)]
    by_provider = dict(zip((row["provider"] for row in report.rows), report.daily, strict=True))
    assert by_provider["openai"] == [1.0, 2.0, 0.0, 4.0, 8.0]
    assert by_provider["anthropic"] == [0.0, 0.0, 0.0, 0.0042, 0.0]
    assert by_provider["acme"] == [0.0] * 5
    assert report.total_daily == pytest.approx([1.0, 2.0, 0.0, 4.0042, 8.0])
    assert sparkline(by_provider["openai"]) == "▁▂ ▄█"
    assert sparkline(by_provider["anthropic"]) == "   █ "
    assert sparkline(by_provider["acme"]) == "     "


def test_since_all_starts_at_the_first_stored_day(known_db):
    report = build_report(partial(query, known_db), [], None, NOW)
    assert report.days[0].isoformat() == "2026-02-08" and len(report.days) == 31
    assert report.total["cost_usd"] == pytest.approx(165.0042) and report.total_daily[0] == 100.0


def test_an_empty_period_has_zero_counts_and_no_spend(known_db):
    report = build_report(partial(query, known_db), ["provider"], timedelta(minutes=1), NOW + timedelta(days=2))
    assert report.rows == [] and report.total_daily == [0.0]
    assert (report.total["calls"], report.total["errors"], report.total["unpriced_calls"]) == (0, 0, 0)
    assert report.total["cost_usd"] is None  # no priced call: no total, as SQL's sum of nothing


def test_sparkline_scales_to_the_largest_value_and_buckets_long_periods():
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([0.001, 1000]) == "▁█"  # any spend shows
    assert sparkline([]) == ""
    assert bucketed([1, 2, 3, 4, 5], 2) == [3, 7, 5]


def test_money_is_to_the_cent_with_enough_digits_for_small_amounts():
    assert money(1234.5) == "$1,234.50"
    assert money(1) == "$1.00"
    assert money(0.0042) == "$0.0042"
    assert money(0.42) == "$0.4200"
    assert money(0.00004) == "$0.000040"
    assert money(0) == "$0.00"
    assert money(None) == ""
    column = aligned_money([1234.5, 0.0042, None, 0.00004])
    assert column == ["$1,234.50    ", "    $0.0042  ", "", "    $0.000040"]
    assert {text.index(".") - len(text) for text in column if text} == {-7}  # decimal points line up


def cli_report(db: Path, *args: str, env: dict | None = None) -> str:
    """`spendwatch report` into a pipe, with only the terminal settings in `env` (none from this shell)."""
    inherited = {name: value for name, value in os.environ.items() if name not in TERMINAL_VARIABLES}
    result = subprocess.run(
        [sys.executable, "-m", "spendwatch.cli", "report", "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**inherited, **(env or {})},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def recent_db(tmp_path):
    """Known calls relative to the real clock, for the CLI (which reports up to now)."""
    now = datetime.now(UTC)
    calls = [
        call(now - timedelta(hours=1), 1.25),
        call(now - timedelta(hours=2), 0.0042, model="gpt-4o-mini", service="search"),
        call(now - timedelta(days=2), 1234.5, provider="anthropic", model="claude-sonnet-4-6"),
        call(now - timedelta(hours=3), None, provider="acme", model="acme-1"),
        call(now - timedelta(days=20), 99.0),
    ]
    return write_database(tmp_path / "spendwatch.duckdb", calls)


def test_json_and_csv_are_the_plain_numbers_sql_gives(recent_db):
    document = json.loads(cli_report(recent_db, "--by", "provider,model", "--format", "json"))
    expected = independent(
        recent_db,
        """SELECT provider, request_model, count(*), sum(cost_usd) FROM llm_calls
           WHERE start_time >= now() - INTERVAL 7 DAY GROUP BY ALL ORDER BY sum(cost_usd) DESC NULLS LAST""",
    )
    assert [(r["provider"], r["model"], r["calls"], r["cost_usd"]) for r in document["rows"]] == expected
    assert document["total"]["cost_usd"] == pytest.approx(1234.5 + 1.25 + 0.0042)
    assert document["total"]["calls"] == 4 and document["total"]["unpriced_calls"] == 1
    assert document["by"] == ["provider", "model"] and len(document["days"]) == 8
    per_day = dict(
        independent(
            recent_db,
            "SELECT CAST(date_trunc('day', start_time) AS DATE)::VARCHAR, sum(cost_usd) FROM llm_calls "
            "WHERE start_time >= now() - INTERVAL 7 DAY AND cost_usd IS NOT NULL GROUP BY 1",
        )
    )
    total_daily = dict(zip(document["days"], document["total"]["daily_cost_usd"], strict=True))
    assert {d: v for d, v in total_daily.items() if v} == pytest.approx(per_day)
    for row in document["rows"]:
        assert len(row["daily_cost_usd"]) == 8 and sum(row["daily_cost_usd"]) == pytest.approx(row["cost_usd"] or 0)

    rows = list(csv.DictReader(io.StringIO(cli_report(recent_db, "--by", "provider,model", "--format", "csv"))))
    assert list(rows[0]) == ["provider", "model", *MEASURES]
    assert [(r["provider"], r["model"], int(r["calls"])) for r in rows[:-1]] == [e[:3] for e in expected]
    assert rows[0]["cost_usd"] == "1234.5"  # plain numbers: no $, no thousands separator
    assert (rows[-1]["provider"], rows[-1]["model"], rows[-1]["calls"]) == ("total", "", "4")
    assert float(rows[-1]["cost_usd"]) == pytest.approx(document["total"]["cost_usd"])
    assert not any(glyph in json.dumps(document) + str(rows) for glyph in "▁█$")


def test_table_in_a_pipe_has_no_escape_codes_and_aligned_money(recent_db):
    table = cli_report(recent_db, "--by", "provider,model")
    assert "\x1b" not in table
    lines = table.splitlines()
    assert all(line == line.rstrip() for line in lines)
    by_model = {
        model: line for line in lines for model in ("claude-sonnet-4-6", "gpt-4o-mini", "acme-1") if model in line
    }
    assert "$1,234.50" in by_model["claude-sonnet-4-6"] and "$0.0042" in by_model["gpt-4o-mini"]
    total = next(line for line in lines if line.strip().startswith("total"))
    assert "$1,235.75" in total and " 4 " in total
    dots = {
        by_model["claude-sonnet-4-6"].index("$1,234.50") + len("$1,234"),
        by_model["gpt-4o-mini"].index("$0.0042") + len("$0"),
    }
    assert len(dots) == 1  # decimal points in one column
    assert "1 call(s) have no known price" in table
    assert "█" in by_model["claude-sonnet-4-6"]  # its one day of spend, drawn


def test_report_through_the_running_daemon_matches_the_file(recent_db, tmp_path):
    collector = Collector(recent_db, tmp_path / "collector.log").start()
    try:
        through_daemon = json.loads(cli_report(recent_db, "--by", "service_name", "--format", "json"))
    finally:
        assert collector.stop() == 0
    from_file = json.loads(cli_report(recent_db, "--by", "service_name", "--format", "json"))
    for document in (through_daemon, from_file):
        del document["since"], document["until"]
    assert through_daemon == from_file
    assert [row["service_name"] for row in from_file["rows"]] == ["billing", "search"]


BUDGETS = """
[notifiers]
ops = "json://127.0.0.1:9/alerts"

[[rules]]
name = "openai-daily"
kind = "budget"
window = "day"
limit_usd = 10.0
forecast = true
where = { provider = "openai" }
notify = ["ops"]

[[rules]]
name = "per-key-weekly"
kind = "budget"
window = "week"
limit_usd = 10.0
thresholds = [0.5, 1.0]
group_by = "api_key_id"
notify = ["ops"]

[[rules]]
name = "anthropic-daily"
kind = "budget"
limit_usd = 1.0
where = { provider = "anthropic" }
notify = ["ops"]
"""


def budget_config(tmp_path: Path):
    path = tmp_path / "spendwatch.toml"
    path.write_text(BUDGETS)
    return path, parse_rules_config(load_file(path), path)


def standings_at(db: Path, rules, now: datetime) -> list:
    def rows(sql, params):
        return [tuple(row) for row in query(db, sql, list(params))[1]]

    return [standing for rule in rules.rules for standing in budget_standings(rule, now, rules, rows)]


def test_budget_standings_come_from_the_rules_windows(known_db, tmp_path):
    _, rules = budget_config(tmp_path)
    standings = {(s.rule.name, s.group_value): s for s in standings_at(known_db, rules, NOW)}
    today = standings[("openai-daily", "")]
    assert today.spent == 8.0 and today.level == "near" and today.window.label.startswith("Tue 2026-03-10")
    assert today.projected == pytest.approx(8.0 / 0.5, rel=1e-3)  # half the day gone, as of now - 30 s settle
    # The week of Monday 03-09: key-a spent 8 today; key-b 4 yesterday; 03-06..08 are the week before.
    assert standings[("per-key-weekly", "key-a")].spent == pytest.approx(8.0042)  # with anthropic's 03-09 call
    assert standings[("per-key-weekly", "key-a")].level == "near"
    assert standings[("per-key-weekly", "key-b")].level == "under"
    assert ("per-key-weekly", "(none)") in standings  # the unpriced call without a key: a group at $0
    assert standings[("anthropic-daily", "")].spent == 0.0  # a rule with no spend still stands, at zero


def test_budget_over_its_limit_is_red_and_near_is_yellow_when_colour_is_forced(known_db, tmp_path):
    _, rules = budget_config(tmp_path)
    now = day(1, hour=23)  # 03-09: openai spent 4 of 10, per-key-weekly key-b 4 of 10 and key-a 0
    standings = standings_at(known_db, rules, now) + standings_at(known_db, rules, NOW)
    report = build_report(partial(query, known_db), ["provider"], timedelta(days=4), NOW)
    out = io.StringIO()
    render_report(Console(file=out, force_terminal=True, color_system="standard", width=200), report, standings, rules)
    lines = out.getvalue().splitlines()
    key_a_today = next(line for line in lines if "per-key-weekly" in line and "key-a" in line and "80%" in line)
    assert "\x1b[33m" in key_a_today  # 80% of its limit: past its first threshold (50%)
    openai_today = next(line for line in lines if "openai-daily" in line and "80%" in line)
    assert "\x1b[33m" in openai_today  # 8 of 10: past the default first threshold, 80%
    openai_yesterday = next(line for line in lines if "openai-daily" in line and "40%" in line)
    assert "\x1b[33m" not in openai_yesterday and "\x1b[31m" not in openai_yesterday


def test_budget_over_its_limit_is_red_through_the_cli(tmp_path):
    now = datetime.now(UTC)
    db = write_database(tmp_path / "spendwatch.duckdb", [call(now - timedelta(seconds=90), 1.5, provider="anthropic")])
    config, _ = budget_config(tmp_path)
    if not 1 <= now.hour <= 22:  # near midnight in UTC the call could fall in yesterday's window: use noon's zone
        config.write_text(f'timezone = "Etc/GMT{12 - now.hour:+d}"\n' + config.read_text())
    coloured = cli_report(db, "--config", str(config), env={"FORCE_COLOR": "1", "COLUMNS": "200"})
    over = next(line for line in coloured.splitlines() if "anthropic-daily" in line)
    assert "150%" in over and "\x1b[1;31m" in over
    plain = cli_report(db, "--config", str(config))
    assert "\x1b" not in plain and "anthropic-daily" in plain and "150%" in plain
    no_colour = cli_report(db, "--config", str(config), env={"FORCE_COLOR": "1", "NO_COLOR": "1", "COLUMNS": "200"})
    assert "31m" not in no_colour and "33m" not in no_colour


def test_a_narrow_terminal_loses_token_columns_not_money(recent_db):
    table = cli_report(recent_db, "--by", "provider,model", env={"COLUMNS": "80"})
    assert max(map(len, table.splitlines())) <= 80
    assert "$1,234.50" in table and "$0.0042" in table and "█" in table
    assert "input tokens" not in table
    wide = cli_report(recent_db, "--by", "provider,model")
    assert "input tokens" in wide and max(map(len, wide.splitlines())) > 80


def test_top_once_shows_the_last_minutes_by_key_and_model_through_the_daemon(tmp_path):
    now = datetime.now(UTC)
    calls = [
        call(now - timedelta(minutes=3), 0.5),
        call(now - timedelta(minutes=5), 0.02, model="gpt-4o-mini", key="key-b", error="500"),
        call(now - timedelta(minutes=40), 9.0),  # before the 15 minutes
    ]
    db = write_database(tmp_path / "spendwatch.duckdb", calls)
    config = tmp_path / "spendwatch.toml"
    config.write_text('[keys]\n"key-b" = "search"\n')
    collector = Collector(db, tmp_path / "collector.log").start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "spendwatch.cli", "top", "--db", str(db), "--config", str(config), "--once"],
            capture_output=True,
            text=True,
            timeout=60,
            env={name: value for name, value in os.environ.items() if name not in TERMINAL_VARIABLES},
            check=False,
        )
    finally:
        assert collector.stop() == 0
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    assert lines["key-a"][1:] == ["gpt-4o", "1", "0", "110", "$0.5000", "$0.0333"]
    assert lines["key-b"][1:4] == ["search", "gpt-4o-mini", "1"] and lines["key-b"][4] == "1"  # named, one error
    assert lines["total"][1:] == ["2", "1", "220", "$0.5200", "$0.0347"]
