"""Appending this daemon's calls to the shared table: each call once, across retries, crashes and restarts.

What goes out is what `llm_calls` shows — calls counted once already — with the daemon's name
(`fleet_daemon`) and host added. A call is appended once it arrived `settle` ago (spans of one call
from several instrumentations arrive seconds apart; waiting spares replacing the hour), in batches every
`every`.

**A call that changes after it was appended.** Call identity (collector/identity.py) can change a
stored call when a late span arrives: a span that supersedes the row, a leader that takes fields from a
new sibling; so can a reprice. The sink keeps, per hour of start time, how many calls the table holds
for this daemon and the sum of their row hashes. Each batch looks at the hours a newly arrived span can
have changed (its trace's and its response id's, within the six hours call identity looks across): an
hour whose calls are the ones appended before plus the new ones gets the new ones appended; an hour
whose sum says otherwise is replaced — this daemon's rows of that hour deleted and its current calls
appended, in the same commit. At start-up every hour is checked, which catches what changed while the
daemon was stopped (a reprice, a migration). The table never holds a call twice; between a change and
the batch that replaces its hour (at most `settle` + `every`), it holds the call as it was.
Hours older than the daemon's own `retention` are never replaced: what the daemon forgot, the fleet keeps.

**Idempotent across crashes.** Batch `n` is written to the database as pending before it is committed
to the table, and it commits, in one Iceberg transaction, its rows and the table property
`spendwatch.fleet.seq.<daemon> = n` (also in the snapshot's summary). Before each batch, a pending one is
settled by that property: the table has `n` — the batch landed, record it; it has `n - 1` — it did not,
plan again. The property lives in the table's metadata, not in a snapshot, so expiring snapshots never
loses it. A table whose number is ahead of the database (another daemon writing under this name, a
database restored from a backup) stops the sink with an error rather than count anything twice.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from spendwatch.fleet.settings import FleetConfig
from spendwatch.fleet.table import (
    DAEMON_COLUMN,
    HOST_COLUMN,
    SUMMARY_DAEMON,
    SUMMARY_SEQ,
    evolve,
    host_name,
    load_or_create,
    open_catalog,
    seq_property,
    short_error,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    from pyiceberg.table import Table

logger = logging.getLogger("spendwatch.fleet")

HOUR_US = 3_600_000_000
HOUR = timedelta(hours=1)
# Call identity looks this far from a span's start for the spans of its call (collector/store.py).
IDENTITY_HORIZON = timedelta(hours=6)
# A commit's received_at is its transaction's start: one still open when a batch was planned can land
# with a time a little before the batch's cut. Looking back this far finds its hours again.
COMMIT_MARGIN = timedelta(minutes=2)
MAX_ROWS_PER_BATCH = 200_000
_HOUR_OF = "epoch_us(c.start_time) // 3600000000"


class SinkStopped(Exception):
    """The table and this database disagree in a way that appending more would make worse."""


@dataclass
class SinkState:
    table_uuid: str
    daemon: str
    seq: int
    shipped_through: datetime | None
    pending_seq: int | None
    pending: dict[str, Any] | None


@dataclass
class Batch:
    """One commit's worth: which hours get their new calls appended, which are replaced, and after it."""

    appends: dict[int, datetime | None] = field(default_factory=dict)  # hour -> calls received after this are new
    replaces: list[int] = field(default_factory=list)
    hours: dict[int, tuple[int, int]] = field(default_factory=dict)  # hour -> (calls, digest) once committed
    shipped_through: datetime | None = None  # the whole plan is done: the new mark
    cut: datetime | None = None

    @property
    def empty(self) -> bool:
        return not self.appends and not self.replaces


def utc_now() -> datetime:
    return datetime.now(UTC)


def daemon_name(con: duckdb.DuckDBPyConnection, configured: str | None) -> str:
    """The daemon's name in the fleet: `[fleet] daemon`, else one made once (host and a random part) and kept."""
    if configured:
        return configured
    found = con.execute("SELECT daemon FROM fleet_identity").fetchone()
    if found is not None:
        return found[0]
    name = f"{host_name().split('.')[0][:60] or 'spendwatch'}-{secrets.token_hex(4)}"
    con.execute("INSERT INTO fleet_identity VALUES (?, now())", [name])
    return name


