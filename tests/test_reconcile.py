"""Reconciliation end to end: real SDK calls through spendwatch's instrumentation into a real `spendwatch
up`, other calls to the same stand-in provider that no instrumentation saw, the daemon importing the
stand-in's bill — then `spendwatch reconcile` holds the two against each other, to the token and the cent."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import anthropic
import httpx
import openai
import pytest
from genai_prices import Usage, calc_price
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import spendwatch
from spendwatch.instrumentation.keys import api_key_id
from spendwatch.standin import StandinServer
from spendwatch.standin.admin import key_id
from tests.collector import Collector, run_cli
from tests.conftest import make_key
from tests.receivers import JsonReceiver

MESSAGES = [{"role": "user", "content": "hi"}]


def price(provider: str, model: str, **tokens: int) -> float:
    return float(calc_price(Usage(**tokens), model, provider_id=provider).total_price)


def usage_header(**tokens: int) -> dict[str, str]:
    return {"x-standin-usage": ",".join(f"{name}={value}" for name, value in tokens.items())}


def chat(client: openai.OpenAI, **tokens: int) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers=usage_header(**tokens))


def message(client: anthropic.Anthropic, **tokens: int) -> None:
    client.messages.create(
        model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES, extra_headers=usage_header(**tokens)
    )


@pytest.fixture
def world(tmp_path):
    """A daemon importing the bill of a stand-in provider that served observed and unobserved calls."""
    admin_keys = {"openai": make_key("sk-admin-CANARY"), "anthropic": make_key("sk-ant-admin01-CANARY")}
    with StandinServer(admin_keys=admin_keys) as provider, JsonReceiver() as receiver:
        config = tmp_path / "spendwatch.toml"
        config.write_text(
            f'[daemon]\nsettle = "0s"\n[notifiers]\nops = "json://127.0.0.1:{receiver.port}/alerts"\n'
            '[[rules]]\nname = "bill"\nkind = "reconcile"\nevery = "1s"\nmin_capture = 0.9\nnotify = ["ops"]\n'
            f'[billing.openai]\nbase_url = "{provider.base_url}/v1"\n'
            f'[billing.anthropic]\nbase_url = "{provider.base_url}"\n'
        )
        env = {"OPENAI_ADMIN_KEY": admin_keys["openai"], "ANTHROPIC_ADMIN_KEY": admin_keys["anthropic"]}
        collector = Collector(
            tmp_path / "spendwatch.duckdb", tmp_path / "log", config=config, env=env, extra=("--log-level", "debug")
        ).start()
        collector.wait_until("billing_imports", 1)  # the import at start-up: nothing billed yet
        keys = {"team": make_key(), "leaked": make_key(), "claude": make_key("sk-ant-")}
        clients = {
            "team": openai.OpenAI(base_url=f"{provider.base_url}/v1", api_key=keys["team"], max_retries=0),
            "leaked": openai.OpenAI(base_url=f"{provider.base_url}/v1", api_key=keys["leaked"], max_retries=0),
            "claude": anthropic.Anthropic(base_url=provider.base_url, api_key=keys["claude"], max_retries=0),
        }
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{collector.http_endpoint}/v1/traces"))
        )
        spendwatch.instrument(tracer_provider=tracer_provider)
        chat(clients["team"], input=1000, output=100)
        chat(clients["team"], input=2000, output=300, cache_read=500)
        clients["team"].embeddings.create(
            model="text-embedding-3-small", input="x", extra_headers=usage_header(input=64)
        )
        message(clients["claude"], input=800, output=40, cache_read=200, cache_write=100)
        spendwatch.uninstrument()
        tracer_provider.shutdown()
        # What no instrumentation saw: a notebook on the team's key, a leaked key, a batch job on Claude's.
        chat(clients["team"], input=5000, output=500)
        chat(clients["leaked"], input=3000, output=100)
        message(clients["claude"], input=400, output=20)
        collector.wait_until("spans_stored", 4)
        provider.receiver = receiver
        yield provider, collector, keys, admin_keys


def test_capture_rate_and_gap_exactly_and_the_leaked_key_called_out(world):
    _, collector, keys, admin_keys = world
    imported = run_cli("billing", "import", "--db", str(collector.db))  # the daemon imports: it holds the file
    assert imported.returncode == 0, imported.stderr
    assert collector.status()["billing_imports"] == 2
    answer = run_cli("reconcile", "--db", str(collector.db), "--since", "2d", "--format", "json")
    assert answer.returncode == 0, answer.stderr
    result = json.loads(answer.stdout)

    observed_team = (
        price("openai", "gpt-4o-mini", input_tokens=1000, output_tokens=100)
        + price("openai", "gpt-4o-mini", input_tokens=2000, output_tokens=300, cache_read_tokens=500)
        + price("openai", "text-embedding-3-small", input_tokens=64)
    )
    notebook = price("openai", "gpt-4o-mini", input_tokens=5000, output_tokens=500)
    leaked = price("openai", "gpt-4o-mini", input_tokens=3000, output_tokens=100)
    observed_claude = price("anthropic", "claude-haiku-4-5", input_tokens=800, output_tokens=40, cache_read_tokens=200,
                            cache_write_tokens=100)  # fmt: skip
    batch = price("anthropic", "claude-haiku-4-5", input_tokens=400, output_tokens=20)

    totals = {total["provider"]: total for total in result["totals"]}
    openai_total, claude_total = totals["openai"], totals["anthropic"]
    assert (openai_total["billed_tokens"], openai_total["observed_tokens"], openai_total["observed_calls"]) == (
        1100 + 2300 + 64 + 5500 + 3100,
        1100 + 2300 + 64,
        3,
    )
    billed_openai = observed_team + notebook + leaked
    assert openai_total["observed_cost_usd"] == pytest.approx(observed_team, rel=1e-12)
    assert openai_total["billed_cost_usd"] == pytest.approx(billed_openai, rel=1e-12)
    assert openai_total["capture_rate"] == pytest.approx(observed_team / billed_openai, rel=1e-12)
    assert openai_total["gap_usd"] == pytest.approx(notebook + leaked, rel=1e-12)
    assert openai_total["provider_cost_usd"] == pytest.approx(billed_openai, rel=1e-9)  # the provider's own dollars
    assert (claude_total["billed_tokens"], claude_total["observed_tokens"]) == (840 + 420, 840)
    assert claude_total["capture_rate"] == pytest.approx(observed_claude / (observed_claude + batch), rel=1e-12)
    assert claude_total["gap_usd"] == pytest.approx(batch, rel=1e-12)

    # The leaked key: billed, never observed, first.
    (missing,) = result["missing_keys"]
    assert (missing["provider"], missing["provider_key_id"], missing["api_key_id"], missing["observed_calls"]) == (
        "openai",
        key_id("openai", keys["leaked"]),
        None,
        0,
    )
    assert missing["billed_cost_usd"] == pytest.approx(leaked, rel=1e-12) and missing["billed_tokens"] == 3100
    first = result["rows"][0]
    assert (first["provider_key_id"], first["observed_calls"], first["capture_rate"]) == (
        missing["provider_key_id"],
        0,
        0,
    )
    # The other keys are matched by their last four characters to the keys spendwatch observed.
    by_key = {key["provider_key_id"]: key for key in result["keys"]}
    team = by_key[key_id("openai", keys["team"])]
    assert (team["api_key_id"], team["matched_by"], team["observed_calls"]) == (api_key_id(keys["team"]), "hint", 3)
    assert team["billed_cost_usd"] == pytest.approx(observed_team + notebook, rel=1e-12)
    assert team["provider_cost_usd"] == pytest.approx(
        observed_team + notebook, rel=1e-9
    )  # OpenAI: per key from 2025-12
    claude = by_key[key_id("anthropic", keys["claude"])]
    assert (claude["api_key_id"], claude["matched_by"], claude["provider_cost_usd"]) == (
        api_key_id(keys["claude"]),
        "hint",
        None,  # Anthropic's cost report has no keys
    )
    # Per day, model and key: the team's chat calls, 3,400 of 8,900 tokens seen.
    (team_chat,) = [row for row in result["rows"] if row["api_key_id"] == api_key_id(keys["team"])
                    and row["model"] == "gpt-4o-mini"]  # fmt: skip
    assert (team_chat["billed_requests"], team_chat["observed_calls"]) == (3, 2)
    assert (team_chat["billed_input_tokens"], team_chat["observed_input_tokens"]) == (8000, 3000)
    assert team_chat["token_capture_rate"] == pytest.approx(3400 / 8900, rel=1e-12)

    table = run_cli("reconcile", "--db", str(collector.db), "--since", "2d")
    assert table.returncode == 0, table.stderr
    assert "Keys with billed usage and no instrumented call" in table.stdout
    assert table.stdout.index(key_id("openai", keys["leaked"])) < table.stdout.index("day ")
    csv = run_cli("reconcile", "--db", str(collector.db), "--since", "2d", "--format", "csv").stdout.splitlines()
    assert csv[0].endswith(",gap_usd,never_observed") and len(csv) == 1 + len(result["rows"])
    listed = run_cli("billing", "keys", "--db", str(collector.db), "--format", "json")
    statuses = {key["provider_key_id"]: key["status"] for key in json.loads(listed.stdout)}
    assert statuses[key_id("openai", keys["leaked"])] == "billed, never observed"
    assert statuses[key_id("openai", keys["team"])] == "matched by hint"

    # The dashboard's panel says the same: the leaked key first, the same capture per provider.
    info = collector.info
    cookie = {"cookie": f"spendwatch_ui_{info['ui_url'].rsplit(':', 1)[1].strip('/')}={info['ui_token']}"}
    page = httpx.get(info["ui_url"], headers=cookie).text
    panel = page[page.index('id="bill"') :]
    assert panel.index(f'data-key="{key_id("openai", keys["leaked"])}"') < panel.index("<table>")
    openai_line = re.search(r'<tr data-provider="openai">(.*?)</tr>', panel).group(1)
    values = [float(value) for value in re.findall(r'data-value="([^"]+)"', openai_line)]
    assert values == pytest.approx(
        [billed_openai, billed_openai, observed_team, observed_team / billed_openai, notebook + leaked], rel=1e-9
    )

    # Importing again changes nothing.
    assert run_cli("billing", "import", "--db", str(collector.db), "--since", "3d").returncode == 0
    again = json.loads(run_cli("reconcile", "--db", str(collector.db), "--since", "2d", "--format", "json").stdout)
    assert (again["rows"], again["keys"], again["totals"]) == (result["rows"], result["keys"], result["totals"])

    assert collector.stop() == 0
    counts = collector.query("SELECT (SELECT count(*) FROM billed_usage), (SELECT count(*) FROM billed_costs)")
    assert counts[0][0] > 0 and counts[0][1] > 0
    stored = collector.db.read_bytes()
    wal = collector.db.with_name(collector.db.name + ".wal")
    stored += wal.read_bytes() if wal.exists() else b""
    log = collector.log.read_text()
    assert "billing import: openai" in log  # the debug log, where a leak would show
    for canary in admin_keys.values():
        assert canary not in log and canary.encode() not in stored


def test_an_explicit_map_in_the_config_names_a_key_its_hint_cannot(world, tmp_path):
    _, collector, keys, _ = world
    assert run_cli("billing", "import", "--db", str(collector.db)).returncode == 0
    config = collector.config
    leaked_id = key_id("openai", keys["leaked"])
    # Say the "leaked" key is in fact the team's: the config's map wins over the hint.
    config.write_text(config.read_text() + f'[billing.openai.keys]\n"{leaked_id}" = "{api_key_id(keys["team"])}"\n')
    answer = run_cli("reconcile", "--db", str(collector.db), "--config", str(config), "--format", "json")
    result = json.loads(answer.stdout)
    by_key = {key["provider_key_id"]: key for key in result["keys"]}
    assert (by_key[leaked_id]["api_key_id"], by_key[leaked_id]["matched_by"]) == (api_key_id(keys["team"]), "config")
    team = by_key[key_id("openai", keys["team"])]
    assert (team["api_key_id"], team["matched_by"]) == (None, None)  # its hint points at a key the config took
    assert result["missing_keys"] == [team]  # now it is the one billed with no instrumented call
    assert collector.stop() == 0


def test_the_leaked_key_alert_fires_once_and_a_low_capture_once_its_day_is_over(world):
    provider, collector, keys, _ = world
    receiver = provider.receiver
    assert receiver.received == []  # nothing billed yet at start-up: nothing to say
    assert run_cli("billing", "import", "--db", str(collector.db)).returncode == 0
    (alert,) = receiver.wait_for(1, timeout=15)
    leaked = key_id("openai", keys["leaked"])
    assert alert["title"] == "bill: openai key billed with no instrumented call"
    assert f"the openai key {leaked} (" in alert["message"] and keys["leaked"][-4:] in alert["message"]
    assert "no instrumented app made a call with it" in alert["message"]
    assert keys["leaked"] not in alert["message"]
    # More ticks and a re-import of the same bill: the same key on the same day alerts no more.
    collector.more("rule_evaluations", 3)
    assert run_cli("billing", "import", "--db", str(collector.db), "--since", "2d").returncode == 0
    collector.more("rule_evaluations", 3)
    assert len(receiver.received) == 1
    assert collector.stop() == 0

    # Today's capture is judged once today is over: 41% of OpenAI's dollars were seen, Claude's likewise low.
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=30, second=0, microsecond=0)
    ran = run_cli("rules", "run", "--db", str(collector.db), "--config", str(collector.config), "--now",
                  tomorrow.isoformat())  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    fired = sorted(line.split("\t")[1] for line in ran.stdout.splitlines())
    assert fired == ["anthropic", "openai"]
    alerts = receiver.wait_for(3, timeout=15)
    titles = sorted(alert["title"] for alert in alerts[1:])
    assert titles[0].startswith("bill: anthropic captured") and titles[1].startswith("bill: openai captured")
    (openai_alert,) = [alert for alert in alerts[1:] if alert["title"].startswith("bill: openai")]
    assert "(UTC), openai was billed $" in openai_alert["message"] and "below 90%" in openai_alert["message"]
    again = run_cli("rules", "run", "--db", str(collector.db), "--config", str(collector.config), "--now",
                    tomorrow.isoformat())  # fmt: skip
    assert again.stdout.strip() == "nothing fired"


def test_a_hint_two_keys_share_matches_neither_and_no_call_counts_twice(tmp_path):
    """Two observed OpenAI keys ending in the same four characters: the billed key with that hint is
    ambiguous, stays unmatched, and neither key's calls are counted against it."""
    import duckdb

    from spendwatch.billing.reconcile import Period, reconcile
    from spendwatch.collector.migrations import migrate

    con = duckdb.connect()
    migrate(con)
    now = datetime.now(UTC)
    at = now - timedelta(seconds=1)
    for index, key in enumerate(("aaaaaaaaaaaaaaa1", "bbbbbbbbbbbbbbb2", "ccccccccccccccc3")):
        hint = "Zz99" if index < 2 else "Yy88"
        con.execute(
            """INSERT INTO llm_call_spans (trace_id, span_id, start_time, end_time, provider, request_model,
                   input_tokens, output_tokens, cost_usd, api_key_id, api_key_hint, from_spendwatch)
               VALUES (?, 's', ?, ?, 'openai', 'gpt-4o', 100, 10, 0.5, ?, ?, true)""",
            [f"t{index}", at, at, key, hint],
        )
    con.execute("INSERT INTO billing_imports VALUES ('openai', 'usage/completions', NULL, now(), NULL)")
    for provider_key, hint, tokens in (("key_shared", "Zz99", 300), ("key_unique", "Yy88", 110)):
        con.execute(
            "INSERT INTO billing_keys VALUES ('openai', ?, NULL, ?, ?, 'proj', 'active', now())",
            [provider_key, f"sk-proj-...{hint}", hint],
        )
        con.execute(
            """INSERT INTO billed_usage (provider, source, bucket_start, bucket_end, model, provider_key_id, requests,
                   input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, imported_at)
               VALUES ('openai', 'completions', ?, ?, 'gpt-4o', ?, 3, ?, 0, 0, 0, 1.5, now())""",
            [at.replace(hour=0, minute=0, second=0, microsecond=0), at, provider_key, tokens],
        )
    result = reconcile(lambda sql, params: con.execute(sql, list(params)).fetchall(), Period.ending(now, None), {})
    keys = {key["provider_key_id"]: key for key in result.keys}
    assert (keys["key_shared"]["api_key_id"], keys["key_shared"]["matched_by"]) == (None, "ambiguous hint")
    assert (keys["key_unique"]["api_key_id"], keys["key_unique"]["matched_by"]) == ("ccccccccccccccc3", "hint")
    (total,) = result.totals
    assert (total["observed_calls"], total["observed_tokens"], total["billed_tokens"]) == (3, 330, 410)
    assert total["observed_cost_usd"] == pytest.approx(1.5) and total["billed_cost_usd"] == pytest.approx(3.0)
    # The ambiguous key's row and the two observed keys' rows stay apart: each call once, in its own row.
    rows = sorted((row["provider_key_id"] or "", row["api_key_id"] or "", row["observed_calls"]) for row in result.rows)
    assert rows == [
        ("", "aaaaaaaaaaaaaaa1", 1),
        ("", "bbbbbbbbbbbbbbb2", 1),
        ("key_shared", "", 0),
        ("key_unique", "ccccccccccccccc3", 1),
    ]
    assert [key["provider_key_id"] for key in result.missing_keys] == ["key_shared"]
