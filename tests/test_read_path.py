"""The read path cannot hurt the writer: only queries run (no EXPLAIN ANALYZE), settings stay locked,
external access is off, reads have connections, memory and time of their own, results are capped, and
ingest goes on while a heavy read runs."""

from __future__ import annotations

import json
import secrets
import socket
import threading
from datetime import UTC, datetime

import duckdb
import httpx
import pytest

from spendwatch.collector.readonly import QueryError, ReadConnections, check_read_only
from spendwatch.collector.store import Store
from tests.collector import Collector, run_cli
from tests.test_ingest_server import export_json, raw_exchange, request_bytes, span_json, status_of
from tests.test_rules_budget import call


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    directory = tmp_path_factory.mktemp("read-path")
    collector = Collector(
        directory / "spendwatch.duckdb",
        directory / "log",
        env={"SPENDWATCH_QUERY_MAX_ROWS": "1000", "SPENDWATCH_QUERY_TIMEOUT": "15"},
        shared=True,
    ).start()
    yield collector
    if collector.process.poll() is None:
        assert collector.stop() == 0


def query(collector: Collector, sql: str) -> httpx.Response:
    return httpx.post(
        collector.info["read_url"] + "/query",
        json={"sql": sql},
        headers={"authorization": f"Bearer {collector.info['token']}"},
        timeout=60,
    )


@pytest.mark.parametrize(
    "sql",
    [
        "EXPLAIN ANALYZE SET GLOBAL memory_limit = '1MB'",
        "explain analyse select 1",
        "/* a comment */ EXPLAIN /* another */ ANALYZE SELECT 1",
        "EXPLAIN (ANALYZE) SELECT 1",
        "EXPLAIN (FORMAT json, ANALYZE) SELECT 1",
        "SET GLOBAL memory_limit = '1MB'",
        "PRAGMA memory_limit = '1MB'",
        "CALL checkpoint()",
        "CHECKPOINT",
        "INSERT INTO alerts SELECT * FROM alerts",
        "ATTACH '/tmp/x.duckdb'",
        "SELECT 1; SELECT 2",
    ],
)
def test_only_queries_and_plain_explain(daemon, sql):
    answer = query(daemon, sql)
    assert answer.status_code == 400 and answer.json()["error"], answer.text


def test_plain_explain_and_the_query_statements_run(daemon):
    for sql in ("EXPLAIN SELECT 'analyze'", "SUMMARIZE SELECT 1 AS x", "DESCRIBE llm_calls", "FROM range(3)"):
        assert query(daemon, sql).status_code == 200, sql
    check_read_only("EXPLAIN (FORMAT json) SELECT 1")


def test_settings_stay_as_the_daemon_made_them_and_files_are_out_of_reach(daemon, tmp_path):
    before = query(daemon, "SELECT current_setting('memory_limit'), current_setting('lock_configuration')").json()
    assert before["rows"][0][1] is True
    query(daemon, "EXPLAIN ANALYZE SET GLOBAL memory_limit = '1MB'")
    assert query(daemon, "SELECT current_setting('memory_limit'), true").json()["rows"] == [
        [before["rows"][0][0], True]
    ]
    [[limit]] = query(daemon, "SELECT current_setting('operator_memory_limit')").json()["rows"]
    assert limit and "MiB" in limit  # each read connection has its own memory ceiling
    (tmp_path / "data.csv").write_text("a\n1\n")
    refused = query(daemon, f"SELECT * FROM read_csv('{tmp_path / 'data.csv'}')")
    assert refused.status_code == 400 and "disabled by configuration" in refused.json()["error"]
    assert httpx.post(daemon.http_endpoint + "/v1/traces", json=export_json([span_json("after")])).status_code == 200


def test_results_are_capped_with_truncated(daemon):
    answer = query(daemon, "SELECT range AS n FROM range(5000)").json()
    assert answer["truncated"] is True and answer["columns"] == ["n"] and len(answer["rows"]) == 1000
    assert "truncated" not in query(daemon, "SELECT range FROM range(10)").json()
    result = run_cli("query", "--db", str(daemon.db), "--format", "json", "SELECT range AS n FROM range(5000)")
    assert result.returncode == 0 and len(json.loads(result.stdout)) == 1000
    assert "cut at 1,000 rows" in result.stderr


