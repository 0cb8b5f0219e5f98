"""`spendwatch export focus`: the file validates against FOCUS 1.2's rules (tests/focus_validator.py), in
CSV and Parquet, through the running daemon and from the file; and its totals are `report`'s."""

from __future__ import annotations

import csv
import io
import json
import math
import secrets
import subprocess
import sys
from decimal import Decimal

import duckdb
import httpx
import pytest

from tests.collector import Collector, run_cli
from tests.focus_validator import validate_csv, validate_parquet
from tests.test_prometheus import OPENAI_V2, SPENDWATCH, call_span, export

KEY = "3f992a85b654efea"


def load_calls(collector) -> None:
    """Calls of two providers, two keys (one named), two services, an error, a call from a peer's span
    without a key, and one of a model without a price."""
    documents = [
        export(SPENDWATCH, [call_span(secrets.token_hex(16), secrets.token_hex(8), model="gpt-4o", key=KEY)]),
        export(SPENDWATCH, [call_span(secrets.token_hex(16), secrets.token_hex(8), key=KEY, input_tokens=123_457)]),
        export(SPENDWATCH, [call_span(secrets.token_hex(16), secrets.token_hex(8), key="b" * 16)], service="search"),
        export(
            SPENDWATCH,
            [call_span(secrets.token_hex(16), secrets.token_hex(8), key="b" * 16, error="429", input_tokens=0)],
            service="search",
        ),
        export(OPENAI_V2, [call_span(secrets.token_hex(16), secrets.token_hex(8), model="gpt-4o-mini")]),
        export(SPENDWATCH, [call_span(secrets.token_hex(16), secrets.token_hex(8), model="acme-unpriced-1")]),
    ]
    claude = call_span(secrets.token_hex(16), secrets.token_hex(8), model="claude-sonnet-4-5", key=KEY)
    claude["attributes"][0] = {"key": "gen_ai.provider.name", "value": {"stringValue": "anthropic"}}
    documents.append(export(SPENDWATCH, [claude]))
    with httpx.Client(base_url=collector.http_endpoint) as client:
        for document in documents:
            assert client.post("/v1/traces", json=document).status_code == 200


@pytest.fixture
def loaded(tmp_path):
    config = tmp_path / "spendwatch.toml"
    config.write_text(f'[keys]\n"{KEY}" = "prod-backend"\n')
    db = tmp_path / "spendwatch.duckdb"
    collector = Collector(db, tmp_path / "log", config=config).start()
    load_calls(collector)
    yield collector, db, config
    if collector.process.poll() is None:
        assert collector.stop() == 0


def report_json(db, config, by="") -> dict:
    answer = run_cli("report", "--db", str(db), "--config", str(config), "--since", "all", "--format", "json",
                     "--by", by)  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


def report_total(db, config) -> dict:
    return report_json(db, config)["total"]


def test_the_csv_export_validates_and_its_totals_are_the_reports(loaded, tmp_path):
    _, db, config = loaded
    answer = run_cli("export", "focus", "--db", str(db), "--config", str(config), "--since", "all")
    assert answer.returncode == 0, answer.stderr
    assert "1 call(s) with no known price" in answer.stderr
    path = tmp_path / "focus.csv"
    path.write_text(answer.stdout)
    assert validate_csv(path) == []
    rows = list(csv.DictReader(io.StringIO(answer.stdout)))
    total = report_total(db, config)
    assert math.isclose(sum(float(row["BilledCost"]) for row in rows), total["cost_usd"], rel_tol=1e-12)
    assert sum(Decimal(row["EffectiveCost"]) for row in rows) == sum(Decimal(row["BilledCost"]) for row in rows)
    # the calls of models with a price: the report's rows by model that have a cost
    priced = [row for row in report_json(db, config, "provider,model")["rows"] if row["cost_usd"] is not None]
    tokens = sum(int(row["ConsumedQuantity"]) for row in rows)
    assert tokens == sum(row["input_tokens"] + row["output_tokens"] for row in priced)
    assert sum(Decimal(row["PricingQuantity"]) for row in rows) * 1_000_000 == tokens
    assert sum(int(row["x_Calls"]) for row in rows) == sum(row["calls"] for row in priced) == total["calls"] - 1
    assert sum(int(row["x_Errors"]) for row in rows) == total["errors"] == 1
    # one row per charge period, SKU, key and service
    keys = [(row["ChargePeriodStart"], row["SkuId"], row["SubAccountId"], row["x_CallerService"]) for row in rows]
    assert len(keys) == len(set(keys)) == 5
    by_sku = {(row["SkuId"], row["SubAccountId"]): row for row in rows}
    named = by_sku[("openai/gpt-4o", KEY)]
    assert (named["SubAccountName"], named["SubAccountType"]) == ("prod-backend", "API Key")
    assert json.loads(named["Tags"]) == {"service": "checkout", "spendwatch/api_key_id": KEY}
    assert (named["ProviderName"], named["ServiceName"], named["BilledCost"]) == ("OpenAI", "OpenAI API", "2.5")
    keyless = by_sku[("openai/gpt-4o-mini", "")]
    assert keyless["SubAccountName"] == keyless["SubAccountType"] == ""  # no key seen: no sub-account
    assert by_sku[("anthropic/claude-sonnet-4-5", KEY)]["ProviderName"] == "Anthropic"
    assert all(row["ChargePeriodEnd"] > row["ChargePeriodStart"] for row in rows)


