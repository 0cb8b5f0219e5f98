"""What the user pays (the config's `[prices]`: own models, discounts, markups, committed rates) and
`spendwatch prices explain`: each component of a price, for a stored call or a model and a usage."""

from __future__ import annotations

import json
import re
import secrets
import time
from datetime import UTC, date, datetime

import httpx
import pytest

from spendwatch.collector.discounts import DiscountRule, TokenRates
from spendwatch.config import ConfigError, resolve
from spendwatch.reads import query
from tests.collector import Collector, run_cli

CONFIG = """
[prices]
url = "https://prices.example.com/genai-prices/data.json"
refresh = "6h"

[prices."legacy-llm"]                 # the form [prices] always took: still a model of our own
input = 1.0
output = 2.0

[prices.models."acme-llm-1"]
input = 2.0
output = 8.0
cache_read = 0.2

[[prices.discounts]]
name = "enterprise-openai-2026"
provider = "openai"
model = "gpt-5*"
from = 2026-01-01
until = 2026-12-31
discount = 0.15

[[prices.discounts]]
api_key_id = "3f992a85b654efea"
markup = 0.05

[[prices.discounts]]
name = "committed-sonnet"
provider = "anthropic"
model = "claude-sonnet-4-5"
rates = { input = 2.4, output = 12.0, cache_read = 0.24 }
"""


def load(tmp_path, text: str):
    path = tmp_path / "spendwatch.toml"
    path.write_text(text)
    return resolve({"config": str(path), "db": str(tmp_path / "db.duckdb")})


def test_prices_section_holds_models_discounts_and_where_data_comes_from(tmp_path, monkeypatch):
    monkeypatch.delenv("SPENDWATCH_PRICES_URL")
    config = load(tmp_path, CONFIG)
    assert config.prices_url == "https://prices.example.com/genai-prices/data.json"
    assert config.prices_refresh.total_seconds() == 6 * 3600
    assert config.prices == {
        "legacy-llm": TokenRates(1.0, 2.0),
        "acme-llm-1": TokenRates(2.0, 8.0, cache_read=0.2),
    }
    assert config.discounts == (
        DiscountRule(
            "enterprise-openai-2026",
            provider="openai",
            model="gpt-5*",
            starts=date(2026, 1, 1),
            ends=date(2026, 12, 31),
            discount=0.15,
        ),
        DiscountRule("prices.discounts[1]", api_key_id="3f992a85b654efea", markup=0.05),
        DiscountRule(
            "committed-sonnet",
            provider="anthropic",
            model="claude-sonnet-4-5",
            rates=TokenRates(2.4, 12.0, cache_read=0.24),
        ),
    )
    monkeypatch.setenv("SPENDWATCH_PRICES_URL", "off")
    assert load(tmp_path, CONFIG).prices_url is None


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "[[prices.discounts]]\nprovider = 'openai'\ndiscount = 15\n",
            "prices.discounts[0].discount: expected a fraction",
        ),
        ("[[prices.discounts]]\ndiscount = 0.1\nmarkup = 0.1\n", "prices.discounts[0]: expected exactly one of"),
        ("[[prices.discounts]]\nprovider = 'openai'\n", "prices.discounts[0]: expected exactly one of"),
        ("[[prices.discounts]]\npercent = 10\n", "prices.discounts[0].percent: unknown key; expected one of"),
        ("[[prices.discounts]]\nfrom = '2026-01-01'\ndiscount = 0.1\n", "prices.discounts[0].from: expected a date"),
        (
            "[[prices.discounts]]\nfrom = 2026-06-01\nuntil = 2026-01-01\ndiscount = 0.1\n",
            "prices.discounts[0].until: 2026-01-01 is before from",
        ),
        ("[[prices.discounts]]\nrates = { input = 1.0 }\n", "prices.discounts[0].rates.output: missing"),
        ("[[prices.discounts]]\nmodel = ''\nmarkup = 0.1\n", "prices.discounts[0].model: expected a non-empty string"),
        ("[[prices.discounts]]\nmarkup = -1\n", "prices.discounts[0].markup: expected a fraction"),
        ("[prices]\ndiscounts = { discount = 0.1 }\n", "prices.discounts: expected an array of tables"),
        ("[prices]\nurl = 'ftp://mirror/data.json'\n", "prices.url: expected an http(s) URL"),
        ("[prices]\nrefresh = 'hourly'\n", "prices.refresh:"),
        ("[prices]\nrefresh = '0s'\n", "prices.refresh: expected a duration such as"),
        (
            "[prices]\ncurrency = 'EUR'\n",
            "prices.currency: unknown key; expected one of url, refresh, models, discounts",
        ),
        ('[prices.models."m"]\ninput = 1.0\n', "prices.models.m.output: missing; expected USD per million tokens"),
    ],
)
def test_a_bad_prices_section_names_file_key_and_expectation(tmp_path, monkeypatch, text, message):
    monkeypatch.delenv("SPENDWATCH_PRICES_URL")
    with pytest.raises(ConfigError, match=re.escape(message)) as raised:
        load(tmp_path, text)
    assert str(tmp_path / "spendwatch.toml") in str(raised.value)


