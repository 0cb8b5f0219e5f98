"""Settings: one declarative table, resolved as command-line flag > environment > config file > default.

The config file is TOML, written by hand, so it is a contract: a key it does not know or a value of the
wrong kind stops start-up with a message that names the file, the key and what was expected.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from spendwatch.billing.config import BillingConfig, parse_billing_config
from spendwatch.collector import price_data
from spendwatch.collector.attribution import DEFAULT_SOURCES, DIMENSIONS, HASH_KEY_ENV, AttributionConfig
from spendwatch.collector.discounts import DiscountRule, TokenRates
from spendwatch.collector.forward import PROTOCOLS, Upstream
from spendwatch.collector.pricing import PriceOverride, Pricer
from spendwatch.durations import parse_duration
from spendwatch.errors import UserError
from spendwatch.fleet.settings import FleetConfig, parse_fleet_config
from spendwatch.rules.config import RulesConfig, parse_rules_config


def _xdg(variable: str, fallback: str) -> Path:
    return Path(os.environ.get(variable) or Path.home() / fallback)


def default_db_path() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share") / "spendwatch" / "spendwatch.duckdb"


def default_config_path() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "spendwatch" / "spendwatch.toml"


@dataclass(frozen=True)
class Setting:
    name: str
    env: str | None
    config_key: str | None
    default: Callable[[], Any]
    kind: type
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("db", "SPENDWATCH_DB", None, default_db_path, Path, "the DuckDB file"),
    Setting("config", "SPENDWATCH_CONFIG", None, default_config_path, Path, "the TOML config file (optional)"),
    Setting("host", "SPENDWATCH_HOST", "host", lambda: "127.0.0.1", str, "address to listen on"),
    Setting("http_port", "SPENDWATCH_HTTP_PORT", "http_port", lambda: 4318, int, "OTLP/HTTP port"),
    Setting("grpc_port", "SPENDWATCH_GRPC_PORT", "grpc_port", lambda: 4317, int, "OTLP/gRPC port"),
    Setting("ui_port", "SPENDWATCH_UI_PORT", "ui_port", lambda: 4320, int, "the dashboard's port on 127.0.0.1"),
    Setting("ui", "SPENDWATCH_UI", "ui", lambda: True, bool, "serve the dashboard"),
    Setting("ingest_token", "SPENDWATCH_INGEST_TOKEN", None, lambda: None, str, "the token exporters must send"),
    Setting(
        "metrics_endpoint",
        "SPENDWATCH_METRICS_ENDPOINT",
        "metrics_endpoint",
        lambda: None,
        str,
        "an OTLP/HTTP endpoint for the daemon's own counters",
    ),
    Setting(
        "metrics_port",
        "SPENDWATCH_METRICS_PORT",
        "metrics_port",
        lambda: None,
        int,
        "a fixed port on 127.0.0.1 for /metrics, beside the read API's (0: any free port)",
    ),
    Setting(
        "metrics_token",
        "SPENDWATCH_METRICS_TOKEN",
        None,
        lambda: None,
        str,
        "a bearer token /metrics accepts besides the read token, for a scraper's config",
    ),
    Setting(
        "metrics_top",
        "SPENDWATCH_METRICS_TOP",
        "metrics_top",
        lambda: 25,
        int,
        "values shown per label of the spend metrics before the rest are [other]",
    ),
    Setting(
        "metrics_max_series",
        "SPENDWATCH_METRICS_MAX_SERIES",
        "metrics_max_series",
        lambda: 500,
        int,
        "label sets per spend metric before the rest count under [other]",
    ),
    Setting(
        "metrics_scrape_interval",
        "SPENDWATCH_METRICS_SCRAPE_INTERVAL",
        "metrics_scrape_interval",
        lambda: timedelta(minutes=1),
        timedelta,
        "how often Prometheus scrapes /metrics: a new series shows 0 that long first, so increase() counts it",
    ),
    Setting(
        "max_queued_spans",
        "SPENDWATCH_MAX_QUEUED_SPANS",
        "max_queued_spans",
        lambda: 50_000,
        int,
        "spans waiting for the writer before exporters are asked to retry",
    ),
    Setting(
        "retention",
        "SPENDWATCH_RETENTION",
        "retention",
        lambda: None,
        timedelta,
        'how long calls are kept, such as "400d"',
    ),
)
_FILE_KEYS = {setting.config_key for setting in SETTINGS if setting.config_key} | {
    "prices",
    "timezone",
    "notifiers",
    "rules",
    "keys",
    "daemon",
    "attributes",
    "attribution",
    "forward",
    "billing",
    "fleet",
}
_BOOLEANS = {"true": True, "1": True, "on": True, "false": False, "0": False, "off": False}
_PRICE_RATES = {"input", "output", "cache_read", "cache_write"}
_PRICES_KEYS = ("url", "refresh", "models", "discounts")  # in [prices]; any other table there is a model
_RULE_MATCH = ("name", "provider", "api_key_id", "model", "from", "until")
_RULE_EFFECTS = ("discount", "markup", "rates")
PRICES_URL_ENV = "SPENDWATCH_PRICES_URL"


class ConfigError(UserError):
    """A user's mistake in the config: one line, exit code 2."""


