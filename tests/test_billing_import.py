"""`spendwatch billing import` against the stand-in's admin APIs: the bill stored as billed, incremental,
idempotent, rate limits waited out, and the admin key in no output, log, error or database byte."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anthropic
import duckdb
import openai
import pytest
from genai_prices import Usage, calc_price

from spendwatch.collector.store import Store
from spendwatch.standin import StandinServer
from spendwatch.standin.admin import AdminUsage, key_id
from tests.collector import run_cli
from tests.conftest import make_key

SUMS = """SELECT (SELECT count(*) FROM billed_usage), (SELECT sum(input_tokens) FROM billed_usage),
                 (SELECT sum(output_tokens) FROM billed_usage), (SELECT sum(cost_usd) FROM billed_usage),
                 (SELECT count(*) FROM billed_costs), (SELECT sum(amount_usd) FROM billed_costs),
                 (SELECT count(*) FROM billing_keys)"""


def canary_keys() -> dict[str, str]:
    return {"openai": make_key("sk-admin-CANARY"), "anthropic": make_key("sk-ant-admin01-CANARY")}


@pytest.fixture
def provider():
    with StandinServer(admin_keys=canary_keys()) as server:
        yield server


@pytest.fixture
def db(tmp_path) -> Path:
    path = tmp_path / "spendwatch.duckdb"
    Store(path).close()
    return path


def config_for(tmp_path: Path, server: StandinServer, extra: str = "") -> Path:
    config = tmp_path / "spendwatch.toml"
    config.write_text(
        f'[billing.openai]\nbase_url = "{server.base_url}/v1"\n{extra}\n'
        f'[billing.anthropic]\nbase_url = "{server.base_url}"\n'
    )
    return config


def admin_env(server: StandinServer) -> dict[str, str]:
    return {"OPENAI_ADMIN_KEY": server.admin.keys["openai"], "ANTHROPIC_ADMIN_KEY": server.admin.keys["anthropic"]}


def bill_some_calls(server: StandinServer) -> dict[str, str]:
    keys = {"openai": make_key(), "anthropic": make_key("sk-ant-")}
    chat = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=keys["openai"], max_retries=0)
    chat.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-standin-usage": "input=1000,output=200,cache_read=400"},
    )
    chat.embeddings.create(model="text-embedding-3-small", input="x", extra_headers={"x-standin-usage": "input=64"})
    claude = anthropic.Anthropic(base_url=server.base_url, api_key=keys["anthropic"], max_retries=0)
    claude.messages.create(
        model="claude-haiku-4-5",
        max_tokens=10,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-standin-usage": "input=500,output=50,cache_read=100,cache_write=80"},
    )
    now = datetime.now(UTC).timestamp()
    server.usage.append(AdminUsage("openai", "images", now, "gpt-image-1", keys["openai"], units=2))
    return keys


def price(provider: str, model: str, **tokens: int) -> float:
    return float(calc_price(Usage(**tokens), model, provider_id=provider).total_price)


def import_bill(db: Path, config: Path, server: StandinServer, *args: str):
    return run_cli("billing", "import", "--db", str(db), "--config", str(config), *args, env=admin_env(server))


def test_an_import_stores_the_bill_then_fetches_only_open_buckets_and_changes_nothing(tmp_path, provider, db):
    keys = bill_some_calls(provider)
    config = config_for(tmp_path, provider)
    first = import_bill(db, config, provider)
    assert first.returncode == 0, first.stderr
    assert re.search(r"openai\s+usage/completions\s+\S+\s+31\s+1\s", first.stdout), first.stdout
    con = duckdb.connect(str(db), read_only=True)
    usage = con.execute(
        """SELECT provider, source, model, provider_key_id, project_id, requests, input_tokens, output_tokens,
                  cache_read_tokens, cache_write_tokens, units, unit, cost_usd
           FROM billed_usage ORDER BY provider, source"""
    ).fetchall()
    keys_stored = con.execute("SELECT provider, provider_key_id, hint, redacted_value FROM billing_keys ORDER BY 1")
    keys_stored = keys_stored.fetchall()
    costs = con.execute("SELECT provider, sum(amount_usd) FROM billed_costs WHERE grouping <> 'api_key_id' GROUP BY 1")
    costs = dict(costs.fetchall())
    before = con.execute(SUMS).fetchone()
    con.close()
    openai_id, anthropic_id = key_id("openai", keys["openai"]), key_id("anthropic", keys["anthropic"])
    chat_cost = price("openai", "gpt-4o-mini", input_tokens=1000, output_tokens=200, cache_read_tokens=400)
    claude_cost = price("anthropic", "claude-haiku-4-5", input_tokens=500, output_tokens=50, cache_read_tokens=100,
                        cache_write_tokens=80)  # fmt: skip
    embedding_cost = price("openai", "text-embedding-3-small", input_tokens=64)
    assert usage == [
        ("anthropic", "messages", "claude-haiku-4-5", anthropic_id, None, None, 500, 50, 100, 80, None, None,
         pytest.approx(claude_cost, rel=1e-12)),
        ("openai", "completions", "gpt-4o-mini", openai_id, "proj_standin", 1, 1000, 200, 400, 0, None, None,
         pytest.approx(chat_cost, rel=1e-12)),
        ("openai", "embeddings", "text-embedding-3-small", openai_id, "proj_standin", 1, 64, 0, 0, 0, None, None,
         pytest.approx(embedding_cost, rel=1e-12)),
        ("openai", "images", "gpt-image-1", openai_id, "proj_standin", 1, None, None, None, None, 2.0, "images", None),
    ]  # fmt: skip
    assert keys_stored == [
        ("anthropic", anthropic_id, keys["anthropic"][-4:], f"{keys['anthropic'][:16]}...{keys['anthropic'][-4:]}"),
        ("openai", openai_id, keys["openai"][-4:], f"{keys['openai'][:8]}...{keys['openai'][-4:]}"),
    ]
    # The providers' own dollars: the stand-in bills at list prices, images at $0.04 each.
    assert float(costs["openai"]) == pytest.approx(chat_cost + embedding_cost + 0.08, rel=1e-9)
    assert float(costs["anthropic"]) == pytest.approx(claude_cost, rel=1e-9)

    asked = len(provider.admin.requests)
    again = import_bill(db, config, provider)
    assert again.returncode == 0, again.stderr
    starts = {query["start_time"][0] for _, path, query, _ in provider.admin.requests[asked:] if "start_time" in query}
    open_from = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    assert starts == {str(int(open_from.timestamp()))}  # only the buckets not yet final, not the 30 days again
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute(SUMS).fetchone() == before
    con.close()
    assert import_bill(db, config, provider, "--since", "30d").returncode == 0  # asked again from further back
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute(SUMS).fetchone() == before
    con.close()


def test_a_429_from_the_admin_api_is_retried_with_backoff(tmp_path, provider, db):
    bill_some_calls(provider)
    provider.fail_admin(429, times=2, retry_after="1")
    result = import_bill(db, config_for(tmp_path, provider), provider)
    assert result.returncode == 0, result.stderr
    (first, *_), (second, *_), (third, *_) = provider.admin.requests[:3]
    assert [status for *_, status in provider.admin.requests[:3]] == [429, 429, 200]
    assert second - first >= 1.0  # the provider's Retry-After
    assert third - second >= 2.0  # the backoff doubled past it
    assert "429 (rate limited) on /organization/usage/completions; retrying in 1.0 s (attempt 2 of 6)" in result.stderr
    assert "retrying in 2.0 s (attempt 3 of 6)" in result.stderr
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM billed_usage WHERE source = 'completions'").fetchone() == (1,)
    con.close()


def test_the_admin_key_appears_in_no_output_error_or_database_byte(tmp_path, provider, db):
    bill_some_calls(provider)
    config = config_for(tmp_path, provider)
    provider.fail_admin(503, times=1)
    outputs = [import_bill(db, config, provider)]
    # A key the provider refuses: its 401 quotes the key back, and the error must not.
    wrong = {"OPENAI_ADMIN_KEY": make_key("sk-admin-CANARY"), "ANTHROPIC_ADMIN_KEY": provider.admin.keys["anthropic"]}
    refused = run_cli("billing", "import", "--db", str(db), "--config", str(config), env=wrong)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("spendwatch: openai admin API: 401 (the admin key was refused") and "***" in line
    outputs.append(refused)
    con = duckdb.connect(str(db), read_only=True)
    failures = con.execute("SELECT last_error FROM billing_imports WHERE provider = 'openai' AND stream = '*'")
    (error,) = failures.fetchone()
    dumped = repr([con.execute(f"SELECT * FROM {table}").fetchall() for table in
                   ("billed_usage", "billed_costs", "billing_keys", "billing_imports")])  # fmt: skip
    con.close()
    assert error.startswith("openai admin API: 401")
    wal = db.with_name(db.name + ".wal")
    stored = db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    for canary in (*provider.admin.keys.values(), wrong["OPENAI_ADMIN_KEY"]):
        for result in outputs:
            assert canary not in result.stdout + result.stderr
        assert canary not in dumped and canary.encode() not in stored


def test_a_config_file_holding_an_admin_key_must_be_private(tmp_path, provider, db):
    bill_some_calls(provider)
    config = config_for(tmp_path, provider, extra=f'admin_key = "{provider.admin.keys["openai"]}"')
    config.chmod(0o644)
    env = {"OPENAI_ADMIN_KEY": "", "ANTHROPIC_ADMIN_KEY": ""}
    refused = run_cli("billing", "import", "--db", str(db), "--config", str(config), env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"spendwatch: {config}: holds an admin key and can be read or changed by others (mode 0644); "
        f"run `chmod 600 {config}` or set the key in the environment instead"
    )
    assert provider.admin.keys["openai"] not in refused.stderr
    daemon = run_cli("up", "--db", str(tmp_path / "other.duckdb"), "--config", str(config), "--no-ui")
    assert daemon.returncode == 2 and str(config) in daemon.stderr and not (tmp_path / "other.duckdb").exists()
    config.chmod(0o600)
    accepted = run_cli("billing", "import", "--db", str(db), "--config", str(config), env=env)
    assert accepted.returncode == 0, accepted.stderr
    assert "openai" in accepted.stdout and "anthropic" not in accepted.stdout  # no key for it: not imported


@pytest.mark.parametrize(
    "text,message",
    [
        ("[billing]\nweekly = true\n", "billing.weekly: unknown key"),
        ("[billing]\nevery = 'daily'\n", 'billing.every: expected a duration such as "30s"'),
        ("[billing.openai]\nbase_url = 'api.openai.com'\n", "billing.openai.base_url: expected an http(s) URL"),
        ("[billing.openai.keys]\nkey_a = 'prod'\n", "billing.openai.keys: expected a table of provider key id"),
        (
            "[billing.openai.keys]\nkey_a = '3f992a85b654efea'\nkey_b = '3f992a85b654efea'\n",
            "billing.openai.keys: 3f992a85b654efea is mapped from both key_a and key_b",
        ),
    ],
)
def test_a_bad_billing_section_names_the_file_the_key_and_what_was_expected(tmp_path, text, message):
    config = tmp_path / "spendwatch.toml"
    config.write_text(text)
    result = run_cli("billing", "import", "--db", str(tmp_path / "x.duckdb"), "--config", str(config))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"spendwatch: {config}: {message}" or (
        result.stderr.startswith(f"spendwatch: {config}: {message}")
    ), result.stderr


def test_without_an_admin_key_the_import_says_where_one_goes(tmp_path, db):
    env = {name: "" for name in ("OPENAI_ADMIN_KEY", "ANTHROPIC_ADMIN_KEY", "ANTHROPIC_ADMIN_API_KEY")}
    result = run_cli("billing", "import", "--db", str(db), env={**os.environ, **env})
    assert result.returncode == 2
    assert result.stderr.startswith("spendwatch: no admin key to import a bill with: set OPENAI_ADMIN_KEY")
