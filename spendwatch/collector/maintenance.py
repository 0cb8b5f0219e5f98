"""Commands that work on the stored calls: which models have no price, and repricing after an override.

Listing unpriced models is a query, which works with the daemon running or not. Repricing writes, and
opens the file directly, so it needs the daemon stopped (DuckDB lets no second process open a file
another writes); it says so in one line when the daemon is running.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import duckdb

from spendwatch.collector import rollup
from spendwatch.collector.pricing import FREE_OPERATIONS, PriceOverride, Pricer
from spendwatch.collector.store import open_existing

REPRICE_BATCH = 5000


def open_for_writing(db: Path) -> duckdb.DuckDBPyConnection:
    """The database opened to change it, with the daemon stopped (or a one-line error)."""
    from spendwatch.collector.migrations import migrate

    con = open_existing(db, read_only=False)
    migrate(con)
    return con


MISSING_PRICES_SQL = """
    SELECT provider, model, count(*) AS calls,
           sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, max(start_time) AS last_call
    FROM llm_calls
    WHERE unpriced
    GROUP BY ALL
    ORDER BY calls DESC, provider, model
"""


def reprice(
    db: Path, overrides: dict[str, PriceOverride], since: timedelta | None, progress: TextIO | None = None
) -> tuple[int, int]:
    """Recompute `cost_usd` of the calls started within `since` (all: None); returns (changed, total)."""
    cutoff = None if since is None else datetime.now(UTC) - since
    pricer = Pricer(overrides)
    con = open_for_writing(db)
    try:
        where = "" if cutoff is None else "WHERE start_time >= ?"
        params = [sorted(FREE_OPERATIONS)] + ([] if cutoff is None else [cutoff])
        rows = con.execute(
            f"""
            SELECT trace_id, span_id, start_time, provider, response_model, request_model, input_tokens,
                   output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, fees_usd, attributes,
                   operation IN (SELECT unnest(?::VARCHAR[])) AND error_type IS NULL
            FROM llm_call_spans {where}
            """,
            params,
        ).fetchall()
        con.execute("CREATE TEMP TABLE _repriced (trace_id VARCHAR, span_id VARCHAR, cost_usd DOUBLE, fees_usd DOUBLE)")
        changed = 0
        hours = set()  # of the calls repriced: their sums in the rollup change with them
        con.execute("BEGIN TRANSACTION")
        appender = con.appender("_repriced")
        for done, row in enumerate(rows, start=1):
            trace_id, span_id, start, provider, response_model, request_model, *counts, old, old_fees, kept, free = row
            cost, fees_usd = pricer.price_call(
                provider,
                (response_model, request_model),
                at=start,
                input_tokens=counts[0],
                output_tokens=counts[1],
                cache_read_tokens=counts[2],
                cache_write_tokens=counts[3],
                attributes=json.loads(kept) if kept else {},
                free_when_answered=bool(free),
            )
            if cost != old or fees_usd != old_fees:
                changed += 1
                hours.add(rollup.hour_of(start))
                appender.append_row(trace_id, span_id, cost, fees_usd)
            if progress is not None and (done % REPRICE_BATCH == 0 or done == len(rows)):
                _bar(progress, done, len(rows))
        appender.flush()
        con.execute(
            """
            UPDATE llm_call_spans AS s SET cost_usd = r.cost_usd, fees_usd = r.fees_usd
            FROM _repriced AS r WHERE s.trace_id = r.trace_id AND s.span_id = r.span_id
            """
        )
        rollup.refresh(con, hours)
        con.execute("COMMIT")
        if progress is not None and rows:
            progress.write("\n")
        return changed, len(rows)
    finally:
        con.close()


def _bar(out: TextIO, done: int, total: int, width: int = 30) -> None:
    filled = width * done // total
    out.write(f"\rrepricing [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    out.flush()