def test_which_rule_applies(tmp_path):
    pricer = load(tmp_path, CONFIG).pricer()
    at = datetime(2026, 12, 3, 12, tzinfo=UTC)

    def price(provider, model, *, key=None, when=at, **tokens):
        return pricer.price_call(
            provider, (model,), at=when, api_key_id=key, **{"input_tokens": 100_000, "output_tokens": 0, **tokens}
        )

    listed = price("openai", "gpt-5").list_cost_usd
    assert listed == pytest.approx(0.125)  # 100,000 tokens at $1.25 per million, list
    assert price("openai", "gpt-5").cost_usd == pytest.approx(0.125 * 0.85)  # the enterprise rule, 15% off
    assert price("openai", "gpt-5-mini").rule.name == "enterprise-openai-2026"  # `gpt-5*`
    assert price("openai", "gpt-4o").rule is None  # not its model
    later = price("openai", "gpt-5", when=datetime(2027, 1, 2, tzinfo=UTC))
    assert later.rule is None and later.cost_usd == later.list_cost_usd  # the contract's term is over
    # the first rule that matches applies: an enterprise model called with the marked-up key stays 15% off
    assert price("openai", "gpt-5", key="3f992a85b654efea").rule.name == "enterprise-openai-2026"
    marked_up = price("anthropic", "claude-haiku-4-5", key="3f992a85b654efea")
    assert marked_up.cost_usd == pytest.approx(marked_up.list_cost_usd * 1.05)
    committed = price("anthropic", "claude-sonnet-4-5", cache_read_tokens=50_000)
    assert committed.list_cost_usd == pytest.approx(0.05 * 3 + 0.05 * 0.30)  # list: fresh $3, cache hits $0.30
    assert committed.cost_usd == pytest.approx(0.05 * 2.4 + 0.05 * 0.24)  # committed: $2.40 and $0.24
    own = price("openai", "legacy-llm")
    assert (own.cost_usd, own.price_data_version, own.price_data_source) == (0.1, "config", "[prices.models]")


def test_a_committed_rate_leaves_per_use_fees_at_list_price(tmp_path):
    pricer = load(tmp_path, CONFIG).pricer()
    price = pricer.price_call(
        "anthropic",
        ("claude-sonnet-4-5",),
        at=datetime(2026, 12, 3, tzinfo=UTC),
        input_tokens=100_000,
        output_tokens=0,
        attributes={"spendwatch.usage.web_search_calls": 10},
    )
    assert price.fees_usd == pytest.approx(0.1)  # $10 per 1,000 searches, as listed
    assert price.cost_usd == pytest.approx(0.24 + 0.1)  # 100,000 tokens at the committed $2.40
    assert price.list_cost_usd == pytest.approx(0.3 + 0.1)  # ... at list, $3


def explain(*args: str, config=None):
    extra = ("--config", str(config)) if config else ()
    result = run_cli("prices", "explain", *extra, *args)
    return result


