"""A FOCUS 1.2 validator for a cost and usage file, written from the specification's normative text (its
columns' requirements and content constraints, and its attributes: column handling, null handling,
numeric, date/time, currency and key-value formats). It checks what a file can show: which columns are
there, their types and formats, nullability, allowed values and the rules between columns. It knows
nothing of spendwatch: it reads the file as any FOCUS consumer would.

`validate_csv(path)` and `validate_parquet(path)` return the list of violations (empty: valid).
"""

from __future__ import annotations

import csv
import json
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

DECIMAL, STRING, DATETIME, JSON_OBJECT = "Decimal", "String", "Date/Time", "JSON"

# Every column FOCUS 1.2 defines: (data type, allows nulls, mandatory).
COLUMNS: dict[str, tuple[str, bool, bool]] = {
    "AvailabilityZone": (STRING, True, False),
    "BilledCost": (DECIMAL, False, True),
    "BillingAccountId": (STRING, False, True),
    "BillingAccountName": (STRING, True, True),
    "BillingAccountType": (STRING, False, False),
    "BillingCurrency": (STRING, False, True),
    "BillingPeriodEnd": (DATETIME, False, True),
    "BillingPeriodStart": (DATETIME, False, True),
    "CapacityReservationId": (STRING, True, False),
    "CapacityReservationStatus": (STRING, True, False),
    "ChargeCategory": (STRING, False, True),
    "ChargeClass": (STRING, True, True),
    "ChargeDescription": (STRING, True, True),
    "ChargeFrequency": (STRING, False, False),
    "ChargePeriodEnd": (DATETIME, False, True),
    "ChargePeriodStart": (DATETIME, False, True),
    "CommitmentDiscountCategory": (STRING, True, False),
    "CommitmentDiscountId": (STRING, True, False),
    "CommitmentDiscountName": (STRING, True, False),
    "CommitmentDiscountQuantity": (DECIMAL, True, False),
    "CommitmentDiscountStatus": (STRING, True, False),
    "CommitmentDiscountType": (STRING, True, False),
    "CommitmentDiscountUnit": (STRING, True, False),
    "ConsumedQuantity": (DECIMAL, True, False),
    "ConsumedUnit": (STRING, True, False),
    "ContractedCost": (DECIMAL, False, True),
    "ContractedUnitPrice": (DECIMAL, True, False),
    "EffectiveCost": (DECIMAL, False, True),
    "InvoiceId": (STRING, True, False),
    "InvoiceIssuerName": (STRING, False, True),
    "ListCost": (DECIMAL, False, True),
    "ListUnitPrice": (DECIMAL, True, False),
    "PricingCategory": (STRING, True, False),
    "PricingCurrency": (STRING, True, False),
    "PricingCurrencyContractedUnitPrice": (DECIMAL, True, False),
    "PricingCurrencyEffectiveCost": (DECIMAL, True, False),
    "PricingCurrencyListUnitPrice": (DECIMAL, True, False),
    "PricingQuantity": (DECIMAL, True, True),
    "PricingUnit": (STRING, True, True),
    "ProviderName": (STRING, False, True),
    "PublisherName": (STRING, False, True),
    "RegionId": (STRING, True, False),
    "RegionName": (STRING, True, False),
    "ResourceId": (STRING, True, False),
    "ResourceName": (STRING, True, False),
    "ResourceType": (STRING, True, False),
    "ServiceCategory": (STRING, False, True),
    "ServiceName": (STRING, False, True),
    "ServiceSubcategory": (STRING, False, False),
    "SkuId": (STRING, True, False),
    "SkuMeter": (STRING, True, False),
    "SkuPriceDetails": (JSON_OBJECT, True, False),
    "SkuPriceId": (STRING, True, False),
    "SubAccountId": (STRING, True, False),
    "SubAccountName": (STRING, True, False),
    "SubAccountType": (STRING, True, False),
    "Tags": (JSON_OBJECT, True, False),
}
ALLOWED = {
    "ChargeCategory": {"Usage", "Purchase", "Tax", "Credit", "Adjustment"},
    "ChargeClass": {"Correction"},
    "ChargeFrequency": {"One-Time", "Recurring", "Usage-Based"},
    "PricingCategory": {"Standard", "Dynamic", "Committed", "Other"},
    "CommitmentDiscountStatus": {"Used", "Unused"},
    "CommitmentDiscountCategory": {"Spend", "Usage"},
    "CapacityReservationStatus": {"Used", "Unused"},
}
SUBCATEGORIES = {
    "AI and Machine Learning": [
        "AI Platforms", "Bots", "Generative AI", "Machine Learning", "Natural Language Processing"],
    "Analytics": ["Analytics Platforms", "Business Intelligence", "Data Processing", "Search", "Streaming Analytics"],
    "Business Applications": ["Productivity and Collaboration"],
    "Compute": ["Containers", "End User Computing", "Quantum Compute", "Serverless Compute", "Virtual Machines"],
    "Databases": ["Caching", "Data Warehouses", "Ledger Databases", "NoSQL Databases", "Relational Databases",
                  "Time Series Databases"],
    "Developer Tools": ["Developer Platforms", "Continuous Integration and Deployment", "Development Environments",
                        "Source Code Management", "Quality Assurance"],
    "Identity": ["Identity and Access Management"],
    "Integration": ["API Management", "Messaging", "Workflow Orchestration"],
    "Internet of Things": ["IoT Analytics", "IoT Platforms"],
    "Management and Governance": ["Architecture", "Compliance", "Cost Management", "Data Governance",
                                  "Disaster Recovery", "Endpoint Management", "Observability", "Support"],
    "Media": ["Content Creation", "Gaming", "Media Streaming", "Mixed Reality"],
    "Migration": ["Data Migration", "Resource Migration"],
    "Mobile": [],
    "Multicloud": ["Multicloud Integration"],
    "Networking": ["Application Networking", "Content Delivery", "Network Connectivity", "Network Infrastructure",
                   "Network Routing", "Network Security"],
    "Security": ["Secret Management", "Security Posture Management", "Threat Detection and Response"],
    "Storage": ["Backup Storage", "Block Storage", "File Storage", "Object Storage", "Storage Platforms"],
    "Web": ["Application Platforms"],
    "Other": [],
}  # fmt: skip
# Numeric Format: an integer, a decimal or E notation; no sign for positives, no separators, no units.
NUMERIC = re.compile(r"^-?\d+(\.\d+)?(E-?\d+)?$", re.IGNORECASE)
# Date/Time Format: extended ISO 8601 in UTC, 'YYYY-MM-DDTHH:mm:ssZ'.
DATETIME_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
CURRENCY = re.compile(r"^[A-Z]{3}$")  # ISO 4217 alphabetic code
COLUMN_ID = re.compile(r"^[A-Z][A-Za-z0-9]*$")  # Pascal case, alphanumeric
CUSTOM_ID = re.compile(r"^x_[A-Za-z0-9]+$")


