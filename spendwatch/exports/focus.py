"""`spendwatch export focus`: LLM spend as cost rows in FOCUS, the FinOps Open Cost and Usage Specification
(version 1.2), so that it joins cloud spend in the FinOps tools that read the clouds' FOCUS exports.

One row per charge period (a UTC day, or hour), SKU (provider and model), API key and calling service,
summed from `llm_calls` as `spendwatch report` sums it, so the two always agree. How spendwatch's facts
map onto FOCUS's columns — the decisions the specification leaves to a data generator:

- The provider is the company that bills the calls: ProviderName, PublisherName and InvoiceIssuerName
  (OpenAI, Anthropic, ...; for models served by a cloud, the cloud's name as its own FOCUS export spells
  it: AWS, Microsoft, Google Cloud), ServiceName its API (Amazon Bedrock, Azure OpenAI, ...),
  ServiceCategory "AI and Machine Learning", ServiceSubcategory "Generative AI".
- spendwatch sees keys, not accounts: BillingAccountId is the provider's name as stored (one account per
  provider, as spendwatch can tell them apart), and each API key is a sub-account — SubAccountId is the
  key's id (never the key), SubAccountName its name in `[keys]` (else its last four characters, else the
  id), SubAccountType "API Key"; calls whose key is unknown have none.
- The SKU is the model: SkuId and SkuPriceId are `provider/model` (the price in force on each call's day
  is the one applied), SkuMeter "Tokens". ConsumedQuantity is every token (input, cached included, plus
  output, reasoning included) in ConsumedUnit "Tokens"; PricingQuantity the same in millions, the unit
  providers price in ("1000000 Tokens"). No unit prices are written: a row mixes input, output and cached
  tokens at different rates, and a blended rate would be a number no price list has.
- Costs: BilledCost, EffectiveCost and ContractedCost are what is paid (`cost_usd`, the config's discounts
  applied), ListCost the cost at list prices (`list_cost_usd`), in USD.
  ChargeCategory "Usage", ChargeFrequency "Usage-Based", ChargeClass null (nothing here corrects an
  invoiced period). BillingPeriod is the calendar month (UTC) holding the charge period.
- Calls with no known price have no cost, and FOCUS costs may not be null (nor a placeholder 0): they are
  counted in x_UnpricedCalls of their row, and a row with no priced call is left out (the export says how
  many calls that left out; `spendwatch prices missing` names their models).
- The calling service, the key id and the attribution dimensions are Tags (`service`, `spendwatch/...`),
  and custom columns (x_...) after FOCUS's: the calls, errors and tokens by kind behind each row.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from spendwatch.groups import ATTRIBUTION, GROUPS
from spendwatch.money import LIST_COST_COLUMN

VERSION = "1.2"
PERIODS = {"day": 86_400, "hour": 3_600}
TOKENS_PER_PRICING_UNIT = 1_000_000
PRICING_UNIT = "1000000 Tokens"
CURRENCY = "USD"
# provider as stored -> (the company that bills it, the service as that company names it)
PROVIDERS = {
    "openai": ("OpenAI", "OpenAI API"),
    "anthropic": ("Anthropic", "Claude API"),
    "gcp.gemini": ("Google", "Gemini API"),
    "gcp.vertex_ai": ("Google Cloud", "Vertex AI"),
    "aws.bedrock": ("AWS", "Amazon Bedrock"),
    "azure.ai.openai": ("Microsoft", "Azure OpenAI"),
    "groq": ("Groq", "GroqCloud"),
    "mistral_ai": ("Mistral AI", "Mistral AI API"),
    "deepseek": ("DeepSeek", "DeepSeek API"),
    "x_ai": ("xAI", "xAI API"),
    "perplexity": ("Perplexity", "Perplexity API"),
    "openrouter": ("OpenRouter", "OpenRouter"),
    "together_ai": ("Together AI", "Together AI API"),
    "fireworks_ai": ("Fireworks AI", "Fireworks AI API"),
    "ollama": ("Ollama", "Ollama"),
}

# (column, FOCUS data type) in the order written: FOCUS's columns, then the custom ones.
DECIMAL, STRING, DATETIME, JSON_OBJECT = "Decimal", "String", "Date/Time", "JSON"
FOCUS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("BilledCost", DECIMAL),
    ("BillingAccountId", STRING),
    ("BillingAccountName", STRING),
    ("BillingCurrency", STRING),
    ("BillingPeriodEnd", DATETIME),
    ("BillingPeriodStart", DATETIME),
    ("ChargeCategory", STRING),
    ("ChargeClass", STRING),
    ("ChargeDescription", STRING),
    ("ChargeFrequency", STRING),
    ("ChargePeriodEnd", DATETIME),
    ("ChargePeriodStart", DATETIME),
    ("ConsumedQuantity", DECIMAL),
    ("ConsumedUnit", STRING),
    ("ContractedCost", DECIMAL),
    ("EffectiveCost", DECIMAL),
    ("InvoiceIssuerName", STRING),
    ("ListCost", DECIMAL),
    ("PricingQuantity", DECIMAL),
    ("PricingUnit", STRING),
    ("ProviderName", STRING),
    ("PublisherName", STRING),
    ("ServiceCategory", STRING),
    ("ServiceName", STRING),
    ("ServiceSubcategory", STRING),
    ("SkuId", STRING),
    ("SkuMeter", STRING),
    ("SkuPriceDetails", JSON_OBJECT),
    ("SkuPriceId", STRING),
    ("SubAccountId", STRING),
    ("SubAccountName", STRING),
    ("SubAccountType", STRING),
    ("Tags", JSON_OBJECT),
)
_MEASURES = {
    "x_Calls": "count(*)",
    "x_Errors": "count(*) FILTER (error_type IS NOT NULL)",
    "x_UnpricedCalls": "count(*) FILTER (unpriced)",
    "x_InputTokens": "coalesce(sum(input_tokens), 0)",
    "x_OutputTokens": "coalesce(sum(output_tokens), 0)",
    "x_CacheReadTokens": "coalesce(sum(cache_read_tokens), 0)",
    "x_CacheWriteTokens": "coalesce(sum(cache_write_tokens), 0)",
    "x_ReasoningTokens": "coalesce(sum(reasoning_tokens), 0)",
}
_DIMENSIONS = {"x_Provider": "provider", "x_Model": "model", "x_ApiKeyId": "api_key_id", "x_CallerService": "service"}
_DIMENSIONS |= {f"x_{name.title()}": name for name in ATTRIBUTION}
CUSTOM_COLUMNS: tuple[tuple[str, str], ...] = (
    *((name, STRING) for name in _DIMENSIONS),
    *((name, DECIMAL) for name in _MEASURES),
)
COLUMNS = (*FOCUS_COLUMNS, *CUSTOM_COLUMNS)

# reads.query bound to a database: (sql, params) -> (columns, rows)
Query = Callable[[str, list[Any]], tuple[list[str], list[list[Any]]]]


@dataclass
class Export:
    rows: list[dict[str, Any]]  # COLUMNS, in order; money and quantities as Decimal, times as datetime
    left_out_calls: int  # calls in rows with no priced call (no known price, or usage unknown)
    start: datetime | None
    end: datetime


def period_start(moment: datetime, period: str) -> datetime:
    seconds = PERIODS[period]
    return datetime.fromtimestamp(int(moment.timestamp()) // seconds * seconds, UTC)


def build_export(
    query: Query,
    since: timedelta | None,
    period: str = "day",
    key_names: dict[str, str] | None = None,
    now: datetime | None = None,
) -> Export:
    """The FOCUS rows of the calls started since `now - since` (all with None), from the start of that
    charge period, so that every period but the current one is whole."""
    now = now or datetime.now(UTC)
    start = None if since is None else period_start(now - since, period)
    seconds = PERIODS[period]
    dimensions = ", ".join(f"{GROUPS[column]} AS {name}" for name, column in _DIMENSIONS.items())
    measures = ", ".join(f"{sql} AS {name}" for name, sql in _MEASURES.items())
    where, params = ("", []) if start is None else ("WHERE start_time >= ?", [start])
    columns, rows = query(
        f"""SELECT epoch_us(start_time) // {seconds * 1_000_000} AS charge_period, {dimensions},
                   max(api_key_hint) AS hint, sum(cost_usd) AS cost, sum({LIST_COST_COLUMN}) AS list_cost, {measures}
            FROM llm_calls {where} GROUP BY ALL ORDER BY ALL""",
        params,
    )
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    left_out = sum(record["x_Calls"] for record in records if record["cost"] is None)
    focus_rows = [_row(record, seconds, key_names or {}) for record in records if record["cost"] is not None]
    return Export(focus_rows, left_out, start, now)


def _decimal(value: Any) -> Decimal:
    """A number as a decimal, exactly as its shortest round-tripping representation says."""
    return Decimal(repr(float(value))) if isinstance(value, float) else Decimal(value)


def _row(record: dict[str, Any], seconds: int, key_names: dict[str, str]) -> dict[str, Any]:
    provider, model, key = record["x_Provider"], record["x_Model"], record["x_ApiKeyId"]
    company, service = PROVIDERS.get(provider, (provider, provider))
    charge_start = datetime.fromtimestamp(int(record["charge_period"]) * seconds, UTC)
    billing_start = charge_start.replace(day=1, hour=0)
    billing_end = (billing_start + timedelta(days=32)).replace(day=1)
    tokens = int(record["x_InputTokens"]) + int(record["x_OutputTokens"])
    cost, list_cost = _decimal(record["cost"]), _decimal(record["list_cost"])
    sku = f"{provider}/{model}"
    tags: dict[str, Any] = {}
    if record["x_CallerService"] is not None:
        tags["service"] = record["x_CallerService"]
    if key is not None:
        tags["spendwatch/api_key_id"] = key
    for name in ATTRIBUTION:
        value = record[f"x_{name.title()}"]
        if value is not None:
            tags[name] = value
    caller = f" for {record['x_CallerService']}" if record["x_CallerService"] else ""
    row = {
        "BilledCost": cost,
        "BillingAccountId": provider,
        "BillingAccountName": company,
        "BillingCurrency": CURRENCY,
        "BillingPeriodEnd": billing_end,
        "BillingPeriodStart": billing_start,
        "ChargeCategory": "Usage",
        "ChargeClass": None,
        "ChargeDescription": f"{model} tokens through {service}{caller}",
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": charge_start + timedelta(seconds=seconds),
        "ChargePeriodStart": charge_start,
        "ConsumedQuantity": Decimal(tokens),
        "ConsumedUnit": "Tokens",
        "ContractedCost": cost,
        "EffectiveCost": cost,
        "InvoiceIssuerName": company,
        "ListCost": list_cost,
        "PricingQuantity": Decimal(tokens) / TOKENS_PER_PRICING_UNIT,
        "PricingUnit": PRICING_UNIT,
        "ProviderName": company,
        "PublisherName": company,
        "ServiceCategory": "AI and Machine Learning",
        "ServiceName": service,
        "ServiceSubcategory": "Generative AI",
        "SkuId": sku,
        "SkuMeter": "Tokens",
        "SkuPriceDetails": None,
        "SkuPriceId": sku,
        "SubAccountId": key,
        "SubAccountName": None if key is None else key_names.get(key) or _hint(record["hint"]) or key,
        "SubAccountType": None if key is None else "API Key",
        "Tags": json.dumps(tags, sort_keys=True) if tags else None,
    }
    row.update({name: record[name] for name in _DIMENSIONS})
    row.update({name: Decimal(int(record[name])) for name in _MEASURES})
    return row


def _hint(hint: str | None) -> str | None:
    return f"key ending {hint}" if hint else None


def _text(value: Any) -> str:
    """A value as FOCUS writes it in text: decimals plain (never in E notation), times ISO 8601 in UTC with
    Z, null as an empty field."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        text = format(value, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def write_csv(out: TextIO, export: Export) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([name for name, _ in COLUMNS])
    for row in export.rows:
        writer.writerow([_text(row[name]) for name, _ in COLUMNS])


# Parquet's types for FOCUS's: decimals exact (costs to 1e-12 USD, token quantities to 1e-6 of a million),
# times as UTC instants, JSON objects as strings (FOCUS: "serialized as a String where necessary").
_PARQUET_TYPES = {DECIMAL: "DECIMAL(38, 12)", STRING: "VARCHAR", DATETIME: "TIMESTAMPTZ", JSON_OBJECT: "VARCHAR"}


def write_parquet(path: Path, export: Export) -> None:
    """Through DuckDB on an in-memory connection of its own (the daemon's have no file access, on purpose)."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        columns = ", ".join(f'"{name}" {_PARQUET_TYPES[kind]}' for name, kind in COLUMNS)
        con.execute(f"CREATE TABLE focus ({columns})")
        appender = con.appender("focus")
        appender.append_rows([tuple(row[name] for name, _ in COLUMNS) for row in export.rows])
        appender.flush()
        target = str(path).replace("'", "''")
        con.execute(f"COPY focus TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
    finally:
        con.close()


def copy_file(path: Path, out: BinaryIO) -> None:
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            out.write(chunk)
