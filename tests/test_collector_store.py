"""The schema, the config file, and repricing: what `spendwatch prices missing` and `reprice` do."""

from __future__ import annotations

import json
import secrets
import stat

import duckdb
import httpx
import pytest

from spendwatch.collector.migrations import migrate
from spendwatch.config import ConfigError, resolve
from tests.collector import Collector, run_cli

LLM_CALLS_SCHEMA = [
    ("trace_id", "VARCHAR"),
    ("span_id", "VARCHAR"),
    ("parent_span_id", "VARCHAR"),
    ("start_time", "TIMESTAMP WITH TIME ZONE"),
    ("end_time", "TIMESTAMP WITH TIME ZONE"),
    ("duration_ms", "DOUBLE"),
    ("service_name", "VARCHAR"),
    ("provider", "VARCHAR"),
    ("operation", "VARCHAR"),
    ("request_model", "VARCHAR"),
    ("response_model", "VARCHAR"),
    ("response_id", "VARCHAR"),
    ("streaming", "BOOLEAN"),
    ("input_tokens", "BIGINT"),
    ("output_tokens", "BIGINT"),
    ("cache_read_tokens", "BIGINT"),
    ("cache_write_tokens", "BIGINT"),
    ("reasoning_tokens", "BIGINT"),
    ("usage_estimated", "BOOLEAN"),
    ("cost_usd", "DOUBLE"),
    ("api_key_id", "VARCHAR"),
    ("api_key_hint", "VARCHAR"),
    ("status_code", "INTEGER"),
    ("error_type", "VARCHAR"),
    ("finish_reasons", "VARCHAR[]"),
    ("server_address", "VARCHAR"),
    ("attributes", "JSON"),
    ("usage_unknown", "BOOLEAN"),
    ("model", "VARCHAR"),
    ("unpriced", "BOOLEAN"),
    ("fees_usd", "DOUBLE"),
    ("received_at", "TIMESTAMP WITH TIME ZONE"),
    ("user", "VARCHAR"),
    ("tenant", "VARCHAR"),
    ("feature", "VARCHAR"),
    ("agent", "VARCHAR"),
    ("conversation", "VARCHAR"),
    ("tags", "MAP(VARCHAR, VARCHAR)"),
    ("list_cost_usd", "DOUBLE"),
    ("price_data_version", "VARCHAR"),
    ("price_data_source", "VARCHAR"),
]


