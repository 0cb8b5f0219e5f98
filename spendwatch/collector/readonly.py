"""Read-only SQL over the stored calls, the same rules whether it runs in the daemon or on the file.

Only statements DuckDB's own parser classifies as queries run (SELECT, WITH, FROM, DESCRIBE, SHOW,
SUMMARIZE, EXPLAIN), one per request; the connection has external access disabled, so table functions
cannot read local files either; and in the daemon the query runs inside a transaction that is always
rolled back, so not even `EXPLAIN ANALYZE` of a write could change anything. A query that runs longer
than its limit is interrupted.
"""

from __future__ import annotations

import base64
import os
import threading
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import duckdb

from spendwatch.errors import UserError

QUERY_TIMEOUT_SECONDS = float(os.environ.get("SPENDWATCH_QUERY_TIMEOUT") or 60)
_QUERY_STATEMENTS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
READ_ONLY_CONFIG = {"enable_external_access": False}


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


def run_query(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    *,
    params: list[Any] | None = None,
    timeout: float = QUERY_TIMEOUT_SECONDS,
    rollback: bool = True,
) -> tuple[list[str], list[list[Any]]]:
    """Columns and JSON-safe rows of one read-only query on `con` (a cursor of its own)."""
    check_read_only(sql)
    timer = threading.Timer(timeout, con.interrupt)
    timer.start()
    try:
        if rollback:
            con.execute("BEGIN TRANSACTION")
        try:
            cursor = con.execute(sql, params or [])
            columns = [column[0] for column in cursor.description or ()]
            rows = [[json_safe(value) for value in row] for row in cursor.fetchall()]
        finally:
            if rollback:
                con.execute("ROLLBACK")
    except duckdb.InterruptException:
        raise QueryError(f"the query ran longer than {timeout:g} s and was stopped") from None
    except duckdb.Error as error:
        raise QueryError(_first_line(error)) from None
    finally:
        timer.cancel()
    return columns, rows


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
