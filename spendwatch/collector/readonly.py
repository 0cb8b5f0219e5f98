"""Read-only SQL over the stored calls, the same rules whether it runs in the daemon or on the file.

Only statements DuckDB's own parser classifies as queries run (SELECT, WITH, FROM, DESCRIBE, SHOW,
SUMMARIZE, plain EXPLAIN), one per request. `EXPLAIN ANALYZE` is refused: DuckDB types it EXPLAIN, and it
runs the statement it explains — `EXPLAIN ANALYZE SET GLOBAL memory_limit = ...` would change the
daemon's settings. Whether an EXPLAIN analyses is read from DuckDB's own tokenizer, not from the text.
The database has external access disabled, so table functions cannot read local files either.

In the daemon (`ReadConnections`), reads run on connections of their own, never the writer's, each
with a ceiling on the memory its operators take (`READ_MEMORY_LIMIT`), and the database's settings are
locked (`lock_configuration`) once they are made, so no statement can change them; each query runs in a
read-only transaction that is always rolled back. A query that runs longer than its limit is
interrupted, and a result is cut at `MAX_RESULT_ROWS` rows or `MAX_RESULT_BYTES` of JSON, with
`"truncated": true` in the answer, so that no query can make the daemon hold more than that.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import duckdb

from spendwatch.errors import UserError

QUERY_TIMEOUT_SECONDS = float(os.environ.get("SPENDWATCH_QUERY_TIMEOUT") or 60)
_QUERY_STATEMENTS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
MAX_RESULT_ROWS = int(os.environ.get("SPENDWATCH_QUERY_MAX_ROWS") or 100_000)
MAX_RESULT_BYTES = int(os.environ.get("SPENDWATCH_QUERY_MAX_BYTES") or 64 * 1024 * 1024)
READ_MEMORY_LIMIT = "512MB"  # per read connection, for sorts and hash tables; beyond, DuckDB spills or fails the query
READ_CONNECTIONS = 2
FETCH_ROWS = 2048


class QueryError(UserError):
    pass


def check_read_only(sql: str) -> None:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryError(_first_line(error)) from None
    if len(statements) != 1:
        raise QueryError(f"one statement at a time, please (got {len(statements)})")
    kind = statements[0].type
    if kind not in _QUERY_STATEMENTS:
        raise QueryError(
            f"only queries are allowed (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN); got {kind.name}"
        )
    if kind == duckdb.StatementType.EXPLAIN and _analyses(statements[0].query):
        raise QueryError("EXPLAIN ANALYZE runs the statement it explains: only plain EXPLAIN is allowed")


def _analyses(sql: str) -> bool:
    """Whether an EXPLAIN statement is `EXPLAIN ANALYZE ...` or `EXPLAIN (ANALYZE ...) ...`.

    The words between EXPLAIN and the statement it explains are its options; DuckDB's tokenizer skips
    comments and keeps string constants apart, so `EXPLAIN /* x */ ANALYSE` is found and `'analyze'` is not.
    """
    tokens = duckdb.tokenize(sql)
    ends = [start for start, _ in tokens[1:]] + [len(sql)]
    words = [
        sql[start:end].strip().lower()
        for (start, kind), end in zip(tokens, ends, strict=True)
        if kind != duckdb.token_type.comment
    ]
    if not words or words[0] != "explain":
        return True  # not what the parser said it was: refuse rather than guess
    options = words[1:]
    if options and options[0] == "(":
        options = options[1 : options.index(")") if ")" in options else len(options)]
    else:
        options = options[:1]
    return any(word.startswith(("analyze", "analyse")) for word in options)


def run_query(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    *,
    params: list[Any] | None = None,
    timeout: float = QUERY_TIMEOUT_SECONDS,
    rollback: bool = True,
) -> tuple[list[str], list[list[Any]]]:
    """Columns and JSON-safe rows of one read-only query on `con` (a connection of its own), uncapped."""
    result = query_json(con, sql, params=params, timeout=timeout, rollback=rollback, max_rows=None, max_bytes=None)
    document = json.loads(result)
    return document["columns"], document["rows"]


def query_json(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    *,
    params: list[Any] | None = None,
    timeout: float = QUERY_TIMEOUT_SECONDS,
    rollback: bool = True,
    max_rows: int | None = MAX_RESULT_ROWS,
    max_bytes: int | None = MAX_RESULT_BYTES,
) -> bytes:
    """One read-only query's answer as the read API sends it: `{"columns", "rows"}` in JSON, with
    `"truncated": true` when the result went past `max_rows` rows or `max_bytes` bytes and was cut there.

    Rows are fetched and encoded a chunk at a time, so what is held is the answer's bytes, not the
    result's Python objects.
    """
    check_read_only(sql)
    timer = threading.Timer(timeout, con.interrupt)
    timer.start()
    parts: list[bytes] = []
    size = count = 0
    truncated = False
    try:
        if rollback:
            con.execute("BEGIN TRANSACTION READ ONLY")
        try:
            cursor = con.execute(sql, params or [])
            columns = [column[0] for column in cursor.description or ()]
            while not truncated:
                chunk = cursor.fetchmany(FETCH_ROWS)
                if not chunk:
                    break
                for row in chunk:
                    encoded = json.dumps([json_safe(value) for value in row]).encode()
                    if (max_rows is not None and count >= max_rows) or (
                        max_bytes is not None and size + len(encoded) > max_bytes
                    ):
                        truncated = True
                        break
                    parts.append(encoded)
                    size += len(encoded) + 1
                    count += 1
        finally:
            if rollback:
                con.execute("ROLLBACK")
    except duckdb.InterruptException:
        raise QueryError(f"the query ran longer than {timeout:g} s and was stopped") from None
    except duckdb.Error as error:
        raise QueryError(_first_line(error)) from None
    finally:
        timer.cancel()
    head = b'{"columns": ' + json.dumps(columns).encode() + b', "rows": ['
    tail = b'], "truncated": true}' if truncated else b"]}"
    return head + b", ".join(parts) + tail


class ReadConnections:
    """The daemon's connections for reads (the read API's and the dashboard's), apart from the writer's.

    Each is a cursor of the store's connection — its own DuckDB connection, in its own transaction,
    which never waits on the writer's — made before the database's settings are locked, so that its
    memory ceiling can be set; then `lock_configuration` freezes every setting of the database for every
    connection. When the store reopens its file after a failure, they are made again on the new one.
    """

    def __init__(self, store: Any, size: int = READ_CONNECTIONS) -> None:
        self._store = store
        self._size = size
        self._lock = threading.Lock()
        self._base: Any = None
        self._free: queue.Queue = queue.Queue()
        # Queries wait here for a thread, apart from the threads that decode exports: reads never hold ingest.
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="spendwatch-read")
        self._prepare()

    def _prepare(self) -> None:
        base = self._store.con
        free: queue.Queue = queue.Queue()
        for _ in range(self._size):
            cursor = base.cursor()
            with contextlib.suppress(duckdb.InvalidInputException):  # already locked: a database kept open
                cursor.execute(f"SET operator_memory_limit = '{READ_MEMORY_LIMIT}'")
            free.put(cursor)
        base.cursor().execute("SET lock_configuration = true")
        self._base, self._free = base, free

    def query_json(self, sql: str, params: list[Any], *, capped: bool = True) -> bytes:
        """`query_json` on a free read connection; uncapped only for the dashboard's own aggregates."""
        check_read_only(sql)  # before waiting for a connection
        with self._connection() as cursor:
            if capped:
                return query_json(cursor, sql, params=params)
            return query_json(cursor, sql, params=params, max_rows=None, max_bytes=None)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        with self._lock:
            if self._store.con is not self._base:
                self._prepare()
            free = self._free
        try:
            cursor = free.get(timeout=QUERY_TIMEOUT_SECONDS)
        except queue.Empty:
            raise QueryError(f"every read connection was busy for {QUERY_TIMEOUT_SECONDS:g} s; try again") from None
        try:
            yield cursor
        finally:
            free.put(cursor)

    @contextlib.contextmanager
    def snapshot(self, between_writes: threading.Lock) -> Iterator[tuple[Any, datetime]]:
        """A read connection in a read-only transaction begun while `between_writes` (the writer's commit lock)
        was held, and the time it was begun: it sees every write that started before then and nothing of any
        write after. For the daemon's own queries, which run as written (no statement check, no caps)."""
        with self._connection() as cursor:
            with between_writes:
                cursor.execute("BEGIN TRANSACTION READ ONLY")
                cursor.execute("SELECT count(*) FROM llm_call_spans WHERE false").fetchall()  # the snapshot, now
                taken_at = datetime.now(UTC)
            try:
                yield cursor, taken_at
            finally:
                cursor.execute("ROLLBACK")

    def run_query(self, sql: str, params: list[Any]) -> tuple[list[str], list[list[Any]]]:
        document = json.loads(self.query_json(sql, params, capped=False))
        return document["columns"], document["rows"]


def json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    return str(value)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def encode_params(params: list[Any]) -> list[Any]:
    """Query parameters for the read API: datetimes travel tagged, everything else as JSON."""
    return [{"$datetime": value.isoformat()} if isinstance(value, datetime) else value for value in params]


def decode_params(params: list[Any]) -> list[Any]:
    return [
        datetime.fromisoformat(value["$datetime"]) if isinstance(value, dict) and "$datetime" in value else value
        for value in params
    ]