@dataclass
class Config:
    db: Path
    config: Path
    host: str
    http_port: int
    grpc_port: int
    ui_port: int
    ui: bool
    ingest_token: str | None
    metrics_endpoint: str | None
    metrics_port: int | None
    metrics_token: str | None
    metrics_top: int
    metrics_max_series: int
    metrics_scrape_interval: timedelta
    max_queued_spans: int
    retention: timedelta | None
    prices: dict[str, PriceOverride]
    rules: RulesConfig
    keep_attributes: tuple[str, ...] = ()
    attribution: AttributionConfig = field(default_factory=AttributionConfig)
    forward: tuple[Upstream, ...] = ()
    billing: BillingConfig = field(default_factory=BillingConfig)
    discounts: tuple[DiscountRule, ...] = ()
    prices_url: str | None = price_data.DEFAULT_URL  # where fresh price data comes from; None: bundled only
    prices_refresh: timedelta = timedelta(seconds=price_data.DEFAULT_REFRESH_SECONDS)

    def pricer(self) -> Pricer:
        """A pricer with this config's own models and discount rules."""
        return Pricer(self.prices, self.discounts)

    fleet: FleetConfig | None = None


def resolve(flags: dict[str, Any]) -> Config:
    """Every setting from its flag, its environment variable, the config file, or its default."""
    values: dict[str, Any] = {}
    for setting in SETTINGS[:2]:  # where the database and the config file are: not from the file itself
        values[setting.name] = _from_flag_or_env(setting, flags)
    config_path = values["config"] or default_config_path()
    values["config"] = Path(config_path)
    document = load_file(values["config"])
    for setting in SETTINGS[2:]:
        value = _from_flag_or_env(setting, flags)
        if value is None and setting.config_key in document:
            value = _typed(document[setting.config_key], setting, f"{values['config']}: {setting.config_key}")
        values[setting.name] = value
    for setting in SETTINGS:
        if values[setting.name] is None:
            values[setting.name] = setting.default()
    values["db"] = Path(values["db"]).expanduser()
    billing = parse_billing_config(document.get("billing", {}), values["config"])
    rules = parse_rules_config(document, values["config"])
    rules.billed_keys = billing.key_map()  # the reconcile rules map the providers' keys as `reconcile` does
    fleet = parse_fleet_config(document.get("fleet"), values["config"])
    if fleet is None:
        for rule in rules.rules:
            if rule.scope == "fleet":
                raise ConfigError(
                    f'{values["config"]}: rule {rule.name!r}: scope: "fleet" needs a [fleet] section (the shared table)'
                )
    prices = parse_prices_section(document.get("prices", {}), values["config"])
    return Config(
        **values,
        prices=prices.models,
        discounts=prices.discounts,
        prices_url=prices.url,
        prices_refresh=prices.refresh,
        rules=rules,
        keep_attributes=parse_attributes(document.get("attributes", {}), values["config"]),
        attribution=parse_attribution(document.get("attribution", {}), values["config"]),
        forward=parse_forward(document.get("forward", []), values["config"]),
        billing=billing,
        fleet=fleet,
    )


