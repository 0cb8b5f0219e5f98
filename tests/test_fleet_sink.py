"""The fleet's sink on a SQLite catalog and local files: each call in the shared table once — after a
retry, a late span that changes a call, a crash on either side of a commit, a restart, a new column."""

from __future__ import annotations

import secrets
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spendwatch.collector.store import Store
from spendwatch.fleet.reads import connect
from spendwatch.fleet.settings import FleetConfig
from spendwatch.fleet.sink import FleetSink, SinkStopped
from spendwatch.fleet.table import seq_property
from tests.test_rules_budget import call

NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)


def fleet_config(tmp_path: Path, **overrides) -> FleetConfig:
    values = {
        "catalog": f"sqlite:///{tmp_path}/catalog.db",
        "warehouse": f"file://{tmp_path}/warehouse",
        "settle": timedelta(0),
        **overrides,
    }
    return FleetConfig(**values)


def fleet_rows(settings: FleetConfig, columns: str = "fleet_daemon, trace_id, span_id, cost_usd") -> list[tuple]:
    con = connect(settings)
    try:
        return sorted(con.execute(f"SELECT {columns} FROM llm_calls").fetchall())
    finally:
        con.close()


def local_rows(store: Store, daemon: str) -> list[tuple]:
    return sorted(
        (daemon, *row) for row in store.con.execute("SELECT trace_id, span_id, cost_usd FROM llm_calls").fetchall()
    )


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "a.duckdb")
    yield store
    store.close()


def test_each_call_goes_out_once_and_a_batch_again_adds_nothing(tmp_path, store):
    settings = fleet_config(tmp_path, daemon="a")
    store.write([call(NOW - timedelta(hours=hours), 1.0 + hours) for hours in range(30)])  # two days
    sink = FleetSink(lambda: store.con, settings)
    assert sink.run_once() == 30
    assert sink.run_once() == 0
    store.write([call(NOW, 0.5), call(NOW - timedelta(days=3), 0.25)])  # a new call and a backfill
    assert sink.run_once() == 2
    assert fleet_rows(settings) == local_rows(store, "a")
    assert sink.hours_replaced == 0
    # the batch number is the table's too, and each snapshot says which daemon and batch it holds
    sink.table.refresh()
    assert sink.table.properties[seq_property("a")] == "2"
    assert sink.table.current_snapshot().summary["spendwatch.seq"] == "2"


def test_a_late_span_that_supersedes_an_appended_call_replaces_its_hour(tmp_path, store):
    settings = fleet_config(tmp_path, daemon="a")
    sdk_span = call(NOW, 0.3)._replace(from_spendwatch=False, instrumentation_scope="opentelemetry.sdk.like")
    other = call(NOW, 2.0)
    store.write([sdk_span, other])
    sink = FleetSink(lambda: store.con, settings)
    assert sink.run_once() == 2
    # spendwatch's own span of the same call arrives later, beneath the SDK's: it is the call now
    ours = call(NOW, 0.4)._replace(trace_id=sdk_span.trace_id, parent_span_id=sdk_span.span_id)
    store.write([ours])
    assert store.con.execute("SELECT count(*) FROM llm_calls").fetchone() == (2,)
    sink.run_once()
    assert sink.hours_replaced == 1
    assert fleet_rows(settings) == local_rows(store, "a")
    assert sum(row[3] for row in fleet_rows(settings)) == pytest.approx(2.4)


def test_a_reprice_while_stopped_is_found_at_start_up(tmp_path, store):
    settings = fleet_config(tmp_path, daemon="a")
    store.write([call(NOW - timedelta(hours=hours), 1.0) for hours in range(3)])
    assert FleetSink(lambda: store.con, settings).run_once() == 3
    store.con.execute("UPDATE llm_call_spans SET cost_usd = 7.0 WHERE start_time < ?", [NOW - timedelta(hours=1)])
    restarted = FleetSink(lambda: store.con, settings)
    restarted.run_once()
    assert restarted.hours_replaced == 1
    assert fleet_rows(settings) == local_rows(store, "a")


class Crash(Exception):
    pass


def test_a_batch_that_landed_just_before_a_crash_is_recorded_not_appended_again(tmp_path, store, monkeypatch):
    settings = fleet_config(tmp_path, daemon="a")
    store.write([call(NOW - timedelta(minutes=minutes), 1.0) for minutes in range(5)])
    commit = FleetSink._commit

    def commit_then_crash(self, *args):
        commit(self, *args)
        raise Crash  # the table has the batch; the database has not recorded it

    monkeypatch.setattr(FleetSink, "_commit", commit_then_crash)
    with pytest.raises(Crash):
        FleetSink(lambda: store.con, settings).run_once()
    monkeypatch.setattr(FleetSink, "_commit", commit)
    assert store.con.execute("SELECT seq, pending_seq FROM fleet_sink").fetchone() == (0, 1)
    restarted = FleetSink(lambda: store.con, settings)
    assert restarted.run_once() == 0
    assert store.con.execute("SELECT seq, pending_seq FROM fleet_sink").fetchone() == (1, None)
    assert fleet_rows(settings) == local_rows(store, "a")


def test_a_batch_that_never_landed_is_planned_again(tmp_path, store, monkeypatch):
    settings = fleet_config(tmp_path, daemon="a")
    store.write([call(NOW - timedelta(minutes=minutes), 1.0) for minutes in range(5)])

    def crash_before(self, *args):
        raise Crash

    monkeypatch.setattr(FleetSink, "_commit", crash_before)
    with pytest.raises(Crash):
        FleetSink(lambda: store.con, settings).run_once()
    monkeypatch.undo()
    assert FleetSink(lambda: store.con, settings).run_once() == 5
    assert fleet_rows(settings) == local_rows(store, "a")