class FleetSink:
    def __init__(
        self,
        connection: Callable[[], duckdb.DuckDBPyConnection],
        settings: FleetConfig,
        *,
        local_retention: timedelta | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._connection = connection
        self.settings = settings
        self.local_retention = local_retention
        self._clock = clock
        self._lock = threading.Lock()
        self.catalog = None
        self.table: Table | None = None
        self.daemon: str | None = None
        self.host = host_name()
        self._full_check = True  # the first batch after start-up looks at every hour
        # what `spendwatch status` shows and tests wait on
        self.batches = 0
        self.rows_appended = 0
        self.hours_replaced = 0
        self.failures = 0
        self.last_error: str | None = None
        self.stopped_error: str | None = None

    # -- the local database ---------------------------------------------------------------------------

    def _columns(self, con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
        return [(row[0], row[1]) for row in con.execute("DESCRIBE llm_calls").fetchall()]

    def _select(self, columns: list[tuple[str, str]]) -> str:
        return ", ".join(
            f"CAST(c.{name} AS VARCHAR) AS {name}" if kind == "JSON" else f"c.{name}" for name, kind in columns
        )

    def _hash(self, columns: list[tuple[str, str]]) -> str:
        return f"hash({', '.join(f'c.{name}' for name, _ in columns)})"

    def _state(self, con: duckdb.DuckDBPyConnection, table_uuid: str) -> SinkState:
        row = con.execute(
            "SELECT daemon, seq, shipped_through, pending_seq, pending FROM fleet_sink WHERE table_uuid = ?",
            [table_uuid],
        ).fetchone()
        if row is None:
            return SinkState(table_uuid, "", 0, None, None, None)
        daemon, seq, through, pending_seq, pending = row
        return SinkState(table_uuid, daemon, seq, through, pending_seq, json.loads(pending) if pending else None)

    # -- start-up -------------------------------------------------------------------------------------

    def open(self) -> None:
        """Reach the catalog, create or evolve the table, and settle a batch a crash left pending."""
        con = self._connection().cursor()
        try:
            columns = self._columns(con)
            schema = self._arrow_schema(con, columns)
            self.catalog = open_catalog(self.settings)
            self.table = evolve(load_or_create(self.catalog, self.settings, schema), schema)
            table_uuid = str(self.table.metadata.table_uuid)
            configured = self.settings.daemon
            name = daemon_name(con, configured)
            state = self._state(con, table_uuid)
            if state.daemon and state.daemon != name:
                raise SinkStopped(
                    f"this database appended to {self.settings.table} as {state.daemon!r}; [fleet] daemon = {name!r} "
                    f"would append its calls again under another name: set daemon = {state.daemon!r}"
                )
            if not state.daemon:
                con.execute("INSERT INTO fleet_sink VALUES (?, ?, 0, NULL, NULL, NULL)", [table_uuid, name])
            self.daemon = name
            self._settle_pending(con, self._state(con, table_uuid))
        finally:
            con.close()
        logger.info(
            "fleet: appending to %s in %s as %s", self.settings.table, self.settings.masked_catalog, self.daemon
        )

    def _arrow_schema(self, con: duckdb.DuckDBPyConnection, columns: list[tuple[str, str]]) -> pa.Schema:
        import pyarrow as pa

        empty = con.sql(
            f"SELECT {self._select(columns)}, ''::VARCHAR AS {DAEMON_COLUMN}, ''::VARCHAR AS {HOST_COLUMN} "
            "FROM llm_calls AS c LIMIT 0"
        ).to_arrow_table()
        return pa.schema([pa.field(f.name, _iceberg_friendly(f.type), nullable=True) for f in empty.schema])

    def _settle_pending(self, con: duckdb.DuckDBPyConnection, state: SinkState) -> None:
        """Before planning: the table's word on the last batch, recorded here."""
        assert self.table is not None
        self.table.refresh()
        landed = int(self.table.properties.get(seq_property(self.daemon or ""), "0"))
        if state.pending_seq is not None and landed == state.pending_seq:
            self._record(con, state, state.pending_seq, _batch_from_json(state.pending or {}))
            logger.info("fleet: batch %d had landed before the restart; recorded", state.pending_seq)
            return
        if landed != state.seq:
            raise SinkStopped(
                f"{self.settings.table} holds batch {landed} of {self.daemon!r}, this database knows of {state.seq}: "
                "another daemon appends under this name, or the database was restored from a copy; "
                "appending more could count calls twice"
            )
        if state.pending_seq is not None:
            con.execute(
                "UPDATE fleet_sink SET pending_seq = NULL, pending = NULL WHERE table_uuid = ?", [state.table_uuid]
            )

    # -- one batch ------------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Plan and commit one batch; the rows appended (0: nothing was due)."""
        with self._lock:
            try:
                return self._run_once()
            except SinkStopped as error:
                self.stopped_error = str(error)
                raise
            except Exception as error:
                self.failures += 1
                self.last_error = f"{type(error).__name__}: {short_error(error)}"
                raise

    def _run_once(self) -> int:
        if self.stopped_error is not None:
            raise SinkStopped(self.stopped_error)
        if self.table is None:
            self.open()
        assert self.table is not None
        con = self._connection().cursor()
        try:
            table_uuid = str(self.table.metadata.table_uuid)
            state = self._state(con, table_uuid)
            self._settle_pending(con, state)
            state = self._state(con, table_uuid)
            columns = self._columns(con)
            con.execute("BEGIN TRANSACTION")  # one snapshot of the calls for the whole plan; only read
            try:
                batch, rows = self._plan(con, state, columns)
            finally:
                con.execute("ROLLBACK")
            if batch.empty:
                if batch.shipped_through is not None:
                    con.execute(
                        "UPDATE fleet_sink SET shipped_through = ? WHERE table_uuid = ?",
                        [batch.shipped_through, table_uuid],
                    )
                self._full_check = False
                return 0
            self.table = evolve(self.table, rows.schema)
            seq = state.seq + 1
            con.execute(
                "UPDATE fleet_sink SET pending_seq = ?, pending = ? WHERE table_uuid = ?",
                [seq, json.dumps(_batch_to_json(batch)), table_uuid],
            )
            self._commit(batch, rows, seq)
            self._record(con, self._state(con, table_uuid), seq, batch)
        finally:
            con.close()
        if batch.shipped_through is not None:
            self._full_check = False
        self.batches += 1
        self.rows_appended += rows.num_rows
        self.hours_replaced += len(batch.replaces)
        return rows.num_rows

    def _plan(self, con: duckdb.DuckDBPyConnection, state: SinkState, columns: list[tuple[str, str]]):
        now = self._clock()
        cut = now - self.settings.settle
        since = None if self._full_check or state.shipped_through is None else state.shipped_through - COMMIT_MARGIN
        touched = self._touched_hours(con, since, cut, state.table_uuid)
        protected_before = None
        if self.local_retention is not None:
            protected_before = _hour(now - self.local_retention + timedelta(days=1))
        batch = Batch(cut=cut)
        stored = self._stored_hours(con, state.table_uuid, touched)
        throughs = {hour: stored.get(hour, (0, 0, None))[2] for hour in touched}
        digests = self._digests(con, columns, touched, throughs, cut)
        budget = MAX_ROWS_PER_BATCH
        done = True
        for hour in touched:
            calls, digest, new_calls, new_digest = digests.get(hour, (0, 0, 0, 0))
            stored_calls, stored_digest, _ = stored.get(hour, (0, 0, None))
            if (calls, digest) == (stored_calls, stored_digest):
                continue
            appendable = (stored_calls + new_calls, stored_digest + new_digest) == (calls, digest)
            if protected_before is not None and hour < protected_before and not appendable:
                if not new_calls:
                    continue
                appendable, calls, digest = True, stored_calls + new_calls, stored_digest + new_digest
            size = new_calls if appendable else calls
            if size > budget and not batch.empty:
                done = False
                break
            budget -= size
            if appendable:
                batch.appends[hour] = throughs[hour]
            else:
                batch.replaces.append(hour)
            batch.hours[hour] = (calls, digest)
        if done:
            batch.shipped_through = cut
        return batch, self._rows(con, columns, batch, cut)

    def _touched_hours(
        self, con: duckdb.DuckDBPyConnection, since: datetime | None, cut: datetime, table_uuid: str
    ) -> list[int]:
        """The hours whose calls may have changed since `since` (None: every hour there is, or was)."""
        if since is None:
            rows = con.execute(
                f"""SELECT DISTINCT epoch_us(start_time) // {HOUR_US} FROM llm_call_spans WHERE received_at <= ?
                    UNION SELECT hour FROM fleet_sink_hours WHERE table_uuid = ?""",
                [cut, table_uuid],
            ).fetchall()
            return sorted(hour for (hour,) in rows)
        rows = con.execute(
            f"""WITH new AS (
                    SELECT trace_id, lower(trim(response_id)) AS response_key, start_time
                    FROM llm_call_spans WHERE received_at > $since AND received_at <= $cut
                ), bounds AS (
                    SELECT min(start_time) - $horizon AS first, max(start_time) + $horizon AS last FROM new
                )
                SELECT DISTINCT epoch_us(s.start_time) // {HOUR_US}
                FROM llm_call_spans AS s, bounds
                WHERE s.start_time BETWEEN bounds.first AND bounds.last
                  AND (s.trace_id IN (SELECT trace_id FROM new)
                       OR lower(trim(s.response_id)) IN
                          (SELECT response_key FROM new WHERE response_key IS NOT NULL))""",
            {"since": since, "cut": cut, "horizon": IDENTITY_HORIZON},
        ).fetchall()
        return sorted(hour for (hour,) in rows)

    def _stored_hours(
        self, con: duckdb.DuckDBPyConnection, table_uuid: str, hours: list[int]
    ) -> dict[int, tuple[int, int, datetime | None]]:
        if not hours:
            return {}
        rows = con.execute(
            "SELECT hour, calls, digest, through FROM fleet_sink_hours "
            "WHERE table_uuid = ? AND hour IN (SELECT unnest(?))",
            [table_uuid, hours],
        ).fetchall()
        return {hour: (calls, int(digest), through) for hour, calls, digest, through in rows}

    def _digests(
        self,
        con: duckdb.DuckDBPyConnection,
        columns: list[tuple[str, str]],
        hours: list[int],
        throughs: dict[int, datetime | None],
        cut: datetime,
    ) -> dict[int, tuple[int, int, int, int]]:
        """Per hour: (calls, digest) of the calls due by `cut`, and of those received after the hour's mark."""
        found: dict[int, tuple[int, int, int, int]] = {}
        for first, last in _runs(hours):
            plan = [hour for hour in hours if first <= hour <= last]
            new = "p.through IS NULL OR s.received_at > p.through"
            rows = con.execute(
                f"""WITH plan AS (SELECT unnest($hours) AS hour, unnest($throughs) AS through)
                    SELECT p.hour, count(*), sum({self._hash(columns)}),
                           count(*) FILTER ({new}), coalesce(sum({self._hash(columns)}) FILTER ({new}), 0)
                    {self._from()}
                    GROUP BY p.hour""",
                {
                    "hours": plan,
                    "throughs": [throughs.get(hour) for hour in plan],
                    **self._range(first, last, cut),
                },
            ).fetchall()
            for hour, calls, digest, new_calls, new_digest in rows:
                found[hour] = (calls, int(digest), new_calls, int(new_digest))
        return found

    def _from(self) -> str:
        """The calls of the plan's hours that arrived by the cut, each with its span's time of arrival."""
        return f"""FROM llm_calls AS c
                   JOIN llm_call_spans AS s ON s.trace_id = c.trace_id AND s.span_id = c.span_id
                   JOIN plan AS p ON p.hour = {_HOUR_OF}
                   WHERE c.start_time >= $first AND c.start_time < $last
                     AND s.start_time >= $first AND s.start_time < $last AND s.received_at <= $cut"""

    def _range(self, first: int, last: int, cut: datetime) -> dict[str, Any]:
        return {"first": _at(first), "last": _at(last + 1), "cut": cut}

    def _rows(self, con: duckdb.DuckDBPyConnection, columns: list[tuple[str, str]], batch: Batch, cut: datetime):
        """The batch's rows as Arrow: the new calls of the appended hours, every call of the replaced ones."""
        import pyarrow as pa

        plan = {**batch.appends, **dict.fromkeys(batch.replaces)}
        tables = []
        for first, last in _runs(sorted(plan)):
            hours = [hour for hour in plan if first <= hour <= last]
            tables.append(
                con.sql(
                    f"""WITH plan AS (SELECT unnest($hours) AS hour, unnest($throughs) AS through)
                        SELECT {self._select(columns)}, $daemon AS {DAEMON_COLUMN}, $host AS {HOST_COLUMN}
                        {self._from()} AND (p.through IS NULL OR s.received_at > p.through)""",
                    params={
                        "hours": hours,
                        "throughs": [plan[hour] for hour in hours],
                        "daemon": self.daemon,
                        "host": self.host,
                        **self._range(first, last, cut),
                    },
                ).to_arrow_table()
            )
        if not tables:
            return pa.table({})
        rows = pa.concat_tables(tables)
        return rows.cast(pa.schema([pa.field(f.name, _iceberg_friendly(f.type), nullable=True) for f in rows.schema]))

    def _commit(self, batch: Batch, rows: pa.Table, seq: int) -> None:
        """Batch `seq` into the table: its replaced hours' rows out and its rows in, with the mark, at once."""
        from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan, Or

        assert self.table is not None and self.daemon is not None
        summary = {SUMMARY_DAEMON: self.daemon, SUMMARY_SEQ: str(seq)}
        transaction = self.table.transaction()
        if batch.replaces:
            hours = [
                And(
                    GreaterThanOrEqual("start_time", _at(hour).isoformat()),
                    LessThan("start_time", _at(hour + 1).isoformat()),
                )
                for hour in sorted(batch.replaces)
            ]
            predicate = And(
                EqualTo(DAEMON_COLUMN, self.daemon), functools.reduce(Or, hours) if len(hours) > 1 else hours[0]
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "did not match any records": an hour whose calls all went
                transaction.delete(predicate, snapshot_properties=summary)
        if rows.num_rows:
            transaction.append(rows, snapshot_properties=summary)
        transaction.set_properties({seq_property(self.daemon): str(seq)})
        self.table = transaction.commit_transaction()

    def _record(self, con: duckdb.DuckDBPyConnection, state: SinkState, seq: int, batch: Batch) -> None:
        """The committed batch, here: its hours' new sums and marks, the batch number, the mark."""
        con.execute("BEGIN TRANSACTION")
        try:
            for hour, (calls, digest) in batch.hours.items():
                con.execute(
                    """INSERT INTO fleet_sink_hours VALUES (?, ?, ?, ?, ?)
                       ON CONFLICT (table_uuid, hour) DO UPDATE
                       SET calls = excluded.calls, digest = excluded.digest, through = excluded.through""",
                    [state.table_uuid, hour, calls, digest, batch.cut],
                )
            con.execute(
                """UPDATE fleet_sink SET seq = ?, pending_seq = NULL, pending = NULL,
                       shipped_through = coalesce(?, shipped_through)
                   WHERE table_uuid = ?""",
                [seq, batch.shipped_through, state.table_uuid],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def _runs(hours: Iterable[int], gap: int = 6) -> list[tuple[int, int]]:
    """Sorted hours as (first, last) runs, hours less than `gap` apart in one run: one range scan each."""
    runs: list[list[int]] = []
    for hour in sorted(hours):
        if runs and hour - runs[-1][1] <= gap:
            runs[-1][1] = hour
        else:
            runs.append([hour, hour])
    return [(first, last) for first, last in runs]


def _hour(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)) // HOUR)


def _at(hour: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + hour * HOUR


def _iceberg_friendly(kind: Any) -> Any:
    """Arrow types as Iceberg stores them: UTC timestamps named UTC, lists of plain elements."""
    import pyarrow as pa

    if pa.types.is_timestamp(kind) and kind.tz is not None:
        return pa.timestamp("us", tz="UTC")
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return pa.list_(pa.field("element", _iceberg_friendly(kind.value_type), nullable=True))
    if pa.types.is_string_view(kind) or pa.types.is_large_string(kind):
        return pa.string()
    return kind


def _batch_to_json(batch: Batch) -> dict[str, Any]:
    return {
        "hours": {str(hour): [calls, str(digest)] for hour, (calls, digest) in batch.hours.items()},
        "replaces": batch.replaces,
        "cut": batch.cut.isoformat() if batch.cut else None,
        "shipped_through": batch.shipped_through.isoformat() if batch.shipped_through else None,
    }


def _batch_from_json(document: dict[str, Any]) -> Batch:
    def moment(text: str | None) -> datetime | None:
        return datetime.fromisoformat(text) if text else None

    return Batch(
        hours={int(hour): (int(calls), int(digest)) for hour, (calls, digest) in document.get("hours", {}).items()},
        replaces=list(document.get("replaces", [])),
        cut=moment(document.get("cut")),
        shipped_through=moment(document.get("shipped_through")),
    )
