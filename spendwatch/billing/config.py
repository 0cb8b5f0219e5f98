"""The `[billing]` section: which providers' bills to import, with which admin key, from where, how often.

An admin key can read (and at OpenAI and Anthropic, change) a whole organisation, so it is handled as
what it is: taken from the environment first (`OPENAI_ADMIN_KEY`, `ANTHROPIC_ADMIN_KEY`), else from the
config file — which is then refused, in one line naming it, when anyone but its owner can read or write
it (someone who can write it can point `base_url` elsewhere and collect the key). Once read, the key is
a `Secret`, whose `repr` and `str` are a mask, so no log line, error or status can carry it by accident;
nothing stores it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from spendwatch.durations import parse_duration
from spendwatch.errors import UserError


class BillingConfigError(UserError):
    """A mistake in `[billing]`: one line naming the file, the key and what was expected."""


class Secret:
    """A credential: shown as a mask everywhere; `reveal()` is for the one header that sends it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class ProviderSpec:
    """What spendwatch knows of one provider's admin API: where it is and where its key usually lives."""

    name: str
    env: tuple[str, ...]
    base_url: str


PROVIDERS = {
    "openai": ProviderSpec("openai", ("OPENAI_ADMIN_KEY",), "https://api.openai.com/v1"),
    "anthropic": ProviderSpec(
        "anthropic", ("ANTHROPIC_ADMIN_KEY", "ANTHROPIC_ADMIN_API_KEY"), "https://api.anthropic.com"
    ),
}
PROVIDER_KEYS = {"admin_key", "base_url", "keys"}
SECTION_KEYS = {"every", "since", *PROVIDERS}
DEFAULT_EVERY = timedelta(days=1)
DEFAULT_SINCE = timedelta(days=30)
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class ProviderBilling:
    name: str
    admin_key: Secret
    base_url: str
    key_source: str  # where the key came from, for messages: an environment variable or the file's key
    keys: dict[str, str] = field(default_factory=dict)  # provider key id -> spendwatch key id


@dataclass(frozen=True)
class BillingConfig:
    providers: tuple[ProviderBilling, ...] = ()  # those with an admin key: their bills are imported
    every: timedelta = DEFAULT_EVERY
    since: timedelta = DEFAULT_SINCE
    # Per provider, the config's explicit `provider key id -> spendwatch key id`, with or without an admin key
    # here: the CLI reconciles what a daemon elsewhere imported.
    keys: dict[str, dict[str, str]] = field(default_factory=dict)

    def key_map(self) -> dict[str, dict[str, str]]:
        return {name: dict(keys) for name, keys in self.keys.items() if keys}

    def provider(self, name: str) -> ProviderBilling | None:
        return next((provider for provider in self.providers if provider.name == name), None)


def parse_billing_config(section: Any, path: Path, environ: Mapping[str, str] | None = None) -> BillingConfig:
    """`[billing]` from a loaded config file, with admin keys from the environment first."""
    environ = os.environ if environ is None else environ
    if not isinstance(section, dict):
        raise BillingConfigError(f"{path}: billing: expected a table such as [billing.openai]")
    for key in section:
        if key not in SECTION_KEYS:
            raise BillingConfigError(
                f"{path}: billing.{key}: unknown key; expected one of {', '.join(sorted(SECTION_KEYS))}"
            )
    values: dict[str, Any] = {}
    for key in ("every", "since"):
        if key in section:
            try:
                values[key] = parse_duration(section[key])
            except ValueError as error:
                raise BillingConfigError(f"{path}: billing.{key}: {error}") from None
    holds_a_key = any(isinstance(section.get(name), dict) and "admin_key" in section[name] for name in PROVIDERS)
    if holds_a_key:
        _refuse_if_shared(path)
    providers = []
    key_maps = {}
    for name, spec in PROVIDERS.items():
        table = section.get(name, {})
        if not isinstance(table, dict):
            raise BillingConfigError(f"{path}: billing.{name}: expected a table with admin_key, base_url, keys")
        provider, key_maps[name] = _provider(spec, table, path, environ)
        if provider is not None:
            providers.append(provider)
    return BillingConfig(providers=tuple(providers), keys=key_maps, **values)


def _provider(
    spec: ProviderSpec, table: dict[str, Any], path: Path, environ: Mapping[str, str]
) -> tuple[ProviderBilling | None, dict[str, str]]:
    where = f"{path}: billing.{spec.name}"
    for key in table:
        if key not in PROVIDER_KEYS:
            raise BillingConfigError(f"{where}.{key}: unknown key; expected one of {', '.join(sorted(PROVIDER_KEYS))}")
    base_url = table.get("base_url", spec.base_url)
    if not isinstance(base_url, str) or not base_url.startswith(("https://", "http://")):
        raise BillingConfigError(f"{where}.base_url: expected an http(s) URL such as {spec.base_url!r}")
    keys = table.get("keys", {})
    if not isinstance(keys, dict) or not all(
        isinstance(value, str) and _KEY_ID.match(value) for value in keys.values()
    ):
        raise BillingConfigError(
            f'{where}.keys: expected a table of provider key id = "spendwatch key id" (16 hex digits, '
            "as `spendwatch keys id` prints)"
        )
    seen: dict[str, str] = {}
    for provider_key, key_id in keys.items():
        if key_id in seen:
            raise BillingConfigError(
                f"{where}.keys: {key_id} is mapped from both {seen[key_id]} and {provider_key}; a key is one key"
            )
        seen[key_id] = provider_key
    admin_key, source = None, ""
    for variable in spec.env:
        if environ.get(variable, "").strip():
            admin_key, source = environ[variable].strip(), variable
            break
    if admin_key is None and "admin_key" in table:
        value = table["admin_key"]
        if not isinstance(value, str) or not value.strip():
            raise BillingConfigError(f"{where}.admin_key: expected the admin key as a string")
        admin_key, source = value.strip(), f"billing.{spec.name}.admin_key in {path}"
    if admin_key is None:
        return None, dict(keys)  # this provider's bill is not imported here
    return ProviderBilling(spec.name, Secret(admin_key), base_url.rstrip("/"), source, dict(keys)), dict(keys)


def _refuse_if_shared(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BillingConfigError(
            f"{path}: holds an admin key and can be read or changed by others (mode {stat.S_IMODE(mode):04o}); "
            f"run `chmod 600 {path}` or set the key in the environment instead"
        )