class Violations(list):
    def add(self, row: int | None, rule: str) -> None:
        if len(self) < 200:
            self.append(rule if row is None else f"row {row}: {rule}")


def validate_csv(path: Path) -> list[str]:
    """A CSV file: a header of column ids, values as text, an empty field is null."""
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = next(reader)
        rows = [dict(zip(header, (value if value != "" else None for value in row), strict=True)) for row in reader]
    violations = Violations()
    parsed = []
    for number, row in enumerate(rows, 1):
        parsed.append(_parse_text(row, number, violations))
    _validate(header, parsed, violations)
    return list(violations)


def _parse_text(row: dict[str, str | None], number: int, violations: Violations) -> dict[str, Any]:
    """Each FOCUS column's text in its type, checking its format (Numeric, Date/Time, Key-Value)."""
    values: dict[str, Any] = {}
    for name, text in row.items():
        kind = COLUMNS.get(name, (STRING,))[0]
        if text is None or kind == STRING:
            values[name] = text
        elif kind == DECIMAL:
            if not NUMERIC.match(text):
                violations.add(number, f"{name}: {text!r} is not in the Numeric Format")
                values[name] = None
            else:
                try:
                    values[name] = Decimal(text)
                except InvalidOperation:
                    violations.add(number, f"{name}: {text!r} is not a valid decimal value")
                    values[name] = None
        elif kind == DATETIME:
            if not DATETIME_TEXT.match(text):
                violations.add(number, f"{name}: {text!r} is not in the Date/Time Format (YYYY-MM-DDTHH:mm:ssZ)")
                values[name] = None
            else:
                values[name] = datetime.fromisoformat(text.replace("Z", "+00:00"))
        else:
            values[name] = _key_value(name, text, number, violations)
    return values