def test_a_table_ahead_of_the_database_stops_the_sink(tmp_path, store):
    settings = fleet_config(tmp_path, daemon="a")
    store.write([call(NOW, 1.0)])
    sink = FleetSink(lambda: store.con, settings)
    sink.run_once()
    with sink.table.transaction() as transaction:  # another daemon appending under the same name
        transaction.set_properties({seq_property("a"): "5"})
    store.write([call(NOW, 1.0)])
    with pytest.raises(SinkStopped, match="holds batch 5"):
        sink.run_once()
    assert len(fleet_rows(settings)) == 1


def test_the_daemon_keeps_its_name_and_refuses_another(tmp_path, store):
    store.write([call(NOW, 1.0)])
    sink = FleetSink(lambda: store.con, fleet_config(tmp_path))
    sink.run_once()
    made = sink.daemon
    assert made.startswith(socket.gethostname().split(".")[0][:60])
    again = FleetSink(lambda: store.con, fleet_config(tmp_path))
    again.open()
    assert again.daemon == made
    with pytest.raises(SinkStopped, match="would append its calls again"):
        FleetSink(lambda: store.con, fleet_config(tmp_path, daemon="renamed")).open()


def test_a_column_llm_calls_gains_is_added_and_filled_in_for_calls_already_appended(tmp_path, store):
    settings = fleet_config(tmp_path, daemon="a")
    store.write([call(NOW - timedelta(hours=1), 1.0)])
    FleetSink(lambda: store.con, settings).run_once()
    older = Store(tmp_path / "older.duckdb")  # a daemon of the version before
    try:
        older.write([call(NOW, 3.0)])
        FleetSink(lambda: older.con, fleet_config(tmp_path, daemon="older")).run_once()
        # what a later migration does: llm_calls gains a column
        store.con.execute("ALTER VIEW llm_calls RENAME TO llm_calls_before")
        store.con.execute("CREATE VIEW llm_calls AS SELECT *, 'acme' AS cost_center FROM llm_calls_before")
        store.write([call(NOW, 2.0)])
        restarted = FleetSink(lambda: store.con, settings)
        restarted.run_once()
        # the column is added; this daemon's calls of before get its values (their hour is replaced once);
        # the older daemon's files, without it, read as NULL
        assert fleet_rows(settings, "fleet_daemon, cost_usd, cost_center") == [
            ("a", 1.0, "acme"),
            ("a", 2.0, "acme"),
            ("older", 3.0, None),
        ]
        assert restarted.hours_replaced == 1
        older.write([call(NOW, 4.0)])  # and the older daemon goes on appending without it
        FleetSink(lambda: older.con, fleet_config(tmp_path, daemon="older")).run_once()
        assert ("older", 4.0, None) in fleet_rows(settings, "fleet_daemon, cost_usd, cost_center")
    finally:
        older.close()


def test_calls_the_daemon_forgot_by_its_retention_stay_in_the_table(tmp_path, store):
    settings = fleet_config(tmp_path, daemon="a")
    store.write([call(NOW - timedelta(days=40), 1.0), call(NOW, 2.0)])
    FleetSink(lambda: store.con, settings, local_retention=timedelta(days=30)).run_once()
    store.prune(NOW - timedelta(days=30))
    restarted = FleetSink(lambda: store.con, settings, local_retention=timedelta(days=30))
    restarted.run_once()
    assert restarted.hours_replaced == 0
    assert sorted(row[3] for row in fleet_rows(settings)) == [1.0, 2.0]


def test_two_daemons_share_the_table_each_with_its_own_calls(tmp_path):
    settings = {name: fleet_config(tmp_path, daemon=name) for name in ("a", "b")}
    stores = {name: Store(tmp_path / f"{name}.duckdb") for name in settings}
    try:
        for name, store in stores.items():
            same_trace = secrets.token_hex(16)  # the same ids on two daemons are two daemons' calls
            store.write([call(NOW, 1.0)._replace(trace_id=same_trace, span_id="00000000000000aa")])
            store.write([call(NOW - timedelta(hours=hours), 0.1) for hours in range(4)])
            FleetSink(lambda store=store: store.con, settings[name]).run_once()
        assert fleet_rows(settings["a"]) == sorted(local_rows(stores["a"], "a") + local_rows(stores["b"], "b"))
    finally:
        for store in stores.values():
            store.close()


def test_a_daemon_that_loses_the_race_to_create_the_table_uses_the_winners(tmp_path, store, monkeypatch):
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.exceptions import NoSuchTableError

    settings = fleet_config(tmp_path, daemon="a")
    store.write([call(NOW, 1.0)])
    FleetSink(lambda: store.con, settings).run_once()  # the winner created the table
    load, looked = SqlCatalog.load_table, []

    def not_there_yet(catalog, identifier):  # the loser looked before the winner committed
        if not looked:
            looked.append(identifier)
            raise NoSuchTableError(identifier)
        return load(catalog, identifier)

    monkeypatch.setattr(SqlCatalog, "load_table", not_there_yet)
    other = Store(tmp_path / "b.duckdb")
    try:
        other.write([call(NOW, 2.0)])
        FleetSink(lambda: other.con, fleet_config(tmp_path, daemon="b")).run_once()
    finally:
        other.close()
    assert looked == ["spendwatch.llm_calls"]
    monkeypatch.undo()
    assert sorted(row[3] for row in fleet_rows(settings)) == [1.0, 2.0]
