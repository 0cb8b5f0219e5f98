"""The rules section of the config file: notifiers, rules, key names, the daemon's own notices.

Users write it by hand, so every mistake is reported with the file, the rule and the key, and what was
expected — all of them at once, so that one `spendwatch rules check` shows everything to fix. Notifier
URLs carry credentials: they are masked in every message.

Each rule kind is one dataclass with its own keys and their validation (`BudgetRule`, `AnomalyRule`,
`KeysRule`, `ReconcileRule`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from spendwatch.durations import parse_duration
from spendwatch.errors import UserError
from spendwatch.groups import ATTRIBUTION, GROUPS
from spendwatch.groups import expression as group_expression

CALENDAR_WINDOWS = ("day", "week", "month")
WHERE_COLUMNS = {
    "provider": ("provider",),
    "api_key_id": ("api_key_id",),
    "service_name": ("service_name",),
    "service": ("service_name",),
    "request_model": ("request_model",),
    "response_model": ("response_model",),
    "model": ("request_model", "response_model"),
    "operation": ("operation",),
    **{dimension: (dimension,) for dimension in ATTRIBUTION},
}
# What `group_by` may name, and the SQL each groups by (spendwatch/groups.py).
GROUP_EXPRESSIONS = GROUPS
GROUP_COLUMNS = set(GROUP_EXPRESSIONS)
COMMON_KEYS = {"name", "kind", "every", "where", "group_by", "notify", "scope"}
# Where a rule looks: this daemon's calls, or the whole fleet's in the shared table (spendwatch/fleet),
# evaluated there by one daemon at a time.
SCOPES = ("local", "fleet")
FLEET_KINDS = ("budget", "anomaly")
METRICS = ("cost_usd", "tokens", "requests", "errors", "error_rate", "p95_latency_ms", "usage_unknown")
DEFAULT_EVERY = timedelta(minutes=1)
DEFAULT_SETTLE = timedelta(seconds=30)


class RulesConfigError(UserError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Rule:
    """What every rule has; each kind below adds its own fields and validates them."""

    name: str
    kind: str
    every: timedelta
    notify: tuple[str, ...]
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (column key, allowed values)
    group_by: tuple[str, ...] = ()  # each group's limit apart: one name, or several (`["user", "feature"]`)
    scope: str = "local"  # `fleet`: over the fleet's shared table, by the lease holder alone

    @property
    def group_sql(self) -> str | None:
        """The SQL of a group's value as text: the group names' values joined with " / ", None for none."""
        if not self.group_by:
            return None
        parts = [f"coalesce(CAST({group_expression(name)} AS VARCHAR), '(none)')" for name in self.group_by]
        return parts[0] if len(parts) == 1 else "concat_ws(' / ', " + ", ".join(parts) + ")"

    @property
    def group_label(self) -> str | None:
        """How the groups are named in alerts and messages: `api_key_id`, `user, feature`."""
        return ", ".join(self.group_by) or None

    KEYS: ClassVar[frozenset[str]] = frozenset(COMMON_KEYS)

    @classmethod
    def parse_fields(cls, table: dict[str, Any], where: str, problem: Callable[[str, str], None]) -> dict[str, Any]:
        """This kind's own fields from the rule's table; each mistake goes to `problem(where, message)`."""
        return {}


@dataclass(frozen=True)
class BudgetRule(Rule):
    window: str = "day"  # a calendar window, or a rolling one given by `rolling`
    rolling: timedelta | None = None
    limit_usd: float = 0.0
    thresholds: tuple[float, ...] = (0.8, 1.0)
    forecast: bool = False
    enforce: bool = False  # when exhausted, the instrumentation refuses the group's next calls

    KEYS: ClassVar[frozenset[str]] = frozenset(
        COMMON_KEYS | {"window", "limit_usd", "thresholds", "forecast", "enforce"}
    )

    @classmethod
    def parse_fields(cls, table: dict[str, Any], where: str, problem: Callable[[str, str], None]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        window = table.get("window", "day")
        if window in CALENDAR_WINDOWS:
            values["window"] = window
        else:
            try:
                values["rolling"] = parse_duration(window)
                values["window"] = str(window)
            except ValueError:
                problem(f"{where}: window", f'expected day, week, month or a duration such as "24h", got {window!r}')
        limit = table.get("limit_usd")
        if isinstance(limit, bool) or not isinstance(limit, int | float) or limit <= 0:
            problem(f"{where}: limit_usd", f"expected a number of dollars above 0, got {limit!r}")
        else:
            values["limit_usd"] = float(limit)
        thresholds = table.get("thresholds", [0.8, 1.0])
        if (
            not isinstance(thresholds, list)
            or not thresholds
            or not all(isinstance(t, int | float) and not isinstance(t, bool) and 0 < t <= 10 for t in thresholds)
        ):
            problem(f"{where}: thresholds", f"expected fractions of the limit in (0, 10], got {thresholds!r}")
        else:
            values["thresholds"] = tuple(sorted(float(t) for t in thresholds))
        forecast = table.get("forecast", False)
        if not isinstance(forecast, bool):
            problem(f"{where}: forecast", f"expected true or false, got {forecast!r}")
        elif forecast and "rolling" in values:
            problem(f"{where}: forecast", "needs a calendar window (day, week or month): a rolling one has no end")
        else:
            values["forecast"] = forecast
        enforce = table.get("enforce", False)
        if not isinstance(enforce, bool):
            problem(f"{where}: enforce", f"expected true or false, got {enforce!r}")
        else:
            values["enforce"] = enforce
            unenforceable = [name for name in _group_names(table) if name not in ENFORCEABLE]
            if enforce and unenforceable:
                known = ", ".join(ENFORCEABLE)
                problem(f"{where}: enforce", f"calls can be refused by {known}; not by {', '.join(unenforceable)}")
        return values


@dataclass(frozen=True)
class AnomalyRule(Rule):
    metric: str = "cost_usd"
    bucket: timedelta = timedelta(hours=1)
    baseline: timedelta = timedelta(days=7)
    sensitivity: float = 4.0
    min_value: float = 0.0

    KEYS: ClassVar[frozenset[str]] = frozenset(
        COMMON_KEYS | {"metric", "bucket", "baseline", "sensitivity", "min_value"}
    )

    @classmethod
    def parse_fields(cls, table: dict[str, Any], where: str, problem: Callable[[str, str], None]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        metric = table.get("metric", "cost_usd")
        if metric not in METRICS:
            problem(f"{where}: metric", f"expected one of {', '.join(METRICS)}, got {metric!r}")
        values["metric"] = metric
        for key, default in (("bucket", "1h"), ("baseline", "7d")):
            try:
                values[key] = parse_duration(table.get(key, default))
            except ValueError as error:
                problem(f"{where}: {key}", str(error))
        if "bucket" in values and "baseline" in values and values["baseline"] < 4 * values["bucket"]:
            problem(f"{where}: baseline", "expected at least four buckets of history (baseline >= 4 x bucket)")
        sensitivity = table.get("sensitivity", 4.0)
        if isinstance(sensitivity, bool) or not isinstance(sensitivity, int | float) or sensitivity <= 0:
            problem(f"{where}: sensitivity", f"expected a robust z-score above 0 (such as 4.0), got {sensitivity!r}")
        else:
            values["sensitivity"] = float(sensitivity)
        min_value = table.get("min_value", 0.0)
        if isinstance(min_value, bool) or not isinstance(min_value, int | float) or min_value < 0:
            problem(f"{where}: min_value", f"expected a number of at least 0, got {min_value!r}")
        else:
            values["min_value"] = float(min_value)
        return values


@dataclass(frozen=True)
class KeysRule(Rule):
    lookback: timedelta = timedelta(hours=1)
    retired: tuple[str, ...] = ()

    KEYS: ClassVar[frozenset[str]] = frozenset(
        {"name", "kind", "every", "where", "notify", "lookback", "retired", "scope"}
    )

    @classmethod
    def parse_fields(cls, table: dict[str, Any], where: str, problem: Callable[[str, str], None]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        try:
            values["lookback"] = parse_duration(table.get("lookback", "1h"))
        except ValueError as error:
            problem(f"{where}: lookback", str(error))
        retired = table.get("retired", [])
        if not isinstance(retired, list) or not all(isinstance(key, str) and key for key in retired):
            problem(f"{where}: retired", "expected a list of key ids")
        else:
            values["retired"] = tuple(retired)
        return values


# What the instrumentation knows of a call before sending it, and so can refuse it by (enforce = true).
ENFORCEABLE = ("provider", "api_key_id", "service_name", "service", "request_model", "model", *ATTRIBUTION)


def _group_names(table: dict[str, Any]) -> list[str]:
    group_by = table.get("group_by", [])
    names = [group_by] if isinstance(group_by, str) else group_by if isinstance(group_by, list) else []
    filters = table.get("where", {})
    return [*names, *(filters if isinstance(filters, dict) else {})]


@dataclass(frozen=True)
class ReconcileRule(Rule):
    """Against the providers' bills (spendwatch/billing): a capture rate below `min_capture` on a complete
    UTC day, per provider or key; and a key billed on a day with no instrumented call at all."""

    min_capture: float | None = None  # a fraction of the billed dollars; None: no capture alert
    missing_keys: bool = True
    lookback: timedelta = timedelta(days=3)  # the UTC days checked: providers report usage late
    min_billed_usd: float = 0.0  # a day's group billed less than this has no capture alert
    allow_unobserved: tuple[str, ...] = ()  # keys expected to be billed uninstrumented (a batch job)

    KEYS: ClassVar[frozenset[str]] = frozenset(
        COMMON_KEYS | {"min_capture", "missing_keys", "lookback", "min_billed_usd", "allow_unobserved"}
    )
    GROUPS: ClassVar[tuple[str, ...]] = ("provider", "api_key_id")
    FILTERS: ClassVar[tuple[str, ...]] = ("provider", "api_key_id")

    @classmethod
    def parse_fields(cls, table: dict[str, Any], where: str, problem: Callable[[str, str], None]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        minimum = table.get("min_capture")
        if minimum is not None:
            if isinstance(minimum, bool) or not isinstance(minimum, int | float) or not 0 < minimum <= 1:
                problem(
                    f"{where}: min_capture", f"expected a fraction of the bill in (0, 1] such as 0.9, got {minimum!r}"
                )
            else:
                values["min_capture"] = float(minimum)
        missing = table.get("missing_keys", True)
        if not isinstance(missing, bool):
            problem(f"{where}: missing_keys", f"expected true or false, got {missing!r}")
        else:
            values["missing_keys"] = missing
        if minimum is None and missing is False:
            problem(f"{where}: min_capture", "set min_capture, or leave missing_keys on: this rule would check nothing")
        try:
            values["lookback"] = parse_duration(table.get("lookback", "3d"))
        except ValueError as error:
            problem(f"{where}: lookback", str(error))
        floor = table.get("min_billed_usd", 0.0)
        if isinstance(floor, bool) or not isinstance(floor, int | float) or floor < 0:
            problem(f"{where}: min_billed_usd", f"expected a number of dollars of at least 0, got {floor!r}")
        else:
            values["min_billed_usd"] = float(floor)
        allowed = table.get("allow_unobserved", [])
        if not isinstance(allowed, list) or not all(isinstance(key, str) and key for key in allowed):
            problem(f"{where}: allow_unobserved", "expected a list of key ids (the provider's or spendwatch's)")
        else:
            values["allow_unobserved"] = tuple(allowed)
        group_by = table.get("group_by")
        if group_by is not None and group_by not in cls.GROUPS:
            problem(f"{where}: group_by", f"expected provider or api_key_id, got {group_by!r}")
        filters = table.get("where", {})
        for column in filters if isinstance(filters, dict) else ():
            if column not in cls.FILTERS:
                problem(f"{where}: where.{column}", "a reconcile rule filters by provider or api_key_id")
        return values


KINDS: dict[str, type[Rule]] = {
    "budget": BudgetRule,
    "anomaly": AnomalyRule,
    "keys": KeysRule,
    "reconcile": ReconcileRule,
}


@dataclass
class RulesConfig:
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    notifiers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    daemon_notify: tuple[str, ...] = ()
    settle: timedelta = DEFAULT_SETTLE
    # `[billing.<provider>] keys`: the providers' key ids mapped to spendwatch's, per provider
    billed_keys: dict[str, dict[str, str]] = field(default_factory=dict)

    def of_scope(self, scope: str) -> list[Rule]:
        """The rules evaluated over this daemon's calls (`local`) or over the fleet's (`fleet`)."""
        return [rule for rule in self.rules if rule.scope == scope]


def mask_url(url: str) -> str:
    """A notifier URL with only its scheme and host left: credentials live in every other part."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***"
    host = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{'***@' if '@' in rest.split('/', 1)[0] else ''}{host}/***"


def parse_rules_config(document: dict[str, Any], path: Path) -> RulesConfig:
    """Every rules-related part of a loaded config file; raises `RulesConfigError` listing every problem."""
    problems: list[str] = []
    config = RulesConfig()

    def problem(where: str, message: str) -> None:
        problems.append(f"{path}: {where}: {message}")

    if "timezone" in document:
        try:
            config.timezone = ZoneInfo(str(document["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            problem("timezone", f'expected an IANA zone such as "Europe/Paris", got {document["timezone"]!r}')
    config.notifiers = _notifiers(document.get("notifiers", {}), problem)
    keys = document.get("keys", {})
    if isinstance(keys, dict) and all(isinstance(value, str) for value in keys.values()):
        config.keys = dict(keys)
    else:
        problem("keys", 'expected a table of key id = "display name"')
    daemon = document.get("daemon", {})
    if not isinstance(daemon, dict):
        problem("daemon", "expected a table with notify and settle")
        daemon = {}
    for key in daemon:
        if key not in ("notify", "settle"):
            problem(f"daemon.{key}", "unknown key; expected notify or settle")
    config.daemon_notify = _notify_list(daemon.get("notify", []), "daemon.notify", config.notifiers, problem)
    if "settle" in daemon:
        try:
            config.settle = parse_duration(daemon["settle"], allow_zero=True)
        except ValueError as error:
            problem("daemon.settle", str(error))
    rules = document.get("rules", [])
    if not isinstance(rules, list):
        problem("rules", "expected [[rules]] tables")
        rules = []
    seen: set[str] = set()
    for index, table in enumerate(rules, start=1):
        rule = _rule(table, index, config.notifiers, problem)
        if rule is None:
            continue
        if rule.name in seen:
            problem(f"rule {rule.name!r}: name", "used by another rule; names must be unique")
        seen.add(rule.name)
        config.rules.append(rule)
    if problems:
        raise RulesConfigError(problems)
    return config


def _notifiers(section: Any, problem) -> dict[str, tuple[str, ...]]:
    import apprise

    if not isinstance(section, dict):
        problem("notifiers", "expected a table of name = apprise URL (or a list of URLs)")
        return {}
    notifiers = {}
    for name, value in section.items():
        urls = [value] if isinstance(value, str) else value
        if not isinstance(urls, list) or not urls or not all(isinstance(url, str) for url in urls):
            problem(f"notifiers.{name}", "expected an apprise URL or a list of them")
            continue
        for url in urls:
            if not apprise.Apprise().add(url):
                problem(f"notifiers.{name}", f"apprise cannot use the URL {mask_url(url)}")
        notifiers[name] = tuple(urls)
    return notifiers


def _notify_list(value: Any, where: str, notifiers: dict[str, Any], problem) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        problem(where, "expected a list of notifier names")
        return ()
    for name in names:
        if name not in notifiers:
            known = ", ".join(sorted(notifiers)) or "none are defined"
            problem(where, f"no notifier named {name!r} in [notifiers] ({known})")
    return tuple(names)


def _rule(table: Any, index: int, notifiers: dict[str, Any], problem) -> Rule | None:
    if not isinstance(table, dict):
        problem(f"rules[{index}]", "expected a table")
        return None
    name = table.get("name")
    if not isinstance(name, str) or not name:
        problem(f"rules[{index}].name", "missing; every rule needs a unique name")
        name = f"rules[{index}]"
    where = f"rule {name!r}"
    kind = table.get("kind")
    rule_class = KINDS.get(kind) if isinstance(kind, str) else None
    if rule_class is None:
        problem(f"{where}: kind", f"expected budget, anomaly, keys or reconcile, got {kind!r}")
        return None
    for key in table:
        if key not in rule_class.KEYS:
            problem(f"{where}: {key}", f"unknown key; a {kind} rule takes {', '.join(sorted(rule_class.KEYS))}")
    values: dict[str, Any] = {"name": name, "kind": kind}
    try:
        values["every"] = parse_duration(table["every"]) if "every" in table else DEFAULT_EVERY
    except ValueError as error:
        problem(f"{where}: every", str(error))
    values.update(rule_class.parse_fields(table, where, problem))
    filters = table.get("where", {})
    if not isinstance(filters, dict):
        problem(f"{where}: where", 'expected a table such as { provider = "openai" }')
        filters = {}
    parsed_filters = []
    for column, allowed in filters.items():
        if column not in WHERE_COLUMNS:
            problem(f"{where}: where.{column}", f"unknown column; expected one of {', '.join(WHERE_COLUMNS)}")
            continue
        allowed = [allowed] if isinstance(allowed, str) else allowed
        if not isinstance(allowed, list) or not allowed or not all(isinstance(value, str) for value in allowed):
            problem(f"{where}: where.{column}", "expected a value or a list of values")
            continue
        parsed_filters.append((column, tuple(allowed)))
    values["where"] = tuple(parsed_filters)
    group_by = table.get("group_by", [])
    group_by = [group_by] if isinstance(group_by, str) else group_by
    if kind == "keys":
        group_by = []
    if not isinstance(group_by, list) or not all(isinstance(name, str) for name in group_by):
        problem(f"{where}: group_by", f"expected a group name or a list of them, got {group_by!r}")
        group_by = []
    for name in group_by:
        if group_expression(name) is None:
            expected = f"one of {', '.join(sorted(GROUP_COLUMNS))}, or tag.NAME"
            problem(f"{where}: group_by", f"expected {expected}, got {name!r}")
    values["group_by"] = tuple(group_by)
    scope = table.get("scope", "local")
    if scope not in SCOPES:
        problem(f"{where}: scope", f"expected local or fleet, got {scope!r}")
    elif scope == "fleet" and kind not in FLEET_KINDS:
        problem(f"{where}: scope", f"the fleet's rules are {' and '.join(FLEET_KINDS)} rules, not {kind}")
    else:
        values["scope"] = scope
    notify = _notify_list(table.get("notify", []), f"{where}: notify", notifiers, problem)
    if not notify:
        problem(f"{where}: notify", "name at least one notifier from [notifiers]")
    values["notify"] = notify
    try:
        return rule_class(**values)
    except TypeError:
        return None
