"""The DuckDB file: opening it safely, and writing batches of calls exactly once.

Batches go through the Appender into a connection-local staging table, then one
`INSERT ... SELECT DISTINCT ON (trace_id, span_id) ... WHERE NOT EXISTS` moves the spans not stored yet
into `llm_call_spans` inside the same transaction: an exporter's retry of a batch we already stored (or
two copies of a span in one batch) is skipped row by row. The table has no key to enforce that (an index
cost more than the data, see migration m004): a span's copies carry the same start time, so the check
looks only at the stored spans that started within `SAME_CALL_HORIZON` of the batch, which DuckDB finds
from its per-row-group min/max without reading the rest — the same window the supersede step reads.
The Appender is ~250x faster than `executemany`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from spendwatch.collector.migrations import SUPERSEDED_SQL, migrate

# The order of the values in a row handed to `Store.write`; times are nanoseconds since the epoch.
ROW_COLUMNS: tuple[tuple[str, str], ...] = (
    ("trace_id", "VARCHAR"),
    ("span_id", "VARCHAR"),
    ("parent_span_id", "VARCHAR"),
    ("start_ns", "BIGINT"),
    ("end_ns", "BIGINT"),
    ("service_name", "VARCHAR"),
    ("provider", "VARCHAR"),
    ("operation", "VARCHAR"),
    ("request_model", "VARCHAR"),
    ("response_model", "VARCHAR"),
    ("response_id", "VARCHAR"),
    ("streaming", "BOOLEAN"),
    ("input_tokens", "BIGINT"),
    ("output_tokens", "BIGINT"),
    ("cache_read_tokens", "BIGINT"),
    ("cache_write_tokens", "BIGINT"),
    ("reasoning_tokens", "BIGINT"),
    ("usage_estimated", "BOOLEAN"),
    ("cost_usd", "DOUBLE"),
    ("api_key_id", "VARCHAR"),
    ("api_key_hint", "VARCHAR"),
    ("status_code", "INTEGER"),
    ("error_type", "VARCHAR"),
    ("finish_reasons", "VARCHAR[]"),
    ("server_address", "VARCHAR"),
    ("attributes", "VARCHAR"),
    ("instrumentation_scope", "VARCHAR"),
    ("from_spendwatch", "BOOLEAN"),
    ("fees_usd", "DOUBLE"),  # optional: a row may end before it (migration m010_usage_fees)
)

_STAGING = "_incoming_spans"
MEMORY_LIMIT = "2GB"
# The spans of one call (an SDK's span and ours inside it) start within this of each other: the writer
# looks this far back from a batch for spans it supersedes or is superseded by, which keeps the cost of
# a commit independent of the table's size.
SAME_CALL_HORIZON = timedelta(hours=6)
_NS_TO_TIMESTAMP = "to_timestamp({0} // 1000 / 1e6)"


def connect(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the database; a new one (and its directory, and its WAL) is private to its owner.

    The mode comes from the umask, which is process-wide: the daemon sets 0o077 at start-up, before any
    thread, so that the WAL DuckDB creates later is private too.
    """
    if not read_only and not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    # Nothing spendwatch does reads or writes other files through DuckDB: users' queries cannot either.
    # Queries (users', rules') get a memory ceiling: a runaway query fails rather than taking the machine.
    config = {"enable_external_access": False, "memory_limit": MEMORY_LIMIT}
    con = duckdb.connect(str(path), read_only=read_only, config=config)
    con.execute("SET TimeZone = 'UTC'")
    return con