def test_a_blank_database_migrates_to_the_whole_schema():
    con = duckdb.connect()
    assert migrate(con) == [
        "m001_initial",
        "m002_alerts",
        "m003_superseded_at_ingest",
        "m004_no_persistent_indexes",
        "m005_call_identity",
        "m006_named_meanings",
        "m007_usage_fees",
        "m008_metrics_received_at",
        "m009_attribution",
        "m010_billed_usage",
        "m011_list_cost_and_price_data",
        "m012_fleet_sink",
        "m013_hourly_rollup",
        "m014_daily_latency",
    ]
    assert migrate(con) == []
    assert [row[:2] for row in con.execute("DESCRIBE llm_calls").fetchall()] == LLM_CALLS_SCHEMA
    assert [name for (name,) in con.execute("SELECT name FROM _migrations ORDER BY name").fetchall()] == [
        "m001_initial",
        "m002_alerts",
        "m003_superseded_at_ingest",
        "m004_no_persistent_indexes",
        "m005_call_identity",
        "m006_named_meanings",
        "m007_usage_fees",
        "m008_metrics_received_at",
        "m009_attribution",
        "m010_billed_usage",
        "m011_list_cost_and_price_data",
        "m012_fleet_sink",
        "m013_hourly_rollup",
        "m014_daily_latency",
    ]
    # every span received, and why it was superseded (the audit `spendwatch explain` reads)
    span_columns = [row[:2] for row in con.execute("DESCRIBE llm_call_spans").fetchall()]
    assert span_columns[-14:] == [
        ("superseded", "BOOLEAN"),
        ("superseded_by", "VARCHAR"),
        ("supersede_rule", "VARCHAR"),
        ("provider_raw", "VARCHAR"),
        ("fees_usd", "DOUBLE"),
        ("user", "VARCHAR"),
        ("tenant", "VARCHAR"),
        ("feature", "VARCHAR"),
        ("agent", "VARCHAR"),
        ("conversation", "VARCHAR"),
        ("tags", "MAP(VARCHAR, VARCHAR)"),
        ("list_cost_usd", "DOUBLE"),
        ("price_data_version", "VARCHAR"),
        ("price_data_source", "VARCHAR"),
    ]
    assert [row[:2] for row in con.execute("DESCRIBE span_links").fetchall()] == [
        ("trace_id", "VARCHAR"),
        ("span_id", "VARCHAR"),
        ("parent_span_id", "VARCHAR"),
        ("received_at", "TIMESTAMP WITH TIME ZONE"),
        ("attribution", "VARCHAR"),
    ]
    assert [row[:2] for row in con.execute("DESCRIBE dropped_attributes").fetchall()] == [
        ("name", "VARCHAR"),
        ("spans", "BIGINT"),
        ("first_seen", "TIMESTAMP WITH TIME ZONE"),
        ("last_seen", "TIMESTAMP WITH TIME ZONE"),
    ]
    # what the providers billed (m010), beside what was observed
    assert [row[:2] for row in con.execute("DESCRIBE billed_usage").fetchall()] == [
        ("provider", "VARCHAR"),
        ("source", "VARCHAR"),
        ("bucket_start", "TIMESTAMP WITH TIME ZONE"),
        ("bucket_end", "TIMESTAMP WITH TIME ZONE"),
        ("model", "VARCHAR"),
        ("provider_key_id", "VARCHAR"),
        ("project_id", "VARCHAR"),
        ("service_tier", "VARCHAR"),
        ("requests", "BIGINT"),
        ("input_tokens", "BIGINT"),
        ("output_tokens", "BIGINT"),
        ("cache_read_tokens", "BIGINT"),
        ("cache_write_tokens", "BIGINT"),
        ("units", "DOUBLE"),
        ("unit", "VARCHAR"),
        ("cost_usd", "DOUBLE"),
        ("imported_at", "TIMESTAMP WITH TIME ZONE"),
    ]
    assert [row[:2] for row in con.execute("DESCRIBE billed_costs").fetchall()] == [
        ("provider", "VARCHAR"),
        ("bucket_start", "TIMESTAMP WITH TIME ZONE"),
        ("bucket_end", "TIMESTAMP WITH TIME ZONE"),
        ("grouping", "VARCHAR"),
        ("line_item", "VARCHAR"),
        ("model", "VARCHAR"),
        ("project_id", "VARCHAR"),
        ("provider_key_id", "VARCHAR"),
        ("amount_usd", "DECIMAL(38,12)"),
        ("currency", "VARCHAR"),
        ("imported_at", "TIMESTAMP WITH TIME ZONE"),
    ]
    assert [row[0] for row in con.execute("DESCRIBE billing_keys").fetchall()] == [
        "provider", "provider_key_id", "name", "redacted_value", "hint", "project_id", "status", "imported_at"
    ]  # fmt: skip
    assert [row[0] for row in con.execute("DESCRIBE billing_imports").fetchall()] == [
        "provider", "stream", "complete_through", "last_run_at", "last_error"
    ]  # fmt: skip
    # what this daemon appended to the fleet's shared table (spendwatch/fleet/sink.py)
    assert [row[:2] for row in con.execute("DESCRIBE fleet_sink").fetchall()] == [
        ("table_uuid", "VARCHAR"),
        ("daemon", "VARCHAR"),
        ("seq", "BIGINT"),
        ("shipped_through", "TIMESTAMP WITH TIME ZONE"),
        ("pending_seq", "BIGINT"),
        ("pending", "JSON"),
    ]
    assert [row[:2] for row in con.execute("DESCRIBE fleet_sink_hours").fetchall()] == [
        ("table_uuid", "VARCHAR"),
        ("hour", "BIGINT"),
        ("calls", "BIGINT"),
        ("digest", "HUGEINT"),
        ("through", "TIMESTAMP WITH TIME ZONE"),
    ]
    # the calls per day, spender and latency bucket, from which the dashboard reads its p95 (m014)
    assert [row[:2] for row in con.execute("DESCRIBE llm_calls_daily_latency").fetchall()] == [
        ("day", "TIMESTAMP WITH TIME ZONE"),
        ("what", "VARCHAR"),
        ("grp", "VARCHAR"),
        ("bucket", "INTEGER"),
        ("calls", "BIGINT"),
    ]
    # no index on the calls: it would cost more bytes than the data (m004)
    assert con.execute("SELECT count(*) FROM duckdb_indexes() WHERE table_name = 'llm_call_spans'").fetchone() == (0,)
    assert con.execute(
        "SELECT count(*) FROM duckdb_constraints()"
        " WHERE table_name = 'llm_call_spans' AND constraint_type = 'PRIMARY KEY'"
    ).fetchone() == (0,)


