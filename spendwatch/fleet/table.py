"""The shared table: its catalog, its creation, and a schema that follows `llm_calls`.

The table holds what `llm_calls` shows on each daemon plus two columns of its own: `fleet_daemon` (which
daemon counted the call: with `trace_id` and `span_id`, a row's identity) and `fleet_host`. Its columns
are `llm_calls`' columns by name, every one optional: a daemon whose `llm_calls` has a column the table
lacks adds it (`evolve`: a new column is added, never renamed — the `llm_calls` contract), and a daemon
of an older version writes files without it, read as NULL. It is partitioned by the UTC day of
`start_time`, so a day's data is found, compacted or dropped without reading the others.

Table properties make concurrent writers safe and cheap: commits retry against the refreshed table
(pyiceberg validates a retried rewrite against what landed meanwhile), snapshot isolation for deletes
and overwrites (a concurrent append of other rows is no conflict; a concurrent rewrite of the same
files is), old metadata files deleted after each commit.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import TYPE_CHECKING, Any

from spendwatch.fleet.settings import FleetConfig, mask_url

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.table import Table

logger = logging.getLogger("spendwatch.fleet")

DAEMON_COLUMN = "fleet_daemon"
HOST_COLUMN = "fleet_host"
PARTITION_NAME = "start_day"
TABLE_PROPERTIES = {
    "write.delete.isolation-level": "snapshot",
    "write.update.isolation-level": "snapshot",
    "commit.retry.num-retries": "30",
    "commit.retry.min-wait-ms": "20",
    "commit.retry.max-wait-ms": "2000",
    "commit.retry.total-timeout-ms": "120000",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
    "write.parquet.compression-codec": "zstd",
}
SEQ_PREFIX = "spendwatch.fleet.seq."  # + daemon: the last batch of that daemon the table holds
SUMMARY_DAEMON = "spendwatch.daemon"
SUMMARY_SEQ = "spendwatch.seq"


class FleetUnavailable(Exception):
    """The fleet's libraries are not installed, or its catalog or storage cannot be reached."""


def seq_property(daemon: str) -> str:
    return SEQ_PREFIX + daemon


def host_name() -> str:
    return socket.gethostname()


def open_catalog(settings: FleetConfig) -> SqlCatalog:
    """The SQL catalog of `[fleet]`; its tables are created on first use (by whichever daemon is first)."""
    try:
        from pyiceberg.catalog.sql import SqlCatalog
    except ImportError as error:
        raise FleetUnavailable(
            f"[fleet] needs pyiceberg, pyarrow and SQLAlchemy: pip install 'spendwatch[fleet]' ({error})"
        ) from None
    properties = {"uri": settings.catalog, "warehouse": settings.warehouse, **settings.s3_properties()}
    for attempt in range(3):
        try:
            return SqlCatalog("spendwatch", **properties)
        except Exception as error:  # two daemons creating the catalog's tables at once: the loser retries
            if attempt == 2:
                raise FleetUnavailable(
                    f"the catalog {settings.masked_catalog} cannot be used: {short_error(error)}"
                ) from None
    raise AssertionError("not reached")


def load_table(catalog: SqlCatalog, settings: FleetConfig) -> Table:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return catalog.load_table(settings.table)
    except NoSuchTableError:
        raise FleetUnavailable(f"the table {settings.table} does not exist yet (no daemon has written to it)") from None


def load_or_create(catalog: SqlCatalog, settings: FleetConfig, schema: pa.Schema) -> Table:
    """The shared table, created (partitioned by day) with `schema` if no daemon has created it yet."""
    from pyiceberg.exceptions import (
        CommitFailedException,
        NamespaceAlreadyExistsError,
        NoSuchTableError,
        TableAlreadyExistsError,
    )
    from pyiceberg.transforms import DayTransform

    try:
        return catalog.load_table(settings.table)
    except NoSuchTableError:
        pass
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace_if_not_exists(settings.namespace)
    try:
        transaction = catalog.create_table_transaction(settings.table, schema=schema, properties=TABLE_PROPERTIES)
        with transaction.update_spec() as spec:
            spec.add_field("start_time", DayTransform(), PARTITION_NAME)
        transaction.commit_transaction()
        logger.info("fleet: created the table %s, partitioned by day", settings.table)
    except (TableAlreadyExistsError, CommitFailedException):
        pass  # another daemon was first (pyiceberg says so either way, depending on when it finds out)
    return catalog.load_table(settings.table)


def evolve(table: Table, schema: pa.Schema) -> Table:
    """Add the columns of `schema` that the table lacks (nothing is renamed or dropped); the table after."""
    known = {field.name for field in table.schema().fields}
    missing = [name for name in schema.names if name not in known]
    if not missing:
        return table
    from pyiceberg.exceptions import CommitFailedException

    for _ in range(10):
        try:
            with table.update_schema() as update:
                update.union_by_name(schema)
            logger.info("fleet: added the columns %s to %s", ", ".join(missing), ".".join(table.name()))
            return table
        except CommitFailedException:  # another daemon changed the table meanwhile
            table.refresh()
    raise FleetUnavailable("the table's schema could not be updated: too many concurrent changes")


def arrow_schema_of(table: Table) -> pa.Schema:
    from pyiceberg.io.pyarrow import schema_to_pyarrow

    return schema_to_pyarrow(table.schema(), include_field_ids=False)


def filesystem(settings: FleetConfig, location: str) -> tuple[Any, str]:
    """A pyarrow filesystem for the warehouse at `location`, and the scheme its paths drop."""
    import pyarrow.fs as pafs

    scheme = location.split("://", 1)[0] if "://" in location else "file"
    if scheme in ("s3", "s3a", "s3n"):
        endpoint = settings.s3_endpoint
        options: dict[str, Any] = {
            "region": settings.s3_region or "us-east-1",
            "access_key": settings.s3_access_key_id,
            "secret_key": settings.s3_secret_access_key,
            "session_token": settings.s3_session_token,
        }
        if endpoint:
            options["endpoint_override"] = endpoint
            options["scheme"] = "https" if endpoint.startswith("https") else "http"
        return pafs.S3FileSystem(**{key: value for key, value in options.items() if value}), scheme
    if scheme == "file":
        return pafs.LocalFileSystem(), scheme
    raise FleetUnavailable(f"the warehouse scheme {scheme}:// is not supported: s3:// or file://")


def strip_scheme(path: str) -> str:
    """`s3://bucket/key` -> `bucket/key`, `file:///tmp/x` -> `/tmp/x`: how pyarrow's filesystems name files."""
    if path.startswith("file://"):
        return path.removeprefix("file://")
    return path.split("://", 1)[1] if "://" in path else path


def short_error(error: BaseException) -> str:
    """An error's first line, credentials in URLs masked: what a log line or a status field shows."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return mask_url(text)[:300]