def _from_flag_or_env(setting: Setting, flags: dict[str, Any]) -> Any:
    value = flags.get(setting.name)
    if value is not None:
        return value
    if setting.env and os.environ.get(setting.env):
        return _typed(os.environ[setting.env], setting, setting.env)
    return None


def _typed(value: Any, setting: Setting, where: str) -> Any:
    if setting.kind is timedelta:
        try:
            return parse_duration(value, allow_zero=setting.name == "metrics_scrape_interval")
        except ValueError as error:
            raise ConfigError(f"{where}: {error} ({setting.help})") from None
    if setting.kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _BOOLEANS:
            return _BOOLEANS[value.lower()]
        raise ConfigError(f"{where}: expected true or false ({setting.help}), got {value!r}")
    if setting.kind is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
            raise ConfigError(f"{where}: expected a whole number ({setting.help}), got {value!r}")
        return int(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string ({setting.help}), got {value!r}")
    return setting.kind(value)


def load_file(path: Path) -> dict[str, Any]:
    """The config file's contents; an absent file is an empty config."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot be read: {error}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    for key in document:
        if key not in _FILE_KEYS:
            raise ConfigError(f"{path}: {key}: unknown key; expected one of {', '.join(sorted(_FILE_KEYS))}")
    return document


@dataclass(frozen=True)
class PricesSection:
    models: dict[str, PriceOverride]
    discounts: tuple[DiscountRule, ...]
    url: str | None
    refresh: timedelta


def parse_prices_section(section: Any, path: Path) -> PricesSection:
    """`[prices]`: where fresh price data comes from (`url`, `refresh`), the config's own models
    (`[prices.models."name"]`, or, as before, `[prices."name"]`) and what is paid (`[[prices.discounts]]`)."""
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: prices: expected a table (url, refresh, models, discounts), got {section!r}")
    url = section.get("url", price_data.DEFAULT_URL)
    if not isinstance(url, str) or not (url == "off" or url.startswith(("http://", "https://"))):
        raise ConfigError(
            f'{path}: prices.url: expected an http(s) URL of a genai-prices data file or "off", got {url!r}'
        )
    if os.environ.get(PRICES_URL_ENV):
        url = os.environ[PRICES_URL_ENV]
        if not (url == "off" or url.startswith(("http://", "https://"))):
            raise ConfigError(f'{PRICES_URL_ENV}: expected an http(s) URL or "off", got {url!r}')
    refresh = section.get("refresh", "1h")
    try:
        refresh = parse_duration(refresh)
    except (ValueError, TypeError) as error:
        raise ConfigError(f'{path}: prices.refresh: {error} (how often price data is fetched, such as "1h")') from None
    if refresh.total_seconds() < 1:
        raise ConfigError(f"{path}: prices.refresh: expected at least a second, got {section.get('refresh')!r}")
    legacy = {key: value for key, value in section.items() if key not in _PRICES_KEYS}
    for key, value in legacy.items():
        if not isinstance(value, dict):
            raise ConfigError(
                f"{path}: prices.{key}: unknown key; expected one of {', '.join(_PRICES_KEYS)}, "
                "or a model's table such as { input = 0.5, output = 1.5 }"
            )
    models_section = section.get("models", {})
    if not isinstance(models_section, dict):
        raise ConfigError(f"{path}: prices.models: expected a table of models, got {models_section!r}")
    models = parse_prices(legacy, path, "prices")
    models.update(parse_prices(models_section, path, "prices.models"))
    rules = section.get("discounts", [])
    if not isinstance(rules, list) or not all(isinstance(rule, dict) for rule in rules):
        raise ConfigError(
            f"{path}: prices.discounts: expected an array of tables ([[prices.discounts]]), got {rules!r}"
        )
    discounts = tuple(
        _discount_rule(rule, f"{path}: prices.discounts[{index}]", index) for index, rule in enumerate(rules)
    )
    return PricesSection(models, discounts, None if url == "off" else url, refresh)


def parse_prices(section: Any, path: Path, where_key: str = "prices") -> dict[str, PriceOverride]:
    """Models of the config's own: model = { input = USD per million tokens, output = ..., cache_read = ...,
    cache_write = ... }."""
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: {where_key}: expected a table of models, got {section!r}")
    prices = {}
    for model, rates in section.items():
        prices[model] = _rates(rates, f"{path}: {where_key}.{model}", require=True)
    return prices


def _rates(rates: Any, where: str, *, require: bool) -> TokenRates:
    if not isinstance(rates, dict):
        raise ConfigError(f"{where}: expected a table such as {{ input = 0.5, output = 1.5 }}, got {rates!r}")
    for rate, value in rates.items():
        if rate not in _PRICE_RATES:
            raise ConfigError(f"{where}.{rate}: unknown rate; expected one of {', '.join(sorted(_PRICE_RATES))}")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{where}.{rate}: expected USD per million tokens (a number >= 0), got {value!r}")
    for required in ("input", "output"):
        if required not in rates and require:
            raise ConfigError(f"{where}.{required}: missing; expected USD per million tokens")
    return TokenRates(**{rate: float(value) for rate, value in rates.items()})


def _discount_rule(rule: dict[str, Any], where: str, index: int) -> DiscountRule:
    """One `[[prices.discounts]]`: what it matches (provider, api_key_id, model, from, until) and one effect."""
    for key in rule:
        if key not in _RULE_MATCH + _RULE_EFFECTS:
            raise ConfigError(f"{where}.{key}: unknown key; expected one of {', '.join(_RULE_MATCH + _RULE_EFFECTS)}")
    for key in ("name", "provider", "api_key_id", "model"):
        if key in rule and (not isinstance(rule[key], str) or not rule[key].strip()):
            raise ConfigError(f"{where}.{key}: expected a non-empty string, got {rule[key]!r}")
    effects = [key for key in _RULE_EFFECTS if key in rule]
    if len(effects) != 1:
        raise ConfigError(
            f"{where}: expected exactly one of discount (a fraction off list price), markup (a fraction on top) "
            f"or rates (committed USD per million tokens), got {', '.join(effects) or 'none'}"
        )
    days = {}
    for key in ("from", "until"):
        value = rule.get(key)
        if value is not None and not (isinstance(value, date) and not isinstance(value, datetime)):
            raise ConfigError(
                f"{where}.{key}: expected a date such as 2026-01-01 (TOML date, no quotes), got {value!r}"
            )
        days[key] = value
    if days["from"] and days["until"] and days["until"] < days["from"]:
        raise ConfigError(f"{where}.until: {days['until']} is before from ({days['from']})")
    discount = markup = None
    rates = None
    if "discount" in rule:
        discount = rule["discount"]
        if isinstance(discount, bool) or not isinstance(discount, int | float) or not 0 <= discount <= 1:
            raise ConfigError(
                f"{where}.discount: expected a fraction of list price from 0 to 1 (0.15 is 15% off), got {discount!r}"
            )
    elif "markup" in rule:
        markup = rule["markup"]
        if isinstance(markup, bool) or not isinstance(markup, int | float) or not 0 <= markup <= 10:
            raise ConfigError(
                f"{where}.markup: expected a fraction of list price from 0 to 10 (0.05 is 5% on top), got {markup!r}"
            )
    else:
        rates = _rates(rule["rates"], f"{where}.rates", require=True)
    return DiscountRule(
        name=rule.get("name") or f"prices.discounts[{index}]",
        provider=rule.get("provider"),
        api_key_id=rule.get("api_key_id"),
        model=rule.get("model"),
        starts=days["from"],
        ends=days["until"],
        discount=None if discount is None else float(discount),
        markup=None if markup is None else float(markup),
        rates=rates,
    )


def parse_attributes(section: Any, path: Path) -> tuple[str, ...]:
    """`[attributes]`: `keep = ["app.tenant", "myco.*"]`, attribute names stored beside the built-in allow-list."""
    if not isinstance(section, dict):
        raise ConfigError(f'{path}: attributes: expected a table such as {{ keep = ["app.*"] }}, got {section!r}')
    for key in section:
        if key != "keep":
            raise ConfigError(f"{path}: attributes.{key}: unknown key; expected keep")
    keep = section.get("keep", [])
    if not isinstance(keep, list) or not all(isinstance(name, str) and name.strip() for name in keep):
        raise ConfigError(f"{path}: attributes.keep: expected a list of attribute names or patterns, got {keep!r}")
    return tuple(name.strip() for name in keep)


def parse_attribution(section: Any, path: Path) -> AttributionConfig:
    """`[attribution]`: which span attributes name each dimension (`user = ["enduser.id", "app.user"]`), and
    `hash_users = true` to store end-user ids as keyed hashes under $SPENDWATCH_USER_HASH_KEY."""
    if not isinstance(section, dict):
        raise ConfigError(f'{path}: attribution: expected a table such as {{ user = ["enduser.id"] }}, got {section!r}')
    sources = dict(DEFAULT_SOURCES)
    hash_key = None
    for key, value in section.items():
        where = f"{path}: attribution.{key}"
        if key == "hash_users":
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: expected true or false, got {value!r}")
            if value:
                secret = os.environ.get(HASH_KEY_ENV, "")
                if len(secret) < 16:
                    raise ConfigError(f"{where}: needs {HASH_KEY_ENV} set to a secret of at least 16 characters")
                hash_key = secret.encode()
        elif key in DIMENSIONS:
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
                raise ConfigError(f"{where}: expected an attribute name or a list of them, got {value!r}")
            sources[key] = tuple(names)
        else:
            raise ConfigError(f"{where}: unknown key; expected one of {', '.join((*DIMENSIONS, 'hash_users'))}")
    return AttributionConfig(sources=sources, hash_key=hash_key)


_FORWARD_KEYS = {"endpoint", "protocol", "headers", "strip", "max_queue_mb", "timeout"}


def parse_forward(section: Any, path: Path) -> tuple[Upstream, ...]:
    """`[[forward]]`: endpoint = "http://collector:4318", protocol = "http/protobuf" | "grpc",
    headers = { name = "value" }, strip = true, max_queue_mb = 256, timeout = "10s"."""
    if not isinstance(section, list) or not all(isinstance(table, dict) for table in section):
        raise ConfigError(f'{path}: forward: expected [[forward]] tables such as endpoint = "http://host:4318"')
    upstreams = []
    for index, table in enumerate(section):
        where = f"{path}: forward[{index}]"
        for key in table:
            if key not in _FORWARD_KEYS:
                raise ConfigError(f"{where}.{key}: unknown key; expected one of {', '.join(sorted(_FORWARD_KEYS))}")
        endpoint, protocol = table.get("endpoint"), table.get("protocol", "http/protobuf")
        if protocol not in PROTOCOLS:
            raise ConfigError(f"{where}.protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        schemes = ("http://", "https://")
        if not isinstance(endpoint, str) or not (endpoint.startswith(schemes) or (protocol == "grpc" and endpoint)):
            raise ConfigError(f"{where}.endpoint: expected a URL such as http://collector:4318, got {endpoint!r}")
        headers = table.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(value, str) for value in headers.values()):
            raise ConfigError(f'{where}.headers: expected a table of strings such as {{ authorization = "..." }}')
        strip = table.get("strip", True)
        if not isinstance(strip, bool):
            raise ConfigError(f"{where}.strip: expected true or false, got {strip!r}")
        size = table.get("max_queue_mb", 256)
        if isinstance(size, bool) or not isinstance(size, int | float) or size <= 0:
            raise ConfigError(f"{where}.max_queue_mb: expected a number of megabytes above 0, got {size!r}")
        try:
            timeout = parse_duration(table.get("timeout", "10s"))
        except (ValueError, TypeError) as error:
            raise ConfigError(f"{where}.timeout: {error}") from None
        upstreams.append(
            Upstream(
                endpoint=endpoint,
                protocol=protocol,
                headers=tuple((str(name), value) for name, value in headers.items()),
                strip=strip,
                max_queue_bytes=int(size * 1024 * 1024),
                timeout=timeout.total_seconds(),
            )
        )
    return tuple(upstreams)