def test_m004_keeps_every_stored_call(tmp_path):
    """A database written before m004 comes out of it with the same rows, marks and defaults."""
    from spendwatch.collector.migrations import MIGRATIONS

    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    con.execute("CREATE TABLE _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)")
    for function in MIGRATIONS[:3]:
        function(con)
        con.execute("INSERT INTO _migrations VALUES (?, now())", [function.__name__])
    con.execute(
        """
        INSERT INTO llm_call_spans (trace_id, span_id, start_time, end_time, provider, input_tokens, cost_usd,
                                    from_spendwatch, superseded, finish_reasons, attributes)
        SELECT md5(i::VARCHAR), substr(md5(i::VARCHAR), 1, 16), TIMESTAMPTZ '2026-11-01' + INTERVAL (i) MINUTE,
               TIMESTAMPTZ '2026-11-01' + INTERVAL (i) MINUTE + INTERVAL 2 SECOND, 'openai', i, i / 1000,
               i % 2 = 0, i % 5 = 0, ['stop'], '{"server.port": 443}'
        FROM range(1000) AS t(i)
        """
    )
    before = con.execute("SELECT * FROM llm_call_spans ORDER BY trace_id").fetchall()
    calls_before = con.execute("SELECT count(*), sum(cost_usd) FROM llm_calls").fetchone()
    m004 = MIGRATIONS[3]
    assert m004.__name__ == "m004_no_persistent_indexes"
    m004(con)
    assert con.execute("SELECT * FROM llm_call_spans ORDER BY trace_id").fetchall() == before
    assert con.execute("SELECT count(*), sum(cost_usd) FROM llm_calls").fetchone() == calls_before
    assert calls_before[0] == 800  # the superseded fifth stays out of the view


