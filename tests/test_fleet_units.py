"""The fleet's parts on a SQLite catalog and local files: `[fleet]` and `scope` in the config, the lease,
fleet alerts raised and sent once, the fleet rules, the table's maintenance, and `query`/`report --fleet`."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from spendwatch.collector.store import Store
from spendwatch.config import ConfigError, resolve
from spendwatch.fleet import alerts as fleet_alerts
from spendwatch.fleet.lease import Lease
from spendwatch.fleet.maintenance import COMPACT_TODAY_AT, MERGE_MANIFESTS_OVER, day_files, maintain
from spendwatch.fleet.records import create_tables
from spendwatch.fleet.rules import FleetRules
from spendwatch.fleet.settings import FleetConfigError, parse_fleet_config
from spendwatch.fleet.sink import FleetSink
from spendwatch.rules.config import RulesConfigError
from spendwatch.rules.finding import Finding
from tests.collector import run_cli
from tests.test_fleet_sink import NOW, fleet_config, fleet_rows
from tests.test_rules_budget import call, rules_config

FLEET_SECTION = """
[fleet]
catalog = "sqlite:///{tmp}/catalog.db"
warehouse = "file://{tmp}/warehouse"
settle = "1s"
daemon = "a"
"""


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spendwatch.toml"
    path.write_text(text.format(tmp=tmp_path))
    return path


# -- the config ---------------------------------------------------------------------------------------


def test_the_fleet_section_with_credentials_from_the_environment_never_shown(tmp_path):
    path = tmp_path / "spendwatch.toml"
    environ = {
        "SPENDWATCH_FLEET_CATALOG": "postgresql+psycopg://spend:hunter2@db.internal/spend",
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000",
        "AWS_REGION": "eu-west-3",
    }
    settings = parse_fleet_config({"warehouse": "s3://spend/wh", "every": "30s"}, path, environ)
    assert settings.catalog.endswith("@db.internal/spend")
    assert settings.masked_catalog == "postgresql+psycopg://spend:***@db.internal/spend"
    assert settings.every == timedelta(seconds=30) and settings.table == "spendwatch.llm_calls"
    assert settings.s3_properties() == {
        "s3.endpoint": "http://127.0.0.1:9000",
        "s3.region": "eu-west-3",
        "s3.access-key-id": "AKIDEXAMPLE",
        "s3.secret-access-key": "wJalrXUtnFEMI",
    }
    assert "hunter2" not in repr(settings) and "wJalrXUtnFEMI" not in repr(settings)
    assert parse_fleet_config(None, path, environ) is None


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"warehouse": "s3://x"}, "fleet.catalog: expected the SQL catalog's SQLAlchemy URL"),
        ({"catalog": "sqlite:///x.db"}, "fleet.warehouse: missing"),
        (
            {"catalog": "sqlite:///x.db", "warehouse": "s3://x", "table": "calls"},
            "fleet.table: expected namespace.table",
        ),
        ({"catalog": "sqlite:///x.db", "warehouse": "s3://x", "every": "soon"}, "fleet.every: expected a duration"),
        ({"catalog": "sqlite:///x.db", "warehouse": "s3://x", "lease": "1s"}, "fleet.lease: expected at least 3s"),
        ({"catalog": "sqlite:///x.db", "warehouse": "s3://x", "bucket": "x"}, "fleet.bucket: unknown key"),
        ({"catalog": "sqlite:///x.db", "warehouse": "s3://x", "daemon": "a b"}, "fleet.daemon: expected up to 100"),
    ],
)
def test_a_bad_fleet_section_names_the_file_the_key_and_what_was_expected(tmp_path, section, message):
    with pytest.raises(FleetConfigError) as error:
        parse_fleet_config(section, tmp_path / "spendwatch.toml", {})
    assert str(error.value).startswith(f"{tmp_path / 'spendwatch.toml'}: {message}")


def test_scope_is_a_rule_field_and_fleet_rules_need_the_fleet(tmp_path):
    budget = '[[rules]]\nname = "b"\nkind = "budget"\nlimit_usd = 5.0\nnotify = ["ops"]\nscope = "{}"\n'
    config = rules_config(tmp_path, budget.format("fleet"))
    assert [rule.scope for rule in config.rules] == ["fleet"] and config.of_scope("local") == []
    with pytest.raises(RulesConfigError, match="scope: expected local or fleet"):
        rules_config(tmp_path, budget.format("everywhere"))
    keys = '[[rules]]\nname = "k"\nkind = "keys"\nnotify = ["ops"]\nscope = "fleet"\n'
    with pytest.raises(RulesConfigError, match="the fleet's rules are budget and anomaly rules, not keys"):
        rules_config(tmp_path, keys)
    path = write_config(tmp_path, budget.format("fleet") + '[notifiers]\nops = "json://127.0.0.1:9/x"\n')
    with pytest.raises(ConfigError, match=r"rule 'b': scope: \"fleet\" needs a \[fleet\] section"):
        resolve({"config": str(path), "db": str(tmp_path / "x.duckdb")})


# -- the lease ----------------------------------------------------------------------------------------


def test_one_holder_at_a_time_and_a_lapsed_lease_is_taken_over(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path}/catalog.db")
    create_tables(engine)
    first = Lease(engine, "maintenance", "a", timedelta(seconds=1))
    second = Lease(engine, "maintenance", "b", timedelta(seconds=1))
    assert first.renew() and first.held()
    assert not second.renew() and not second.held()
    assert first.current_holder() == "a"
    deadline = time.monotonic() + 10  # "a" stops renewing, as a killed holder does
    while not second.renew():
        assert time.monotonic() < deadline, "the lapsed lease was not taken over"
        time.sleep(0.05)
    assert second.current_holder() == "b" and not first.renew()
    second.release()
    assert first.renew() and first.acquisitions == 2


# -- fleet alerts -------------------------------------------------------------------------------------


def test_a_fleet_alert_is_raised_once_and_sent_once_whoever_holds_the_lease(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path}/catalog.db")
    create_tables(engine)
    config = rules_config(
        tmp_path, '[[rules]]\nname = "b"\nkind = "budget"\nlimit_usd = 5.0\nnotify = ["ops"]\nscope = "fleet"\n'
    )
    rule = config.rules[0]
    window = NOW.replace(hour=0, minute=0)

    def finding(threshold: float) -> Finding:
        return Finding(
            rule, "budget", "", window, window + timedelta(days=1), threshold, 6.0, 5.0, f"b {threshold}", "m"
        )

    assert len(fleet_alerts.record(engine, [finding(0.8), finding(1.0)], NOW, "a")) == 1  # the higher one sent
    assert fleet_alerts.record(engine, [finding(0.8), finding(1.0)], NOW, "b") == []  # the next holder's tick
    sent = []

    def send(urls, title, body):
        sent.append(title)

    for daemon in ("a", "b"):
        fleet_alerts.deliver_due(engine, config.notifiers, NOW, send, lambda _: timedelta(minutes=1), daemon)
    assert sent == ["b 1.0"]
    assert [(row["threshold"], row["state"]) for row in fleet_alerts.alerts_of(engine)] == [
        (1.0, "delivered"),
        (0.8, "superseded"),
    ]


def test_a_failed_fleet_delivery_is_retried_later_and_not_sent_twice(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path}/catalog.db")
    create_tables(engine)
    config = rules_config(
        tmp_path, '[[rules]]\nname = "b"\nkind = "budget"\nlimit_usd = 5.0\nnotify = ["ops"]\nscope = "fleet"\n'
    )
    found = Finding(config.rules[0], "budget", "", NOW, None, 1.0, 6.0, 5.0, "title", "message")
    fleet_alerts.record(engine, [found], NOW, "a")
    outcomes = ["refused", None]
    sent = []

    def send(urls, title, body):
        sent.append(title)
        return outcomes.pop(0)

    retry = lambda _: timedelta(minutes=1)  # noqa: E731
    assert fleet_alerts.deliver_due(engine, config.notifiers, NOW, send, retry, "a") == 0
    assert fleet_alerts.deliver_due(engine, config.notifiers, NOW + timedelta(seconds=30), send, retry, "a") == 0
    assert fleet_alerts.deliver_due(engine, config.notifiers, NOW + timedelta(minutes=2), send, retry, "b") == 1
    assert sent == ["title", "title"]
    assert fleet_alerts.alerts_of(engine)[0]["state"] == "delivered"


# -- the fleet rules over the table ----------------------------------------------------------------------


def test_a_fleet_budget_sums_every_daemons_calls(tmp_path):
    stores = [Store(tmp_path / f"{name}.duckdb") for name in ("a", "b")]
    try:
        for name, store in zip(("a", "b"), stores, strict=True):
            store.write([call(NOW - timedelta(minutes=5), 3.0)])  # $3 each: $6 across the fleet
            FleetSink(lambda store=store: store.con, fleet_config(tmp_path, daemon=name)).run_once()
    finally:
        for store in stores:
            store.close()
    engine = create_engine(f"sqlite:///{tmp_path}/catalog.db")
    create_tables(engine)
    config = rules_config(
        tmp_path,
        '[[rules]]\nname = "fleet-day"\nkind = "budget"\nlimit_usd = 5.0\nthresholds = [1.0]\n'
        'notify = ["ops"]\nscope = "fleet"\n',
    )
    rules = FleetRules(fleet_config(tmp_path), config, engine, "a", send=lambda *_: None)
    assert len(rules.tick(config.rules[0], NOW, None)) == 1
    assert rules.tick(config.rules[0], NOW, None) == []
    (alert,) = fleet_alerts.alerts_of(engine)
    assert alert["value"] == pytest.approx(6.0) and "$6.00 spent of the $5.00 limit" in alert["message"]


# -- maintenance ---------------------------------------------------------------------------------------


def test_maintenance_compacts_merges_and_expires_without_losing_a_row(tmp_path):
    settings = fleet_config(tmp_path, daemon="a", keep_snapshots=timedelta(hours=1))
    store = Store(tmp_path / "a.duckdb")
    try:
        sink = FleetSink(lambda: store.con, settings)
        yesterday = NOW - timedelta(days=1)
        for batch in range(max(MERGE_MANIFESTS_OVER, COMPACT_TODAY_AT) + 2):  # one file a day per batch
            store.write([call(yesterday + timedelta(seconds=batch), 1.0), call(NOW + timedelta(seconds=batch), 1.0)])
            sink.run_once()
        before = fleet_rows(settings)
        table = sink.table
        table.refresh()
        files_before = {day: len(tasks) for day, tasks in day_files(table).items()}
        snapshots_before = len(table.metadata.snapshots)
        first = maintain(table, settings, datetime.now(UTC), lambda: True)
        assert first.compacted_days == 2 and first.merged_manifests > 0
        assert {day: len(tasks) for day, tasks in day_files(table).items()} == dict.fromkeys(files_before, 1)
        assert fleet_rows(settings) == before
        assert first.expired_snapshots == 0 and first.orphans_deleted == 0  # an hour is kept
        table.refresh()
        later = datetime.now(UTC) + timedelta(hours=2)  # every snapshot but the current one expires
        second = maintain(table, settings, later, lambda: True)
        assert second.expired_snapshots >= snapshots_before and len(table.metadata.snapshots) == 1
        assert second.orphans_deleted >= sum(files_before.values())  # the files compaction replaced
        assert fleet_rows(settings) == before
        # and the sink carries on appending to the maintained table
        store.write([call(NOW + timedelta(minutes=1), 1.0)])
        assert sink.run_once() == 1
        assert len(fleet_rows(settings)) == len(before) + 1
    finally:
        store.close()


def test_maintenance_stops_when_the_lease_is_lost(tmp_path):
    settings = fleet_config(tmp_path, daemon="a")
    store = Store(tmp_path / "a.duckdb")
    try:
        sink = FleetSink(lambda: store.con, settings)
        for batch in range(3):
            store.write([call(NOW - timedelta(days=2, seconds=batch), 1.0)])
            sink.run_once()
    finally:
        store.close()
    done = maintain(sink.table, settings, datetime.now(UTC), lambda: False)
    assert done.compacted_days == 0 and len(day_files(sink.table)) == 1
    assert len(next(iter(day_files(sink.table).values()))) == 3


# -- reading the fleet from the CLI ------------------------------------------------------------------------


def test_query_and_report_over_the_fleet(tmp_path):
    totals = []
    for name in ("a", "b"):
        store = Store(tmp_path / f"{name}.duckdb")
        try:
            store.write([call(NOW - timedelta(hours=hours), 0.5 * (hours + 1)) for hours in range(4)])
            FleetSink(lambda store=store: store.con, fleet_config(tmp_path, daemon=name)).run_once()
        finally:
            store.close()
        answer = run_cli("report", "--db", str(tmp_path / f"{name}.duckdb"), "--since", "2d", "--format", "json")
        totals.append(json.loads(answer.stdout)["total"])
    config = write_config(tmp_path, FLEET_SECTION)
    queried = run_cli(
        "query", "--fleet", "--config", str(config), "--format", "json",
        "SELECT fleet_daemon, count(*) AS calls FROM llm_calls GROUP BY ALL ORDER BY 1",
    )  # fmt: skip
    assert queried.returncode == 0, queried.stderr
    assert json.loads(queried.stdout) == [{"fleet_daemon": "a", "calls": 4}, {"fleet_daemon": "b", "calls": 4}]
    report = run_cli("report", "--fleet", "--config", str(config), "--since", "2d", "--format", "json")
    fleet = json.loads(report.stdout)["total"]
    assert fleet["calls"] == sum(total["calls"] for total in totals) == 8
    assert fleet["cost_usd"] == pytest.approx(sum(total["cost_usd"] for total in totals))
    table = run_cli("report", "--fleet", "--config", str(config), "--by", "provider")
    assert table.returncode == 0 and "openai" in table.stdout
    refused = run_cli("query", "--fleet", "--config", str(config), "DELETE FROM llm_calls")
    assert refused.returncode == 2 and "only queries are allowed" in refused.stderr
    files = run_cli("query", "--fleet", "--config", str(config), "SELECT * FROM read_csv('/etc/passwd')")
    assert files.returncode == 2 and "disabled by configuration" in files.stderr
    no_fleet = write_config(tmp_path, "")
    missing = run_cli("report", "--fleet", "--config", str(no_fleet))
    assert missing.returncode == 2 and "has no [fleet] section" in missing.stderr


def test_the_fleet_tests_find_postgresql_in_debians_folders_and_on_the_path(tmp_path):
    import subprocess

    from tests.fleet_servers import postgres_tool

    real = postgres_tool("initdb")  # this machine's, wherever it is
    debian = tmp_path / "usr-lib-postgresql"
    for version in ("9.6", "15", "16"):  # the newest by number, not by name
        (debian / version / "bin").mkdir(parents=True)
        (debian / version / "bin" / "initdb").symlink_to(real)
    assert postgres_tool("initdb", debian, path="") == str(debian / "16" / "bin" / "initdb")

    elsewhere = tmp_path / "bin"  # no Debian folders: the PATH's
    elsewhere.mkdir()
    (elsewhere / "initdb").symlink_to(real)
    found = postgres_tool("initdb", tmp_path / "no-such-folder", path=str(elsewhere))
    assert found == str(elsewhere / "initdb")
    done = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0 and "PostgreSQL" in done.stdout

    with pytest.raises(AssertionError, match="install Debian's postgresql package"):
        postgres_tool("initdb", tmp_path / "no-such-folder", path=str(tmp_path / "empty"))
