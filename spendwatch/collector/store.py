"""The DuckDB file: opening it safely, and writing batches of calls exactly once.

Batches go through the Appender into a connection-local staging table, then one
`INSERT ... SELECT DISTINCT ON (trace_id, span_id) ... WHERE NOT EXISTS` moves the spans not stored yet
into `llm_call_spans` inside the same transaction: an exporter's retry of a batch we already stored (or
two copies of a span in one batch) is skipped row by row. The table has no key to enforce that (an index
cost more than the data, see migration m004): a span's copies carry the same start time, so the check
looks only at the stored spans that started within `SAME_CALL_HORIZON` of the batch, which DuckDB finds
from its per-row-group min/max without reading the rest — the same window call identity reads
(resolve.py), in the same transaction, so that no query sees two spans of one call.
The Appender is ~250x faster than `executemany`.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from spendwatch._internal import log_internal_error
from spendwatch.collector import rollup
from spendwatch.collector.migrations import migrate
from spendwatch.collector.resolve import prune_links, resolve_batch, resolve_linked
from spendwatch.collector.rows import ROW_COLUMNS, SpanLink

__all__ = ["ROW_COLUMNS", "SAME_CALL_HORIZON", "Store", "connect", "open_existing"]

_STAGING = "_incoming_spans"
_LINKS_STAGING = "_incoming_links"
MAX_DROPPED_ATTRIBUTE_NAMES = 10_000  # distinct names counted; later ones count under "[other]"
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
    """The daemon's one writing connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # The `received_at` of the last write: each write's is later than the one before, so that the rows
        # stored after a moment are the rows received after it (collector/tally.py reads them so).
        self.last_received_at = datetime.fromtimestamp(0, UTC)
        self._open()

    def _open(self) -> None:
        path = self.path
        self.con = connect(path)
        self.migrations_applied = migrate(self.con)
        columns = ", ".join(f"{name} {kind}" for name, kind in ROW_COLUMNS)
        self.con.execute(f"CREATE TEMP TABLE {_STAGING} ({columns})")
        self.con.execute(
            f"CREATE TEMP TABLE {_LINKS_STAGING} (trace_id VARCHAR, span_id VARCHAR, parent_span_id VARCHAR,"
            " attribution VARCHAR)"
        )
        self._appender = self.con.appender(_STAGING)
        self._links_appender = self.con.appender(_LINKS_STAGING)
        names = [name for name, _ in ROW_COLUMNS]
        select = ", ".join(_NS_TO_TIMESTAMP.format(name) if name in ("start_ns", "end_ns") else name for name in names)
        target = ", ".join({"start_ns": "start_time", "end_ns": "end_time"}.get(name, name) for name in names)
        self._move = f"""
            INSERT INTO llm_call_spans ({target}, duration_ms, received_at)
            SELECT DISTINCT ON (trace_id, span_id) {select}, (end_ns - start_ns) / 1e6, $received_at
            FROM {_STAGING} AS incoming
            WHERE NOT EXISTS (
                SELECT 1 FROM llm_call_spans AS stored
                WHERE stored.start_time BETWEEN $first AND $last
                  AND stored.trace_id = incoming.trace_id AND stored.span_id = incoming.span_id
            )
        """

    def write(
        self,
        rows: Sequence[Sequence[Any]],
        links: Sequence[SpanLink] = (),
        dropped_attributes: Counter | None = None,
    ) -> int:
        """Commit `rows` (and the parent links and dropped attribute names of the same exports); returns how
        many rows were new (the rest were already stored)."""
        if not rows and not links and not dropped_attributes:
            return 0
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            inserted = 0
            if links:
                self._links_appender.append_rows(links)
                self._links_appender.flush()
                con.execute(f"INSERT INTO span_links BY NAME SELECT DISTINCT * FROM {_LINKS_STAGING}")
                con.execute(f"DELETE FROM {_LINKS_STAGING}")
            if rows:
                self._appender.append_rows(rows)
                self._appender.flush()
                first = datetime.fromtimestamp(min(row[3] for row in rows) / 1e9, UTC) - SAME_CALL_HORIZON
                last = datetime.fromtimestamp(max(row[3] for row in rows) / 1e9, UTC) + SAME_CALL_HORIZON
                received_at = max(datetime.now(UTC), self.last_received_at + timedelta(microseconds=1))
                self.last_received_at = received_at
                (inserted,) = con.execute(
                    self._move, {"first": first, "last": last, "received_at": received_at}
                ).fetchone()
                if inserted:
                    self._decide(resolve_batch, con, _STAGING, first, last)
                    rollup.refresh(con, {rollup.hour_of_ns(row[3]) for row in rows})  # late spans: sealed hours
            if links:  # a link can join spans of a call that are already stored
                in_batch = {row[0] for row in rows}
                traces = {link.trace_id for link in links} - in_batch
                attributed = {link.trace_id for link in links if link.attribution} - in_batch
                if traces:
                    self._decide(resolve_linked, con, traces, datetime.now(UTC), SAME_CALL_HORIZON, attributed)
            con.execute(f"DELETE FROM {_STAGING}")
            rollup.advance(con, datetime.now(UTC))
            if dropped_attributes:
                self._count_dropped(dropped_attributes)
            con.execute("COMMIT")
        except BaseException:
            self._appender.clear()
            self._links_appender.clear()
            with contextlib.suppress(duckdb.Error):  # an invalidated database: `recover` reopens it
                con.execute("ROLLBACK")
            raise
        return int(inserted)

    @staticmethod
    def _decide(resolve: Any, *args: Any) -> None:
        """Call identity and attribution for the batch. A bug there must not cost the calls: they are
        stored as received (at worst counted as separate calls until decided again) and the bug logged
        once; a database error fails the commit as any other would."""
        try:
            resolve(*args)
        except duckdb.Error:
            raise
        except Exception:
            log_internal_error()

    def _count_dropped(self, dropped: Counter) -> None:
        (known,) = self.con.execute("SELECT count(*) FROM dropped_attributes").fetchone()
        counts: Counter = Counter()
        if known >= MAX_DROPPED_ATTRIBUTE_NAMES:
            existing = {
                name
                for (name,) in self.con.execute(
                    "SELECT name FROM dropped_attributes WHERE name IN (SELECT unnest($names))",
                    {"names": list(dropped)},
                ).fetchall()
            }
            for name, count in dropped.items():
                counts[name if name in existing else "[other]"] += count
        else:
            counts = dropped
        self.con.execute(
            """INSERT INTO dropped_attributes
               SELECT name, spans, now(), now() FROM (SELECT unnest($names) AS name, unnest($spans) AS spans)
               ON CONFLICT (name) DO UPDATE SET spans = spans + excluded.spans, last_seen = excluded.last_seen""",
            {"names": list(counts), "spans": list(counts.values())},
        )

    def prune_links(self) -> int:
        """Between commits: forget the links no span still to come can need."""
        return prune_links(self.con, datetime.now(UTC), SAME_CALL_HORIZON)

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
        self.con.execute("BEGIN TRANSACTION")
        try:
            (deleted,) = self.con.execute("DELETE FROM llm_call_spans WHERE start_time < ?", [before]).fetchone()
            rollup.prune(self.con, before)
            self.con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                self.con.execute("ROLLBACK")
            raise
        if deleted:
            self.con.execute("CHECKPOINT")
        return int(deleted)

    def close(self) -> None:
        self.con.execute("CHECKPOINT")
        self.con.close()
