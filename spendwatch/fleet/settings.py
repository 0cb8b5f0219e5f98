"""`[fleet]` in the config file: where the shared table is, and how often this daemon writes to it.

```toml
[fleet]
catalog = "postgresql+psycopg://spendwatch@db.internal/spendwatch"   # or $SPENDWATCH_FLEET_CATALOG
warehouse = "s3://spend-data/warehouse"
table = "spendwatch.llm_calls"
```

The catalog URL and the S3 secret are credentials: they are never logged or shown (`masked`), and
they may come from the environment instead of the file — the catalog from `SPENDWATCH_FLEET_CATALOG`,
S3 from the AWS SDK's usual variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`), which mean what they
mean everywhere. Nothing heavy is imported here: the config is read by every command.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from spendwatch.durations import parse_duration
from spendwatch.errors import UserError

DEFAULT_TABLE = "spendwatch.llm_calls"
_DURATIONS = {
    # key: (default, what it is)
    "every": ("10s", "how often closed batches are appended"),
    "settle": ("1m", "how long after it arrived a call is appended"),
    "lease": ("15s", "how long the maintenance and fleet-rules lease lasts without renewal"),
    "maintain_every": ("5m", "how often the lease holder maintains the table"),
    "keep_snapshots": ("1h", "how long old snapshots (and the files only they use) are kept"),
}
_STRINGS = {
    "catalog": "the SQL catalog's SQLAlchemy URL, such as postgresql+psycopg://user@host/db",
    "warehouse": "where data files go, such as s3://bucket/prefix",
    "table": "namespace.table",
    "daemon": "this daemon's name in the fleet",
    "s3_endpoint": "an S3-compatible endpoint URL",
    "s3_region": "the S3 region",
    "s3_access_key_id": "the S3 access key id",
    "s3_secret_access_key": "the S3 secret access key",
}
KEYS = frozenset({*_DURATIONS, *_STRINGS, "retention"})
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}$")


class FleetConfigError(UserError):
    pass


@dataclass(frozen=True)
class FleetConfig:
    catalog: str = field(repr=False)  # may carry a password
    warehouse: str
    table: str = DEFAULT_TABLE
    daemon: str | None = None  # None: a name made once and kept in the database
    every: timedelta = timedelta(seconds=10)
    settle: timedelta = timedelta(minutes=1)
    lease: timedelta = timedelta(seconds=15)
    maintain_every: timedelta = timedelta(minutes=5)
    keep_snapshots: timedelta = timedelta(hours=1)
    retention: timedelta | None = None  # the shared table's own; None keeps every day
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = field(default=None, repr=False)
    s3_secret_access_key: str | None = field(default=None, repr=False)
    s3_session_token: str | None = field(default=None, repr=False)

    @property
    def namespace(self) -> str:
        return self.table.rsplit(".", 1)[0]

    @property
    def masked_catalog(self) -> str:
        """The catalog URL without its password: what logs and messages may show."""
        return mask_url(self.catalog)

    def s3_properties(self) -> dict[str, str]:
        """pyiceberg's FileIO properties for S3 (pyarrow's own S3 client)."""
        properties = {
            "s3.endpoint": self.s3_endpoint,
            "s3.region": self.s3_region,
            "s3.access-key-id": self.s3_access_key_id,
            "s3.secret-access-key": self.s3_secret_access_key,
            "s3.session-token": self.s3_session_token,
        }
        return {key: value for key, value in properties.items() if value}


def mask_url(url: str) -> str:
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", url)


def parse_fleet_config(section: Any, path: Path, environ: Mapping[str, str] | None = None) -> FleetConfig | None:
    """`[fleet]` of the config file at `path` (None: no section, no fleet), the environment filling in."""
    environ = os.environ if environ is None else environ
    if section is None:
        return None
    if not isinstance(section, dict):
        raise FleetConfigError(f"{path}: fleet: expected a table with catalog, warehouse and table, got {section!r}")
    for key in section:
        if key not in KEYS:
            raise FleetConfigError(f"{path}: fleet.{key}: unknown key; expected one of {', '.join(sorted(KEYS))}")
    values: dict[str, Any] = {}
    for key, what in _STRINGS.items():
        if key in section:
            value = section[key]
            if not isinstance(value, str) or not value.strip():
                raise FleetConfigError(f"{path}: fleet.{key}: expected a string ({what})")
            values[key] = value.strip()
    for key, (default, what) in _DURATIONS.items():
        try:
            values[key] = parse_duration(section.get(key, default))
        except ValueError as error:
            raise FleetConfigError(f"{path}: fleet.{key}: {error} ({what})") from None
    if "retention" in section:
        try:
            values["retention"] = parse_duration(section["retention"])
        except ValueError as error:
            raise FleetConfigError(
                f"{path}: fleet.retention: {error} (how long the shared table keeps a day)"
            ) from None
    values.setdefault("catalog", environ.get("SPENDWATCH_FLEET_CATALOG", "").strip())
    if not values["catalog"] or "://" not in values["catalog"]:
        raise FleetConfigError(
            f"{path}: fleet.catalog: expected {_STRINGS['catalog']} (or set SPENDWATCH_FLEET_CATALOG)"
        )
    if "warehouse" not in values:
        raise FleetConfigError(f"{path}: fleet.warehouse: missing; expected {_STRINGS['warehouse']}")
    table = values.get("table", DEFAULT_TABLE)
    if table.count(".") != 1 or not all(part.strip() for part in table.split(".")):
        raise FleetConfigError(f"{path}: fleet.table: expected namespace.table, such as {DEFAULT_TABLE}, got {table!r}")
    if "daemon" in values and not _NAME.match(values["daemon"]):
        raise FleetConfigError(
            f"{path}: fleet.daemon: expected up to 100 letters, digits and _ . : -, got {values['daemon']!r}"
        )
    if values["lease"] < timedelta(seconds=3):
        raise FleetConfigError(f"{path}: fleet.lease: expected at least 3s (it is renewed every third of it)")
    values.setdefault("s3_endpoint", environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL") or None)
    values.setdefault("s3_region", environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None)
    if "s3_access_key_id" not in values and environ.get("AWS_ACCESS_KEY_ID"):
        values["s3_access_key_id"] = environ["AWS_ACCESS_KEY_ID"]
        values["s3_secret_access_key"] = environ.get("AWS_SECRET_ACCESS_KEY")
        values["s3_session_token"] = environ.get("AWS_SESSION_TOKEN")
    if bool(values.get("s3_access_key_id")) != bool(values.get("s3_secret_access_key")):
        raise FleetConfigError(f"{path}: fleet.s3_secret_access_key: the access key id and the secret go together")
    return FleetConfig(**values)
