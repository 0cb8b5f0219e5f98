"""Reconcile rules: against the providers' bills, once a day and group.

Two findings, both over the reconciliation's own rows (spendwatch/billing/reconcile.py), per UTC day
(the providers' buckets are UTC days) within the rule's `lookback`:

- **a key billed with no instrumented call** that day — the key-compromise signal: a key used from
  somewhere no instrumented app runs. Checked on today's partial bill too, as soon as it is imported.
  One alert per key and day. Keys listed in `allow_unobserved` (a batch job's) are left alone.
- **a capture rate below `min_capture`** — observed dollars over billed dollars (tokens where the billed
  model has no price), per provider or, with `group_by = "api_key_id"`, per key; judged only on days that
  are over, since a day's bill and its spans arrive late. One alert per group and day.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from spendwatch.billing.reconcile import KEY_COLUMNS, KEYS_SQL, ROW_COLUMNS, ROWS_SQL, Period, params
from spendwatch.money import usd
from spendwatch.rules.budget import Query
from spendwatch.rules.config import Rule, RulesConfig
from spendwatch.rules.finding import Finding

ONE_DAY = timedelta(days=1)


def evaluate_reconcile(rule: Rule, now: datetime, config: RulesConfig, query: Query) -> list[Finding]:
    as_of = (now - config.settle).astimezone(UTC)
    today = as_of.replace(hour=0, minute=0, second=0, microsecond=0)
    days = max(1, -(-rule.lookback // ONE_DAY))
    period = Period(today - ONE_DAY * (days - 1), as_of)
    values = params(period, config.billed_keys)
    rows = [dict(zip(ROW_COLUMNS, row, strict=True)) for row in query(ROWS_SQL, values)]
    rows = [row for row in rows if _selected(rule, row)]
    if not rows:
        return []
    findings: list[Finding] = []
    if rule.missing_keys:
        keys = {(key[0], key[1]): dict(zip(KEY_COLUMNS, key, strict=True)) for key in query(KEYS_SQL, values)}
        findings += _missing_keys(rule, rows, keys)
    if rule.min_capture is not None:
        findings += _captures(rule, rows, config, as_of)
    return findings


def _selected(rule: Rule, row: dict[str, Any]) -> bool:
    for column, allowed in rule.where:
        if column == "provider" and row["provider"] not in allowed:
            return False
        if column == "api_key_id" and row["api_key_id"] not in allowed and row["provider_key_id"] not in allowed:
            return False
    return True


def _day(text: str) -> datetime:
    return datetime.fromisoformat(str(text)[:10]).replace(tzinfo=UTC)


def _missing_keys(rule: Rule, rows: list[dict], keys: dict[tuple, dict]) -> list[Finding]:
    per_key: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        match = row["api_key_id"] or row["provider_key_id"]
        if match is None:
            continue
        entry = per_key.setdefault(
            (row["day"], row["provider"], match), {"provider_key_id": None, "tokens": 0, "cost": 0.0, "calls": 0}
        )
        entry["calls"] += row["observed_calls"]
        if row["provider_key_id"] is not None:
            entry["provider_key_id"] = row["provider_key_id"]
            entry["tokens"] += row["billed_input_tokens"] + row["billed_output_tokens"]
            entry["cost"] += row["billed_cost_usd"] or 0.0
    findings = []
    for (day, provider, match), entry in sorted(per_key.items()):
        provider_key = entry["provider_key_id"]
        if provider_key is None or entry["calls"] or not entry["tokens"]:
            continue
        if provider_key in rule.allow_unobserved or match in rule.allow_unobserved:
            continue
        known = keys.get((provider, provider_key), {})
        described = ", ".join(part for part in (known.get("name"), known.get("redacted_value")) if part)
        named = f"{provider_key} ({described})" if described else provider_key
        mapped = f", spendwatch key {match}," if match != provider_key else ""
        findings.append(
            Finding(
                rule=rule,
                kind="missing_key",
                group_value=f"{provider} {provider_key}",
                window_key=_day(day),
                window_end=_day(day) + ONE_DAY,
                threshold=0.0,
                value=entry["cost"],
                limit=None,
                title=f"{rule.name}: {provider} key billed with no instrumented call",
                message=(
                    f"Reconcile rule {rule.name!r}: the {provider} key {named}{mapped} was billed "
                    f"{usd(entry['cost'])} for {entry['tokens']:,} tokens on {day} (UTC), and no instrumented app "
                    "made a call with it: a service nobody instrumented, or a key used from elsewhere. If it is "
                    "expected (a batch job), list it under allow_unobserved."
                ),
            )
        )
    return findings


def _captures(rule: Rule, rows: list[dict], config: RulesConfig, as_of: datetime) -> list[Finding]:
    groups: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        if _day(row["day"]) + ONE_DAY > as_of:
            continue  # a day still going: its bill and its spans are not all in
        if rule.group_by == ("api_key_id",):
            group = row["api_key_id"] or row["provider_key_id"] or "(no key)"
        else:
            group = row["provider"]
        entry = groups.setdefault((row["day"], group), {"billed": 0.0, "observed": 0.0, "tokens": [0, 0]})
        entry["billed"] += row["billed_cost_usd"] or 0.0
        entry["observed"] += row["observed_cost_usd"] or 0.0
        entry["tokens"][0] += row["billed_input_tokens"] + row["billed_output_tokens"]
        entry["tokens"][1] += row["observed_input_tokens"] + row["observed_output_tokens"]
    findings = []
    for (day, group), entry in sorted(groups.items()):
        billed, observed = entry["billed"], entry["observed"]
        if billed > 0:
            capture, measure = observed / billed, "dollars"
        elif entry["tokens"][0] > 0:
            capture, measure = entry["tokens"][1] / entry["tokens"][0], "tokens"
        else:
            continue
        if billed < rule.min_billed_usd or capture >= rule.min_capture:
            continue
        label = config.keys.get(group)
        scope = f"{group} ({label})" if label else group
        detail = (
            f"billed {usd(billed)} and spendwatch observed {usd(observed)} of it"
            if measure == "dollars"
            else f"billed {entry['tokens'][0]:,} tokens and spendwatch observed {entry['tokens'][1]:,}"
        )
        findings.append(
            Finding(
                rule=rule,
                kind="capture",
                group_value=group,
                window_key=_day(day),
                window_end=_day(day) + ONE_DAY,
                threshold=float(rule.min_capture),
                value=capture,
                limit=float(rule.min_capture),
                title=f"{rule.name}: {group} captured {capture:.0%} of its bill",
                message=(
                    f"Reconcile rule {rule.name!r}: on {day} (UTC), {scope} was {detail} ({capture:.1%}, below "
                    f"{rule.min_capture:.0%})"
                    + (f": {usd(billed - observed)} spent where no instrumented app reported it." if billed else ".")
                ),
            )
        )
    return findings