def test_the_parquet_export_validates_from_the_daemon_and_from_the_file(loaded, tmp_path):
    collector, db, config = loaded
    through_daemon = tmp_path / "daemon.parquet"
    answer = run_cli("export", "focus", "--db", str(db), "--config", str(config), "--format", "parquet",
                     "--output", str(through_daemon), "--period", "hour")  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    assert validate_parquet(through_daemon) == []
    assert collector.stop() == 0
    from_file = tmp_path / "file.parquet"
    command = [sys.executable, "-m", "spendwatch.cli", "export", "focus", "--db", str(db), "--config", str(config),
               "--format", "parquet", "--period", "hour"]  # fmt: skip
    answer = subprocess.run(command, capture_output=True, timeout=120, check=False)  # Parquet on stdout: bytes
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.startswith(b"PAR1")
    from_file.write_bytes(answer.stdout)
    assert validate_parquet(from_file) == []
    con = duckdb.connect(":memory:")
    types = dict(con.sql(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '{from_file}')").fetchall())
    assert types["BilledCost"].startswith("DECIMAL") and types["ChargePeriodStart"] == "TIMESTAMP WITH TIME ZONE"
    (total,) = con.execute(f"SELECT sum(BilledCost) FROM '{from_file}'").fetchone()
    assert math.isclose(float(total), report_total(db, config)["cost_usd"], rel_tol=1e-12)
    assert (
        con.execute(f"SELECT count(*) FROM '{through_daemon}'").fetchone()
        == con.execute(f"SELECT count(*) FROM '{from_file}'").fetchone()
    )


def test_the_validator_finds_what_breaks_the_specification(loaded, tmp_path):
    """The validator is only worth its verdict if it can say no: each break below is one rule."""
    _, db, config = loaded
    text = run_cli("export", "focus", "--db", str(db), "--config", str(config), "--since", "all").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    breaks = {
        "ChargeCategory": ("Usages", "not an allowed value"),
        "BilledCost": ("", "BilledCost MUST NOT be null"),
        "ListCost": ("+2.5", "not in the Numeric Format"),
        "ChargePeriodStart": ("2026-12-01 00:00:00", "not in the Date/Time Format"),
        "Tags": ('{"a": {"b": 1}}', "an object or an array"),
        "PricingUnit": ("", "PricingUnit MUST be null exactly when PricingQuantity is"),
        "ServiceSubcategory": ("Virtual Machines", "not a subcategory"),
        "SubAccountType": ("", "SubAccountType MUST be null exactly when SubAccountId is"),
        "BillingCurrency": ("usd", "not an ISO 4217 code"),
    }
    named = next(row for row in rows if row["SubAccountId"])
    for column, (bad, message) in breaks.items():
        broken = [dict(row) for row in rows]
        broken[rows.index(named)][column] = bad
        path = tmp_path / f"{column}.csv"
        with path.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(broken)
        violations = validate_csv(path)
        assert any(message in violation for violation in violations), (column, violations)
    missing = tmp_path / "missing.csv"
    missing.write_text("\n".join(",".join(line.split(",")[1:]) for line in text.splitlines()) + "\n")
    assert "BilledCost: a mandatory column is missing" in validate_csv(missing)


def test_list_cost_is_list_price_and_effective_cost_what_the_discount_leaves(tmp_path):
    config = tmp_path / "spendwatch.toml"
    config.write_text('[[prices.discounts]]\nprovider = "openai"\ndiscount = 0.2\n')
    db = tmp_path / "spendwatch.duckdb"
    collector = Collector(db, tmp_path / "log", config=config).start()
    load_calls(collector)
    answer = run_cli("export", "focus", "--db", str(db), "--config", str(config), "--since", "all")
    assert collector.stop() == 0
    assert answer.returncode == 0, answer.stderr
    path = tmp_path / "focus.csv"
    path.write_text(answer.stdout)
    assert validate_csv(path) == []
    rows = list(csv.DictReader(io.StringIO(answer.stdout)))
    by_provider = {name: [row for row in rows if row["ProviderName"] == name] for name in ("OpenAI", "Anthropic")}
    assert by_provider["OpenAI"] and by_provider["Anthropic"]
    for row in by_provider["OpenAI"]:
        assert Decimal(row["EffectiveCost"]) > 0
        assert math.isclose(float(Decimal(row["EffectiveCost"])), 0.8 * float(Decimal(row["ListCost"])), rel_tol=1e-9)
    for row in by_provider["Anthropic"]:
        assert Decimal(row["EffectiveCost"]) == Decimal(row["ListCost"]) > 0