def test_explain_a_model_and_a_usage():
    result = explain(
        "--model",
        "claude-sonnet-4-5",
        "--provider",
        "anthropic",
        "--usage",
        "input=250000,output=2000,cache_read=100000,cache_write_5m=15000,cache_write_1h=5000",
        "--at",
        "2026-12-01T12:00:00Z",
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    parts = {part["component"]: (part["quantity"], part["usd"]) for part in found["components"]}
    # over 200K input tokens, every rate is the long-context one (Anthropic: $6, $0.60, $7.50, $12, $22.50)
    assert parts == {
        "fresh input": (130_000, pytest.approx(130_000 * 6 / 1e6)),
        "cache read": (100_000, pytest.approx(100_000 * 0.60 / 1e6)),
        "cache write (5m)": (15_000, pytest.approx(15_000 * 7.50 / 1e6)),
        "cache write (1h)": (5_000, pytest.approx(5_000 * 12 / 1e6)),
        "output": (2_000, pytest.approx(2_000 * 22.50 / 1e6)),
    }
    assert found["list_cost_usd"] == pytest.approx(sum(usd for _, usd in parts.values()))
    assert found["cost_usd"] == found["list_cost_usd"] and found["tier"] == "standard"
    assert found["price_data_version"].startswith("bundled-")
    assert all("prompt over 200,000 tokens" in part["rate"] for part in found["components"])


def test_explain_a_tier_a_discount_and_reasoning(tmp_path):
    config = tmp_path / "spendwatch.toml"
    config.write_text(CONFIG)
    usage = "input=10000,output=4000,reasoning=3000,cache_read=2000"
    at = ("--at", "2026-12-01T12:00:00Z")  # within the enterprise rule's term
    result = explain("--model", "gpt-5", "--usage", usage, "--tier", "priority", *at, config=config)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["component", "quantity", "rate", "usd"]
    table = {line.split("  ")[0]: line for line in lines[2:5]}
    assert "$2.5 per million" in table["fresh input"] and "0.02" in table["fresh input"]  # 8,000 at $2.50
    assert "$0.25 per million" in table["cache read"]
    assert "$20 per million" in table["output"]
    summary = {
        line.split()[0]: " ".join(line.split()[1:]) for line in lines[5:] if line and not line.startswith("note")
    }
    assert summary["tier"] == "service_tier=priority"
    assert summary["discount"].startswith("enterprise-openai-2026: 0.15 off list price")
    assert float(summary["list_cost_usd"]) == pytest.approx((8_000 * 2.5 + 2_000 * 0.25 + 4_000 * 20) / 1e6)
    assert float(summary["cost_usd"]) == pytest.approx(float(summary["list_cost_usd"]) * 0.85)
    assert "note: reasoning: 3,000 tokens, billed as output (part of the output above)" in lines


def test_explain_what_the_data_has_no_price_for():
    flex = json.loads(explain("--model", "gemini-2.5-flash", "--provider", "gcp.gemini", "--usage",
                              "input=10000,output=1000", "--tier", "flex", "--format", "json").stdout)  # fmt: skip
    assert flex["cost_usd"] == pytest.approx((10_000 * 0.30 + 1_000 * 2.50) / 1e6 * 0.5)
    assert any("share of the standard price, 0.5" in note for note in flex["notes"])
    unknown = json.loads(explain("--model", "acme-9000", "--usage", "input=10", "--format", "json").stdout)
    assert unknown["cost_usd"] is None and unknown["components"] == []
    assert "unpriced, not free" in unknown["notes"][0]


@pytest.mark.parametrize(
    "args,message",
    [
        ((), "give a CALL_ID (a span id), or --model with --usage"),
        (("--model", "gpt-5"), "--usage is missing"),
        (("--model", "gpt-5", "--usage", "input=ten"), "--usage: input: expected a number"),
        (("--model", "gpt-5", "--usage", "tokens=5"), "--usage: tokens: unknown; expected some of"),
        (("--model", "gpt-5", "--usage", "input=5", "--at", "yesterday"), "--at: expected an ISO 8601 time"),
        (("not-a-span",), "is not a span id"),
    ],
)
def test_explain_mistakes_are_one_line(tmp_path, args, message):
    result = run_cli("prices", "explain", "--db", str(tmp_path / "none.duckdb"), *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_explain_a_stored_call_through_the_running_daemon(tmp_path):
    db = tmp_path / "spendwatch.duckdb"
    collector = Collector(db, tmp_path / "log").start()
    span_id, trace_id = secrets.token_hex(8), secrets.token_hex(16)
    now = time.time_ns()
    attributes = {
        "gen_ai.provider.name": "anthropic",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "claude-haiku-4-5",
        "gen_ai.usage.input_tokens": 11_000,  # Anthropic's input + cache reads + writes
        "gen_ai.usage.output_tokens": 500,
        "gen_ai.usage.cache_read.input_tokens": 4_000,
        "gen_ai.usage.cache_creation.input_tokens": 6_000,
        "spendwatch.usage.cache_write_1h_tokens": 6_000,
        "spendwatch.response.service_tier": "batch",
    }
    span = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": "chat claude-haiku-4-5",
        "startTimeUnixNano": str(now - 10**9),
        "endTimeUnixNano": str(now),
        "attributes": [
            {"key": key, "value": {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}}
            for key, value in attributes.items()
        ],
    }
    export = {"resourceSpans": [{"scopeSpans": [{"scope": {"name": "acme-sdk"}, "spans": [span]}]}]}
    with httpx.Client(base_url=collector.http_endpoint) as client:
        assert client.post("/v1/traces", json=export).status_code == 200
    result = run_cli("prices", "explain", "--db", str(db), span_id.upper(), "--format", "json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    parts = {part["component"]: part["usd"] for part in found["components"]}
    # Anthropic's batch rates for Haiku 4.5, half of $1 / $0.10 / $2 (1h writes) / $5:
    assert parts == {
        "fresh input": pytest.approx(1_000 * 0.50 / 1e6),
        "cache read": pytest.approx(4_000 * 0.05 / 1e6),
        "cache write (1h)": pytest.approx(6_000 * 1.00 / 1e6),
        "output": pytest.approx(500 * 2.50 / 1e6),
    }
    assert found["tier"] == "processing=batch" and found["notes"] == []  # as stored: nothing changed since
    _, ((stored,),) = query(db, "SELECT cost_usd FROM llm_calls WHERE span_id = ?", [span_id])
    assert stored == pytest.approx(found["cost_usd"])
    by_both = run_cli("prices", "explain", "--db", str(db), f"{trace_id}:{span_id}", "--format", "json")
    assert json.loads(by_both.stdout)["cost_usd"] == found["cost_usd"]
    missing = run_cli("prices", "explain", "--db", str(db), "00000000000000ff")
    assert missing.returncode == 2 and "no stored call has the span id 00000000000000ff" in missing.stderr
    assert collector.stop() == 0