def test_database_and_its_directory_are_private(tmp_path):
    collector = Collector(tmp_path / "new" / "dir" / "spendwatch.duckdb", tmp_path / "log").start()
    assert collector.stop() == 0
    assert stat.S_IMODE(collector.db.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(collector.db.stat().st_mode) == 0o600


def chat_export(model: str, input_tokens: int, output_tokens: int) -> dict:
    def attribute(key, value):
        kind = "intValue" if isinstance(value, int) else "stringValue"
        return {"key": key, "value": {kind: str(value) if isinstance(value, int) else value}}

    attributes = {
        "gen_ai.provider.name": "acme",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }
    span = {
        "traceId": secrets.token_hex(16),
        "spanId": secrets.token_hex(8),
        "name": f"chat {model}",
        "startTimeUnixNano": "1764000000000000000",
        "endTimeUnixNano": "1764000001000000000",
        "attributes": [attribute(key, value) for key, value in attributes.items()],
    }
    return {"resourceSpans": [{"scopeSpans": [{"scope": {"name": "acme-sdk"}, "spans": [span]}]}]}


def test_prices_missing_then_an_override_and_reprice(tmp_path, monkeypatch):
    db = tmp_path / "spendwatch.duckdb"
    config = tmp_path / "spendwatch.toml"
    collector = Collector(db, tmp_path / "log", config=config).start()
    with httpx.Client(base_url=collector.http_endpoint) as client:
        for _ in range(3):
            assert client.post("/v1/traces", json=chat_export("acme-llm-1", 1_000_000, 500_000)).status_code == 200
    # Listing goes through the running daemon; repricing writes, so it asks for the daemon to stop.
    live = run_cli("prices", "missing", "--db", str(db), "--format", "csv")
    assert live.returncode == 0, live.stderr
    assert live.stdout.splitlines()[1].startswith("acme,acme-llm-1,3,3000000,1500000,")
    busy = run_cli("reprice", "--db", str(db))
    assert busy.returncode == 2 and "in use by `spendwatch up`" in busy.stderr and "Traceback" not in busy.stderr
    assert collector.stop() == 0
    assert collector.query("SELECT cost_usd FROM llm_calls") == [(None,)] * 3  # unknown model: NULL, never 0

    missing = run_cli("prices", "missing", "--db", str(db), "--format", "json")
    assert missing.returncode == 0, missing.stderr
    (row,) = json.loads(missing.stdout)
    assert (row["provider"], row["model"], row["calls"], row["input_tokens"], row["output_tokens"]) == (
        "acme",
        "acme-llm-1",
        3,
        3_000_000,
        1_500_000,
    )

    config.write_text('[prices."acme-llm-1"]\ninput = 2.0\noutput = 8.0\n')
    repriced = run_cli("reprice", "--db", str(db), "--config", str(config), "--since", "all")
    assert repriced.returncode == 0, repriced.stderr
    assert "repriced 3 calls: 3 changed cost" in repriced.stdout
    assert "repricing [" in repriced.stderr  # the progress bar
    assert collector.query("SELECT cost_usd FROM llm_calls") == [(6.0,)] * 3  # 1M in at $2 + 0.5M out at $8
    assert json.loads(run_cli("prices", "missing", "--db", str(db), "--format", "json").stdout) == []

    # New calls are priced by the override at ingest.
    collector = Collector(db, tmp_path / "log", config=config).start()
    with httpx.Client(base_url=collector.http_endpoint) as client:
        client.post("/v1/traces", json=chat_export("acme-llm-1", 500_000, 0))
    assert collector.stop() == 0
    assert sorted(collector.query("SELECT cost_usd FROM llm_calls")) == [(1.0,), (6.0,), (6.0,), (6.0,)]


@pytest.mark.parametrize(
    "text,message",
    [
        ("http_port = 'many'\n", "http_port: expected a whole number"),
        ("budgets = 1\n", "budgets: unknown key; expected one of"),
        ('[prices."m"]\ninput = 1.0\n', "prices.m.output: missing; expected USD per million tokens"),
        ('[prices."m"]\ninput = -1\noutput = 1\n', "prices.m.input: expected USD per million tokens"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_bad_config_names_file_key_and_expectation(tmp_path, text, message):
    config = tmp_path / "spendwatch.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message) as raised:
        resolve({"config": str(config), "db": str(tmp_path / "db.duckdb")})
    assert str(config) in str(raised.value)
    result = run_cli("up", "--config", str(config), "--db", str(tmp_path / "db.duckdb"))
    assert result.returncode == 2
    assert message.split(":")[0] in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "db.duckdb").exists()  # nothing started


def test_settings_resolve_flag_over_env_over_file(tmp_path, monkeypatch):
    config = tmp_path / "spendwatch.toml"
    config.write_text("http_port = 5000\ngrpc_port = 5001\n")
    monkeypatch.setenv("SPENDWATCH_GRPC_PORT", "6001")
    resolved = resolve({"config": str(config), "http_port": None, "grpc_port": None, "host": "0.0.0.0"})
    assert (resolved.http_port, resolved.grpc_port, resolved.host) == (5000, 6001, "0.0.0.0")
    assert resolved.db == tmp_path / "data" / "spendwatch" / "spendwatch.duckdb"  # XDG_DATA_HOME, from conftest


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    db = tmp_path / "notes.duckdb"
    db.write_text("not a database")
    result = run_cli("up", "--db", str(db), "--http-port", "0", "--grpc-port", "0", "--ui-port", "0")
    assert result.returncode == 2
    assert "cannot be opened as a spendwatch database" in result.stderr and "Traceback" not in result.stderr
    assert db.read_text() == "not a database"


def test_m005_decides_stored_spans_again_by_evidence(tmp_path):
    """Under m003's rule a call made beside another in one trace was hidden; m005 gives it back."""
    from spendwatch.collector.migrations import MIGRATIONS

    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    con.execute("CREATE TABLE _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)")
    for function in MIGRATIONS[:4]:
        function(con)
        con.execute("INSERT INTO _migrations VALUES (?, now())", [function.__name__])
    trace = "a" * 32
    spans = [
        # (span, parent, scope, from spendwatch, response id, start s, end s, superseded under m003)
        ("00000000000000a1", None, "sdk", False, "chatcmpl-1", 0, 10, True),  # wraps ours: rightly hidden
        ("00000000000000b1", "00000000000000a1", "spendwatch.instrumentation", True, "chatcmpl-1", 1, 9, False),
        ("00000000000000a2", None, "sdk", False, "chatcmpl-2", 0, 10, True),  # beside it (aiohttp): wrongly hidden
    ]
    for span_id, parent, scope, ours, response_id, start, end, superseded in spans:
        con.execute(
            """INSERT INTO llm_call_spans (trace_id, span_id, parent_span_id, start_time, end_time, provider,
                   input_tokens, output_tokens, instrumentation_scope, from_spendwatch, response_id, superseded)
               VALUES (?, ?, ?, to_timestamp(1764000000 + ?), to_timestamp(1764000000 + ?), 'openai', 10, 2,
                       ?, ?, ?, ?)""",
            [trace, span_id, parent, start, end, scope, ours, response_id, superseded],
        )
    assert con.execute("SELECT count(*) FROM llm_calls").fetchone() == (1,)
    assert migrate(con)[0] == "m005_call_identity"
    assert con.execute("SELECT span_id FROM llm_calls ORDER BY span_id").fetchall() == [
        ("00000000000000a2",),
        ("00000000000000b1",),
    ]
    assert con.execute(
        "SELECT superseded_by, supersede_rule FROM llm_call_spans WHERE span_id = '00000000000000a1'"
    ).fetchone() == ("00000000000000b1", "response_id")