def open_existing(db: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """The CLI's own connection to a database that must exist; each way it can fail is one line."""
    from spendwatch.errors import UserError

    if not db.exists():
        raise UserError(f"{db}: no such database (start `spendwatch up` to create it)")
    try:
        return connect(db, read_only=read_only)
    except duckdb.IOException as error:
        if "lock" in str(error).lower():
            raise UserError(f"{db}: in use by `spendwatch up`; stop it first, then run this again") from None
        raise UserError(f"{db}: cannot be opened: {str(error).splitlines()[0]}") from None


class Store:
    """The daemon's one writing connection.

    Two fault-injection knobs exist for the durability tests, read once at start-up:
    `SPENDWATCH_TEST_WRITE_DELAY` (seconds each commit is slowed by) and `SPENDWATCH_TEST_FAIL_WRITES_WHILE`
    (a path: while it exists, every commit fails as a full disk would).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._write_delay = float(os.environ.get("SPENDWATCH_TEST_WRITE_DELAY") or 0)
        fail_while = os.environ.get("SPENDWATCH_TEST_FAIL_WRITES_WHILE")
        self._fail_while = Path(fail_while) if fail_while else None
        self._open()

    def _open(self) -> None:
        path = self.path
        self.con = connect(path)
        self.migrations_applied = migrate(self.con)
        columns = ", ".join(f"{name} {kind}" for name, kind in ROW_COLUMNS)
        self.con.execute(f"CREATE TEMP TABLE {_STAGING} ({columns})")
        self._appender = self.con.appender(_STAGING)
        names = [name for name, _ in ROW_COLUMNS]
        select = ", ".join(_NS_TO_TIMESTAMP.format(name) if name in ("start_ns", "end_ns") else name for name in names)
        target = ", ".join({"start_ns": "start_time", "end_ns": "end_time"}.get(name, name) for name in names)
        self._move = f"""
            INSERT INTO llm_call_spans ({target}, duration_ms)
            SELECT DISTINCT ON (trace_id, span_id) {select}, (end_ns - start_ns) / 1e6
            FROM {_STAGING} AS incoming
            WHERE NOT EXISTS (
                SELECT 1 FROM llm_call_spans AS stored
                WHERE stored.start_time BETWEEN $first AND $last
                  AND stored.trace_id = incoming.trace_id AND stored.span_id = incoming.span_id
            )
        """
        self._supersede = SUPERSEDED_SQL.format(traces=f"AND s.trace_id IN (SELECT trace_id FROM {_STAGING})")

    def write(self, rows: Sequence[Sequence[Any]]) -> int:
        """Commit `rows`; returns how many were new (the rest were already stored)."""
        if not rows:
            return 0
        if self._write_delay:
            time.sleep(self._write_delay)
        if self._fail_while is not None and self._fail_while.exists():
            raise OSError(28, "No space left on device (injected)")
        width = len(ROW_COLUMNS)
        if any(len(row) < width for row in rows):
            rows = [row if len(row) == width else (*row, *([None] * (width - len(row)))) for row in rows]
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            self._appender.append_rows(rows)
            self._appender.flush()
            first = datetime.fromtimestamp(min(row[3] for row in rows) / 1e9, UTC) - SAME_CALL_HORIZON
            last = datetime.fromtimestamp(max(row[3] for row in rows) / 1e9, UTC) + SAME_CALL_HORIZON
            (inserted,) = con.execute(self._move, {"first": first, "last": last}).fetchone()
            con.execute(self._supersede, {"since": first})
            con.execute(f"DELETE FROM {_STAGING}")
            con.execute("COMMIT")
        except BaseException:
            self._appender.clear()
            with contextlib.suppress(duckdb.Error):  # an invalidated database: `recover` reopens it
                con.execute("ROLLBACK")
            raise
        return int(inserted)

    def recover(self) -> None:
        """After a failed write: reopen the database if the failure left the connection unusable."""
        try:
            self.con.execute("SELECT 1").fetchone()
            return
        except duckdb.Error:
            pass
        with contextlib.suppress(duckdb.Error):
            self.con.close()
        self._open()

    def prune(self, before: datetime) -> int:
        """Delete the calls that started before `before`, and give their space back; how many went."""
        (deleted,) = self.con.execute("DELETE FROM llm_call_spans WHERE start_time < ?", [before]).fetchone()
        if deleted:
            self.con.execute("CHECKPOINT")
        return int(deleted)

    def close(self) -> None:
        self.con.execute("CHECKPOINT")
        self.con.close()