def _key_value(name: str, text: Any, number: int, violations: Violations) -> dict | None:
    """Key-Value Format: a serialized JSON object, unique keys, values number, string, true, false or null."""
    if not isinstance(text, str):
        violations.add(number, f"{name}: not a serialized JSON string")
        return None
    pairs: list[tuple[str, Any]] = []
    try:
        document = json.loads(text, object_pairs_hook=lambda items: pairs.extend(items) or dict(items))
    except ValueError:
        violations.add(number, f"{name}: not valid JSON")
        return None
    if not isinstance(document, dict):
        violations.add(number, f"{name}: not a JSON object")
        return None
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        violations.add(number, f"{name}: keys are not unique")
    for key, value in document.items():
        if isinstance(value, dict | list):
            violations.add(number, f"{name}: the value of {key!r} is an object or an array")
    return document


def validate_parquet(path: Path) -> list[str]:
    """A Parquet file: its column types must be the FOCUS types' (decimals numeric, times timestamps with
    time zone, strings and JSON objects as strings), then the same rules as text."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        target = str(path).replace("'", "''")
        relation = con.sql(f"SELECT * FROM read_parquet('{target}')")
        header, types = relation.columns, [str(kind) for kind in relation.types]
        rows = [dict(zip(header, row, strict=True)) for row in relation.fetchall()]
    finally:
        con.close()
    violations = Violations()
    for name, kind in zip(header, types, strict=True):
        focus_kind = COLUMNS.get(name, (None,))[0]
        expected = {
            DECIMAL: ("DECIMAL", "DOUBLE", "BIGINT", "INTEGER", "HUGEINT"),
            DATETIME: ("TIMESTAMP WITH TIME ZONE",),
            STRING: ("VARCHAR",),
            JSON_OBJECT: ("VARCHAR", "JSON"),
        }.get(focus_kind)
        if expected and not kind.startswith(expected):
            violations.add(None, f"{name}: stored as {kind}, not as FOCUS's {focus_kind}")
    for number, row in enumerate(rows, 1):
        for name, value in row.items():
            kind = COLUMNS.get(name, (STRING,))[0]
            if value is None:
                continue
            if kind == DECIMAL:
                row[name] = Decimal(str(value))
            elif kind == JSON_OBJECT:
                row[name] = _key_value(name, value, number, violations)
    _validate(header, rows, violations)
    return list(violations)


def _validate(header: list[str], rows: list[dict[str, Any]], violations: Violations) -> None:
    _column_handling(header, violations)
    present = set(header)
    for number, row in enumerate(rows, 1):
        _row(row, present, number, violations)


def _column_handling(header: list[str], violations: Violations) -> None:
    for name, (_, _, mandatory) in COLUMNS.items():
        if mandatory and name not in header:
            violations.add(None, f"{name}: a mandatory column is missing")
    if len(header) != len(set(header)):
        violations.add(None, "a column appears twice")
    seen_custom = False
    for name in header:
        if name in COLUMNS:
            if seen_custom:
                violations.add(None, f"{name}: FOCUS columns should come before custom ones, not intermixed")
            if not COLUMN_ID.match(name):
                violations.add(None, f"{name}: not a Pascal-case alphanumeric column id")
        elif CUSTOM_ID.match(name):
            seen_custom = True
        else:
            violations.add(None, f"{name}: neither a FOCUS column nor a custom column prefixed x_")


def _row(row: dict[str, Any], present: set[str], number: int, violations: Violations) -> None:
    def value(name: str) -> Any:
        return row.get(name)

    def rule(condition: bool, text: str) -> None:
        if not condition:
            violations.add(number, text)

    # nullability, and strings that stand for nothing
    for name in present & set(COLUMNS):
        kind, nullable, _ = COLUMNS[name]
        if not nullable:
            rule(value(name) is not None, f"{name} MUST NOT be null")
        if kind == STRING and isinstance(value(name), str):
            rule(value(name).strip() != "", f"{name}: an empty string stands for null")
    # allowed values
    for name, allowed in ALLOWED.items():
        if name in present and value(name) is not None:
            rule(value(name) in allowed, f"{name}: {value(name)!r} is not an allowed value")
    category = value("ServiceCategory")
    rule(category in SUBCATEGORIES, f"ServiceCategory: {category!r} is not an allowed value")
    if "ServiceSubcategory" in present and category in SUBCATEGORIES:
        allowed = {*SUBCATEGORIES[category], f"Other ({category})"}
        rule(value("ServiceSubcategory") in allowed, f"ServiceSubcategory: {value('ServiceSubcategory')!r} is not "
             f"a subcategory of {category!r}")  # fmt: skip
    for name in ("BillingCurrency", "PricingCurrency"):
        if name in present and value(name) is not None:
            rule(bool(CURRENCY.match(value(name))), f"{name}: {value(name)!r} is not an ISO 4217 code")
    charge, correction = value("ChargeCategory"), value("ChargeClass") == "Correction"
    usage_or_purchase = charge in ("Usage", "Purchase") and not correction
    # periods: inclusive start, exclusive end
    for period in ("Charge", "Billing"):
        start, end = value(f"{period}PeriodStart"), value(f"{period}PeriodEnd")
        if start is not None and end is not None:
            rule(start < end, f"{period}PeriodStart is not before {period}PeriodEnd")
    if "ChargeFrequency" in present:
        rule(not (charge == "Purchase" and value("ChargeFrequency") == "Usage-Based"),
             "ChargeFrequency MUST NOT be Usage-Based when ChargeCategory is Purchase")  # fmt: skip
    # pricing and consumption: a quantity goes with its unit
    rule((value("PricingQuantity") is None) == (value("PricingUnit") is None),
         "PricingUnit MUST be null exactly when PricingQuantity is")  # fmt: skip
    if charge == "Tax":
        rule(value("PricingQuantity") is None, "PricingQuantity MUST be null when ChargeCategory is Tax")
    if usage_or_purchase:
        rule(value("PricingQuantity") is not None, "PricingQuantity MUST NOT be null for Usage or Purchase")
    if "ConsumedQuantity" in present:
        rule("ConsumedUnit" in present, "ConsumedUnit MUST be present with ConsumedQuantity")
        rule((value("ConsumedQuantity") is None) == (value("ConsumedUnit") is None),
             "ConsumedUnit MUST be null exactly when ConsumedQuantity is")  # fmt: skip
        if not correction:
            rule(value("ConsumedQuantity") is not None, "ConsumedQuantity MUST NOT be null unless a Correction")
    # SKUs
    for name in ("SkuId", "SkuPriceId"):
        if name in present:
            if charge == "Tax":
                rule(value(name) is None, f"{name} MUST be null when ChargeCategory is Tax")
            if usage_or_purchase:
                rule(value(name) is not None, f"{name} MUST NOT be null for Usage or Purchase")
    if "SkuMeter" in present and value("SkuId") is None:
        rule(value("SkuMeter") is None, "SkuMeter MUST be null when SkuId is null")
    if "SkuPriceDetails" in present and value("SkuPriceId") is None:
        rule(value("SkuPriceDetails") is None, "SkuPriceDetails MUST be null when SkuPriceId is null")
    # sub accounts: name and type go with the id
    for name in ("SubAccountName", "SubAccountType"):
        if name in present:
            rule((value(name) is None) == (value("SubAccountId") is None),
                 f"{name} MUST be null exactly when SubAccountId is")  # fmt: skip
    # costs: unit prices times the quantity; charges unrelated to others match the billed cost
    for cost, unit_price in (("ListCost", "ListUnitPrice"), ("ContractedCost", "ContractedUnitPrice")):
        price, quantity = value(unit_price), value("PricingQuantity")
        if price is not None:
            rule(price >= 0, f"{unit_price} MUST be non-negative")
            if quantity is not None and not correction:
                rule(price * quantity == value(cost), f"{unit_price} x PricingQuantity MUST match {cost}")
        elif charge == "Credit":
            rule(value(cost) == value("BilledCost"), f"{cost} of a Credit MUST match BilledCost")
    if usage_or_purchase:
        for unit_price in ("ListUnitPrice", "ContractedUnitPrice"):
            if unit_price in present:
                rule(value(unit_price) is not None, f"{unit_price} MUST NOT be null for Usage or Purchase")
    if charge == "Credit":
        rule(value("EffectiveCost") == value("BilledCost"), "EffectiveCost of a Credit MUST match BilledCost")
