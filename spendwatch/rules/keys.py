"""Key hygiene: new keys, retired keys still in use, and keys that turn up in a service they never served.

All judged by call time (`start_time`), never by arrival: history loaded later with old timestamps
makes no key new. A key is new when its first call ever falls within the rule's lookback (one alert per
key, ever); a retired key alerts once per key per day while it is used; a key used by a service it was
never used by before — when it has a history with other services — alerts once per key and service.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from spendwatch import hourly
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
    history = _services_before(query, since, keys, {(key, service) for key, service, *_ in recent})
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


# Most keys in use were in use last week too: their history is read from the last week alone, and all of
# it only for a key (or a key's service) that week does not show — new ones, or ones back from a long
# rest. Reading every call of every key on every tick cost ~110 ms at 10M calls.
_RECENT_HISTORY = timedelta(days=7)


def _services_before(
    query: Query, since: datetime, keys: list[str], pairs: set[tuple[str, str | None]]
) -> dict[str, set[str | None]]:
    """Per key with calls before `since`: the services of those calls, as far as `pairs` need to know."""
    history = _services(query, keys, since - _RECENT_HISTORY, since)
    unknown = sorted({key for key, service in pairs if service not in history.get(key, ())})
    if unknown:
        for key, services in _services(query, unknown, None, since - _RECENT_HISTORY).items():
            history.setdefault(key, set()).update(services)
    return history


def _services(query: Query, keys: list[str], start: datetime | None, end: datetime) -> dict[str, set[str | None]]:
    marks = ", ".join("?" for _ in keys)
    sealed = hourly.complete_before(lambda: query(hourly.WATERMARK_SQL, []))
    calls, params = hourly.calls(sealed, start, end, ["api_key_id", "service_name"])
    rows = query(
        f"""SELECT api_key_id, list(DISTINCT service_name) FROM {calls} AS calls
            WHERE api_key_id IN ({marks})
            GROUP BY api_key_id""",
        [*params, *keys],
    )
    return {key: set(services) for key, services in rows}


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


KEY_INVENTORY_SQL = """
    WITH seen AS (
        SELECT api_key_id, min(start_time) AS first_seen FROM llm_calls
        WHERE api_key_id IS NOT NULL GROUP BY api_key_id
    )
    SELECT c.api_key_id, any_value(c.api_key_hint) AS hint,
           string_agg(DISTINCT c.provider, ',' ORDER BY c.provider) AS providers,
           any_value(seen.first_seen) AS first_seen, max(c.start_time) AS last_seen,
           string_agg(DISTINCT c.service_name, ',' ORDER BY c.service_name) AS services, count(*) AS calls,
           round(sum(c.cost_usd), 6) AS cost_usd
    FROM llm_calls AS c JOIN seen USING (api_key_id)
    WHERE c.start_time >= ?
    GROUP BY c.api_key_id
    ORDER BY cost_usd DESC NULLS LAST, calls DESC
"""


def key_inventory(
    query: Callable[[str, list], tuple[list[str], list[list[Any]]]], config: RulesConfig, since: timedelta | None
) -> tuple[list[str], list[list[Any]]]:
    """Every key seen within `since` (ever: None): its name, hint, providers, first and last call, services,
    calls, spend, and whether a key rule retired it."""
    start = datetime(1970, 1, 1, tzinfo=UTC) if since is None else datetime.now(UTC) - since
    columns, rows = query(KEY_INVENTORY_SQL, [start])
    retired = {key for rule in config.rules if rule.kind == "keys" for key in rule.retired}
    named = []
    for row in rows:
        key = row[0]
        named.append([key, config.keys.get(key, ""), *row[1:], "retired, in use" if key in retired else ""])
    return [columns[0], "name", *columns[1:], "status"], named
