"""The CLI against a real daemon (a subprocess) and against the file with the daemon stopped: the same
answers either way, in every format; and every user error as one line with exit code 2."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.collector import Collector, run_cli

NOW_NS = time.time_ns()


def export(calls: list[dict]) -> dict:
    def attribute(key, value):
        if isinstance(value, int):
            return {"key": key, "value": {"intValue": str(value)}}
        return {"key": key, "value": {"stringValue": value}}

    spans = []
    for index, call in enumerate(calls):
        start = NOW_NS - (index + 1) * 60_000_000_000
        spans.append(
            {
                "traceId": secrets.token_hex(16),
                "spanId": secrets.token_hex(8),
                "name": "chat",
                "startTimeUnixNano": str(start),
                "endTimeUnixNano": str(start + 250_000_000),
                "attributes": [attribute(key, value) for key, value in call.items()],
            }
        )
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [attribute("service.name", "billing")]},
                "scopeSpans": [{"scope": {"name": "spendwatch.instrumentation"}, "spans": spans}],
            }
        ]
    }


CALLS = [
    {
        "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 1_000_000,
        "gen_ai.usage.output_tokens": 100_000,
        "gen_ai.usage.cache_read.input_tokens": 500_000,
        "spendwatch.api_key.id": "key-a",
    },
    {
        "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 1_000_000,
        "gen_ai.usage.output_tokens": 100_000,
        "spendwatch.api_key.id": "key-b",
    },
    {
        "gen_ai.provider.name": "anthropic",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "claude-haiku-4-5",
        "http.response.status_code": 429,
        "error.type": "429",
        "spendwatch.api_key.id": "key-a",
    },
    {
        "gen_ai.provider.name": "acme",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "acme-1",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 1,
        "spendwatch.api_key.id": "key-a",
    },
]


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli")
    collector = Collector(directory / "spendwatch.duckdb", directory / "collector.log", shared=True).start()
    with httpx.Client(base_url=collector.http_endpoint) as client:
        assert client.post("/v1/traces", json=export(CALLS)).status_code == 200
    yield collector
    if collector.process.poll() is None:
        collector.stop()


@pytest.fixture(scope="module", params=["running", "stopped"])
def mode(request, database):
    """Every test runs with the daemon running, then all again with it stopped (module scope orders them)."""
    if request.param == "stopped" and database.process.poll() is None:
        assert database.stop() == 0
    return request.param


def cli(database, *args):
    result = run_cli(*args, "--db", str(database.db))
    assert result.returncode == 0, result.stderr
    return result.stdout


SQL = "SELECT request_model, input_tokens, start_time FROM llm_calls WHERE input_tokens > 100 ORDER BY api_key_id"


def test_query_in_every_format(database, mode):
    as_json = json.loads(cli(database, "query", "--format", "json", SQL))
    assert [(row["request_model"], row["input_tokens"]) for row in as_json] == [("gpt-4o-mini", 1_000_000)] * 2
    assert as_json[0]["start_time"].endswith("+00:00")  # ISO 8601, with its zone
    as_csv = list(csv.reader(io.StringIO(cli(database, "query", "--format", "csv", SQL))))
    assert as_csv[0] == ["request_model", "input_tokens", "start_time"] and len(as_csv) == 3
    table = cli(database, "query", SQL).splitlines()
    assert table[0].split() == ["request_model", "input_tokens", "start_time"]
    assert set(table[1]) <= {"-", " "} and "gpt-4o-mini" in table[2] and "1000000" in table[2]


def test_report_groups_totals_and_unpriced(database, mode):
    document = json.loads(cli(database, "report", "--by", "provider,model", "--format", "json"))
    by_model = {row["model"]: row for row in document["rows"]}
    gpt = by_model["gpt-4o-mini"]
    assert (gpt["calls"], gpt["errors"], gpt["input_tokens"], gpt["unpriced_calls"]) == (2, 0, 2_000_000, 0)
    assert gpt["cache_hit_share"] == pytest.approx(0.25)
    assert by_model["claude-haiku-4-5"]["errors"] == 1
    assert by_model["acme-1"]["unpriced_calls"] == 1 and by_model["acme-1"]["cost_usd"] is None
    total = document["total"]
    assert total["calls"] == 4 and total["unpriced_calls"] == 1 and len(document["rows"]) == 3
    assert total["cost_usd"] == pytest.approx(gpt["cost_usd"])
    table = cli(database, "report", "--by", "api_key_id,day")
    assert "total" in table and "$" in table and "%" in table
    as_csv = list(csv.reader(io.StringIO(cli(database, "report", "--by", "service_name", "--format", "csv"))))
    assert as_csv[0][:2] == ["service_name", "calls"] and as_csv[1][:2] == ["billing", "4"]


def test_prices_missing(database, mode):
    (row,) = json.loads(cli(database, "prices", "missing", "--format", "json"))
    assert (row["provider"], row["model"], row["calls"]) == ("acme", "acme-1", 1)


def test_status(database, mode):
    status = json.loads(cli(database, "status", "--format", "json"))
    assert status["running"] is (mode == "running")
    assert status["calls_stored"] == 4 and status["unpriced_models"] == 1
    if mode == "running":
        assert status["grpc_port"] == database.info["grpc_port"] and status["rules_loaded"] == 0
        assert status["last_call_received_at"]
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in cli(database, "status").splitlines())
    assert lines["running"] == str(mode == "running")
    assert lines["calls stored"] == "4"


@pytest.mark.parametrize(
    "args,message",
    [
        (["query", "DELETE FROM llm_calls"], "only queries are allowed"),
        (["query", "COPY llm_calls TO 'out.csv'"], "only queries are allowed"),
        (["query", "ATTACH 'other.db'"], "only queries are allowed"),
        (["query", "INSTALL httpfs"], "only queries are allowed"),
        (["query", "LOAD httpfs"], "only queries are allowed"),
        (["query", "PRAGMA version"], "only queries are allowed"),
        (["query", "SET threads = 1"], "only queries are allowed"),
        (["query", "CREATE TABLE stolen AS SELECT * FROM llm_calls"], "only queries are allowed"),
        (["query", "SELECT * FROM read_csv('/etc/passwd')"], "disabled"),
        (["query", "SELECT 1; SELECT 2"], "one statement at a time"),
        (["query", "SELECT * FROM read_text('/etc/hostname')"], "disabled"),
        (["query", "SELEC 1"], "syntax error"),
        (["query", "SELECT nope FROM llm_calls"], "nope"),
        (["report", "--by", "colour"], "--by: unknown group 'colour'"),
        (["report", "--since", "soon"], "--since: expected a duration"),
        (["query", "--format", "xml", "SELECT 1"], "invalid choice: 'xml'"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(database, mode, args, message):
    result = run_cli(*args, "--db", str(database.db))
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_missing_database_and_silent_daemon(tmp_path):
    result = run_cli("query", "SELECT 1", "--db", str(tmp_path / "absent.duckdb"))
    assert result.returncode == 2 and "no such database" in result.stderr
    db = tmp_path / "silent.duckdb"
    with socket_nobody_listens_on() as port:  # a live process (this one) whose read API does not answer
        db.with_name(db.name + ".daemon.json").write_text(
            json.dumps({"pid": os.getpid(), "host": "127.0.0.1", "read_url": f"http://127.0.0.1:{port}", "token": "t"})
        )
        result = run_cli("query", "SELECT 1", "--db", str(db))
    assert result.returncode == 2 and "does not answer" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def socket_nobody_listens_on():
    import contextlib
    import socket

    @contextlib.contextmanager
    def port():
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            yield probe.getsockname()[1]

    return port()


def test_run_reports_an_apps_calls_to_the_running_daemon(tmp_path, standin):
    db = tmp_path / "spendwatch.duckdb"
    collector = Collector(db, tmp_path / "collector.log").start()
    app = tmp_path / "app.py"
    app.write_text(
        "import os, httpx2\n"
        "httpx2.post(os.environ['STANDIN'] + '/v1/chat/completions',\n"
        "            headers={'x-standin-usage': 'input=31,output=4'},\n"
        "            json={'model': 'gpt-4o-mini', 'messages': [{'role': 'user', 'content': 'hi'}]})\n"
    )
    env = {**os.environ, "STANDIN": standin.base_url, "SPENDWATCH_DB": str(db)}
    result = subprocess.run(
        [sys.executable, "-m", "spendwatch.cli", "run", "--", sys.executable, str(app)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr  # the app exits once the daemon acknowledged its spans
    rows = json.loads(cli(collector, "query", "--format", "json", "SELECT service_name, input_tokens FROM llm_calls"))
    assert rows == [{"service_name": Path(sys.executable).name, "input_tokens": 31}]  # named after the program
    assert collector.stop() == 0


def test_run_with_the_collector_down_does_not_hold_the_app(tmp_path, standin):
    app = tmp_path / "app.py"
    app.write_text(
        "import os, httpx2\n"
        "httpx2.post(os.environ['STANDIN'] + '/v1/chat/completions', json={'model': 'gpt-4o-mini', 'messages': []})\n"
        "print('done')\n"
    )
    with socket_nobody_listens_on() as port:
        started = time.monotonic()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "spendwatch.cli",
                "run",
                "--endpoint",
                f"http://127.0.0.1:{port}",
                "--",
                sys.executable,
                str(app),
            ],
            env={**os.environ, "STANDIN": standin.base_url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr
    assert elapsed < 8, elapsed  # start-up plus at most the bounded export timeout, not the default 10 s+


def test_run_needs_a_command():
    result = run_cli("run")
    assert result.returncode == 2 and "nothing to run" in result.stderr


def test_demo_prints_the_report_and_three_queries():
    result = run_cli("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "spendwatch report" in out and out.count("$ spendwatch query") == 3
    for expected in (
        "claude-sonnet-4-6",
        "gemini-2.5-flash",
        "gpt-4o-mini",
        "text-embedding-3-small",
        "total",
        "checkout",
        "search",
        "support-bot",
        "16 calls from 3 services",
    ):
        assert expected in out
    assert "Traceback" not in result.stderr


def test_explain_refuses_what_is_not_a_stored_trace(tmp_path):
    from tests.collector import Collector

    collector = Collector(tmp_path / "spendwatch.duckdb", tmp_path / "log").start()
    assert collector.stop() == 0
    bad = run_cli("explain", "--db", str(collector.db), "not-a-trace")
    assert bad.returncode == 2 and "not a trace id" in bad.stderr and "Traceback" not in bad.stderr
    unknown = run_cli("explain", "--db", str(collector.db), "0" * 32)
    assert unknown.returncode == 2 and "no model-call spans stored" in unknown.stderr
