"""Settings: one declarative table, resolved as command-line flag > environment > config file > default.

The config file is TOML, written by hand, so it is a contract: a key it does not know or a value of the
wrong kind stops start-up with a message that names the file, the key and what was expected.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from spendwatch.collector.pricing import PriceOverride
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
    "fleet",
}
_BOOLEANS = {"true": True, "1": True, "on": True, "false": False, "0": False, "off": False}
_PRICE_RATES = {"input", "output", "cache_read", "cache_write"}


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
    max_queued_spans: int
    retention: timedelta | None
    prices: dict[str, PriceOverride]
    rules: RulesConfig
    keep_attributes: tuple[str, ...] = ()
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
    rules = parse_rules_config(document, values["config"])
    fleet = parse_fleet_config(document.get("fleet"), values["config"])
    if fleet is None:
        for rule in rules.rules:
            if rule.scope == "fleet":
                raise ConfigError(
                    f'{values["config"]}: rule {rule.name!r}: scope: "fleet" needs a [fleet] section (the shared table)'
                )
    return Config(
        **values,
        prices=parse_prices(document.get("prices", {}), values["config"]),
        rules=rules,
        keep_attributes=parse_attributes(document.get("attributes", {}), values["config"]),
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
            return parse_duration(value)
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


def parse_prices(section: Any, path: Path) -> dict[str, PriceOverride]:
    """`[prices]`: model = { input = USD per million tokens, output = ..., cache_read = ..., cache_write = ... }."""
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: prices: expected a table of models, got {section!r}")
    prices = {}
    for model, rates in section.items():
        where = f"{path}: prices.{model}"
        if not isinstance(rates, dict):
            raise ConfigError(f"{where}: expected a table such as {{ input = 0.5, output = 1.5 }}, got {rates!r}")
        for rate, value in rates.items():
            if rate not in _PRICE_RATES:
                raise ConfigError(f"{where}.{rate}: unknown rate; expected one of {', '.join(sorted(_PRICE_RATES))}")
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{where}.{rate}: expected USD per million tokens (a number >= 0), got {value!r}")
        for required in ("input", "output"):
            if required not in rates:
                raise ConfigError(f"{where}.{required}: missing; expected USD per million tokens")
        prices[model] = PriceOverride(**{rate: float(value) for rate, value in rates.items()})
    return prices


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
