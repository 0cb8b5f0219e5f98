"""Key hygiene: new keys, retired keys still in use, and keys that turn up in a service they never served.

All judged by call time (`start_time`), never by arrival: history loaded later with old timestamps
makes no key new. A key is new when its first call ever falls within the rule's lookback (one alert per
key, ever); a retired key alerts once per key per day while it is used; a key used by a service it was
never used by before — when it has a history with other services — alerts once per key and service.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from spendwatch.rules.budget import Query, as_datetime, filters_sql, key_name
from spendwatch.rules.config import Rule, RulesConfig
from spendwatch.rules.finding import Finding

_ONCE = datetime(1970, 1, 1, tzinfo=UTC)  # the window key of alerts that fire once ever


def evaluate_keys(rule: Rule, now: datetime, config: RulesConfig, query: Query) -> list[Finding]:
    as_of = now - config.settle
    since = as_of - rule.lookback
    where, params = filters_sql(rule)
    recent = query(
        f"""SELECT api_key_id, service_name, min(start_time), count(*), any_value(provider)
            FROM llm_calls WHERE start_time >= ? AND start_time < ? AND api_key_id IS NOT NULL {where}
            GROUP BY ALL""",
        [since, as_of, *params],
    )
    if not recent:
        return []
    keys = sorted({key for key, *_ in recent})
    marks = ", ".join("?" for _ in keys)
    earlier = query(
        f"""SELECT api_key_id, list(DISTINCT service_name) FROM llm_calls
            WHERE start_time < ? AND api_key_id IN ({marks}) GROUP BY api_key_id""",
        [since, *keys],
    )
    history = {key: {service for service in services} for key, services in earlier}
    findings = []
    today = datetime.combine(as_of.astimezone(config.timezone).date(), time(), tzinfo=config.timezone)
    for key in keys:
        calls = [row for row in recent if row[0] == key]
        services = sorted({service or "(none)" for _, service, *_ in calls})
        first_call = min(as_datetime(row[2]) for row in calls)
        provider = calls[0][4]
        named = key_name(key, "keys", config)
        if key in rule.retired:
            count = sum(row[3] for row in calls)
            findings.append(
                _finding(
                    rule,
                    "retired_key",
                    key,
                    today,
                    f"{rule.name}: retired key in use",
                    f"Key rule {rule.name!r}: the retired key {named} made {count} call(s) in the last "
                    f"{_hours(rule)} ({provider}; services: {', '.join(services)}).",
                )
            )
        if key not in history:
            findings.append(
                _finding(
                    rule,
                    "new_key",
                    key,
                    _ONCE,
                    f"{rule.name}: new key {key[:8]}",
                    f"Key rule {rule.name!r}: a new key, {named}, made its first call at "
                    f"{first_call.astimezone(config.timezone):%Y-%m-%d %H:%M} {config.timezone.key} "
                    f"({provider}; services: {', '.join(services)}).",
                )
            )
            continue
        for service in services:
            if history[key] and service not in {s or "(none)" for s in history[key]}:
                findings.append(
                    _finding(
                        rule,
                        "key_new_service",
                        f"{key} {service}",
                        _ONCE,
                        f"{rule.name}: key {key[:8]} in {service}",
                        f"Key rule {rule.name!r}: the key {named} was used by the service {service!r} for the first "
                        f"time; before, only by {', '.join(sorted(s or '(none)' for s in history[key]))}.",
                    )
                )
    return findings


def _finding(rule: Rule, kind: str, group_value: str, window_key: datetime, title: str, message: str) -> Finding:
    return Finding(
        rule=rule,
        kind=kind,
        group_value=group_value,
        window_key=window_key,
        window_end=None,
        threshold=0.0,
        value=None,
        limit=None,
        title=title,
        message=message,
    )


def _hours(rule: Rule) -> str:
    hours = rule.lookback.total_seconds() / 3600
    return f"{hours:g} hour(s)"