def test_results_are_capped_in_bytes(tmp_path):
    collector = Collector(
        tmp_path / "spendwatch.duckdb", tmp_path / "log", env={"SPENDWATCH_QUERY_MAX_BYTES": "100000"}
    ).start()
    answer = query(collector, "SELECT repeat('x', 1000) AS padding FROM range(1000)")
    assert answer.status_code == 200 and len(answer.content) <= 100_000 + 100
    assert answer.json()["truncated"] is True and 90 <= len(answer.json()["rows"]) < 100
    assert collector.stop() == 0


def test_a_heavy_read_never_holds_ingest(daemon):
    """Exports are acknowledged while a read that takes the CPU runs on its own connection."""
    tag = secrets.token_hex(4)
    finished = threading.Event()
    answers: list[httpx.Response] = []

    def heavy() -> None:
        answers.append(query(daemon, "SELECT sum(a.range * b.range) FROM range(300000) AS a, range(200000) AS b"))
        finished.set()

    reader = threading.Thread(target=heavy)
    reader.start()
    with httpx.Client(base_url=daemon.http_endpoint, timeout=30) as client:
        for number in range(5):
            assert client.post("/v1/traces", json=export_json([span_json(f"{tag}-{number}")])).status_code == 200
    assert not finished.is_set()  # ingest did not wait for the read
    reader.join(timeout=60)
    assert answers[0].status_code == 400 and "ran longer than 15 s" in answers[0].json()["error"]
    result = run_cli(
        "query", "--db", str(daemon.db), f"SELECT count(*) FROM llm_calls WHERE request_model LIKE '{tag}-%'"
    )
    assert result.returncode == 0 and result.stdout.split()[-1] == "5"


def test_the_read_api_checks_its_token_before_the_body_and_takes_no_bad_length(daemon):
    port = int(daemon.info["read_url"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(
            request_bytes(b"", {"content-type": "application/json", "content-length": "50000000"}, "/query")
        )
        assert status_of(connection.recv(65536)) == 401  # answered without waiting for 50 MB
    answer = raw_exchange(
        port, request_bytes(b"", {"authorization": f"Bearer {daemon.info['token']}", "content-length": "-1"}, "/query")
    )
    assert status_of(answer) == 400
    assert query(daemon, "SELECT 1").json() == {"columns": ["1"], "rows": [[1]]}


def test_read_connections_lock_the_settings_of_the_database(tmp_path):
    store = Store(tmp_path / "spendwatch.duckdb")
    store.write([call(datetime.now(UTC), 1.0)])
    reads = ReadConnections(store)
    for con in (store.con, store.con.cursor()):  # every connection, the writer's too
        with pytest.raises(duckdb.InvalidInputException, match="locked"):
            con.execute("SET memory_limit = '1MB'")
    assert reads.run_query("SELECT count(*) FROM llm_calls", []) == (["count_star()"], [[1]])
    with pytest.raises(QueryError, match="only plain EXPLAIN"):
        reads.query_json("EXPLAIN ANALYZE SELECT 1", [])
    store.write([call(datetime.now(UTC), 2.0)])  # the writer writes as before
    assert reads.run_query("SELECT count(*) FROM llm_calls", [])[1] == [[2]]
    store.close()


def test_read_connections_follow_the_store_when_it_reopens_its_file(tmp_path):
    """After a failure the writer reopens the database (a fresh, unlocked instance): reads follow, and lock it."""
    store = Store(tmp_path / "spendwatch.duckdb")
    reads = ReadConnections(store)
    store.con.close()  # what `Store.recover` does with a connection the failure left unusable
    store.recover()
    store.write([call(datetime.now(UTC), 1.0)])
    [[limit, locked, count]] = reads.run_query(
        "SELECT current_setting('operator_memory_limit'), current_setting('lock_configuration'), "
        "(SELECT count(*) FROM llm_calls)",
        [],
    )[1]
    assert limit and locked is True and count == 1
    store.close()
