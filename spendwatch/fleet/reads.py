"""Reading the shared table: DuckDB over the data files pyiceberg plans, in a connection of its own.

pyiceberg plans the scan from the table's metadata (pruned to the days asked for, `since`); the files
become one pyarrow dataset, read through pyarrow's own S3 client (or the local disk), which DuckDB
scans with the query's projection and filters pushed down, in parallel. The dataset is registered as
`llm_calls` in an in-memory database that cannot reach any file by itself (external access disabled,
settings locked): a user's query sees the fleet's calls and nothing else, as the daemon's read path does.
DuckDB's own Iceberg extension would plan the scan itself, but it is downloaded at run time, which a
machine without a network cannot do; this path needs only the packages of the `fleet` extra.

Files written before a column was added lack it: the dataset reads them with the table's current schema,
the missing column NULL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from spendwatch.fleet.settings import FleetConfig
from spendwatch.fleet.table import (
    FleetUnavailable,
    arrow_schema_of,
    filesystem,
    load_table,
    open_catalog,
    short_error,
    strip_scheme,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    from pyiceberg.table import Table

MEMORY_LIMIT = "2GB"


def planned_files(table: Table, since: datetime | None) -> list[str]:
    """The data files of the table's current snapshot that can hold calls started at `since` or later."""
    from pyiceberg.expressions import AlwaysTrue, GreaterThanOrEqual

    row_filter = AlwaysTrue() if since is None else GreaterThanOrEqual("start_time", since.isoformat())
    paths = []
    for task in table.scan(row_filter=row_filter).plan_files():
        if task.delete_files:
            raise FleetUnavailable(
                "the table has row-level delete files (written by another engine), which this reader does not "
                "apply: compact the table with that engine first"
            )
        paths.append(task.file.file_path)
    return paths


def connect(
    settings: FleetConfig,
    since: datetime | None = None,
    *,
    table: Table | None = None,
    extra: dict[str, pa.Table] | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB whose `llm_calls` is the fleet's calls (those started at `since` or later, where
    given); `extra` names more Arrow tables to see beside it (the fleet rules' alerts)."""
    import duckdb
    import pyarrow as pa
    import pyarrow.dataset as ds

    try:
        if table is None:
            table = load_table(open_catalog(settings), settings)
        schema = arrow_schema_of(table)
        paths = planned_files(table, since)
    except FleetUnavailable:
        raise
    except Exception as error:  # the catalog's database or the storage: unreachable, refused
        raise FleetUnavailable(f"the table {settings.table} cannot be read: {short_error(error)}") from None
    if paths:
        fs, _ = filesystem(settings, paths[0])
        calls: Any = ds.dataset([strip_scheme(path) for path in paths], schema=schema, format="parquet", filesystem=fs)
    else:
        calls = pa.Table.from_batches([], schema=schema)
    con = duckdb.connect(":memory:", config={"enable_external_access": False, "memory_limit": MEMORY_LIMIT})
    con.execute("SET TimeZone = 'UTC'")
    con.register("llm_calls", calls)
    for name, rows in (extra or {}).items():
        con.register(name, rows)
    con.execute("SET lock_configuration = true")
    return con


def query_on(con: duckdb.DuckDBPyConnection):
    """`(sql, params) -> (columns, rows)` over an open fleet connection: what the report and the rules take."""
    import duckdb

    from spendwatch.errors import UserError

    def run(sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[list[Any]]]:
        try:
            cursor = con.execute(sql, list(params or []))
        except duckdb.Error as error:
            raise UserError(str(error).splitlines()[0]) from None
        return [column[0] for column in cursor.description or []], [list(row) for row in cursor.fetchall()]

    return run


def query(
    settings: FleetConfig,
    sql: str,
    params: Sequence[Any] | None = None,
    *,
    since: datetime | None = None,
    max_rows: int | None = None,
) -> tuple[list[str], list[list[Any]], bool]:
    """Run one read-only statement over the fleet's calls: (columns, rows, truncated)."""
    import duckdb

    from spendwatch.errors import UserError

    try:
        con = connect(settings, since)
    except FleetUnavailable as error:
        raise UserError(str(error)) from None
    try:
        try:
            cursor = con.execute(sql, list(params or []))
        except duckdb.Error as error:
            raise UserError(str(error).splitlines()[0]) from None
        columns = [column[0] for column in cursor.description or []]
        if max_rows is None:
            rows = cursor.fetchall()
            return columns, [list(row) for row in rows], False
        rows = cursor.fetchmany(max_rows + 1)
        return columns, [list(row) for row in rows[:max_rows]], len(rows) > max_rows
    finally:
        con.close()
