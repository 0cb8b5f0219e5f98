"""The fleet's own tables in the catalog's database: the lease, and the fleet rules' alerts.

Every daemon reaches the catalog's database already (pyiceberg's SQL catalog), so what the fleet must
agree on lives there: who holds the lease, which fleet alerts were raised and how their delivery went.
SQLAlchemy Core, so that one definition serves PostgreSQL and SQLite. Times are stored in UTC without
a zone (both databases compare them alike); the lease's expiry is in seconds of the database's own
clock, so that the hosts' clocks never have to agree.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Connection, Engine

METADATA = MetaData()
LEASES = Table(
    "spendwatch_fleet_leases",
    METADATA,
    Column("name", String(200), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", Float, nullable=False),  # seconds, the database's clock
    Column("acquired_at", Float, nullable=False),
)
ALERTS = Table(
    "spendwatch_fleet_alerts",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule", String(200), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("group_by", String(100)),
    Column("group_value", String(1000), nullable=False),
    Column("window_start", DateTime, nullable=False),
    Column("window_end", DateTime),
    Column("threshold", Float, nullable=False),
    Column("value", Float),
    Column("limit_value", Float),
    Column("title", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("state", String(20), nullable=False),
    Column("raised_by", String(200), nullable=False),
    UniqueConstraint("rule", "group_value", "window_start", "threshold", name="spendwatch_fleet_alerts_once"),
)
DELIVERIES = Table(
    "spendwatch_fleet_alert_deliveries",
    METADATA,
    Column("alert_id", Integer, primary_key=True),
    Column("notifier", String(200), primary_key=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime),
    Column("delivered_at", DateTime),
    Column("gave_up_at", DateTime),
    Column("last_error", Text),
    Column("claimed_by", String(200)),
    Column("claimed_until", Float),  # the database's clock: a sender that died frees it after this
)


def create_tables(engine: Engine) -> None:
    """The fleet's tables, if missing; two daemons creating them at once is no error."""
    for attempt in range(3):
        try:
            METADATA.create_all(engine, checkfirst=True)
            return
        except Exception:
            if attempt == 2:
                raise
            time.sleep(0.2 * (attempt + 1))


def database_now(conn: Connection) -> float:
    """Seconds since the epoch on the database's clock."""
    dialect = conn.engine.dialect.name
    if dialect == "postgresql":
        return float(conn.execute(text("SELECT extract(epoch from clock_timestamp())")).scalar_one())
    if dialect == "sqlite":
        return float(conn.execute(text("SELECT (julianday('now') - 2440587.5) * 86400.0")).scalar_one())
    return time.time()


def stored_time(moment: datetime | None) -> datetime | None:
    """A time as these tables keep it: UTC, without a zone."""
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)


def loaded_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
