"""Commands that work on the stored calls: which models have no price, and repricing after an override.

Listing unpriced models is a query, which works with the daemon running or not. Repricing writes, and
opens the file directly, so it needs the daemon stopped (DuckDB lets no second process open a file
another writes); it says so in one line when the daemon is running.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import duckdb

from spendwatch.collector.pricing import Pricer
from spendwatch.collector.repricing import reprice_calls
from spendwatch.collector.store import open_existing


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


def reprice(db: Path, pricer: Pricer, since: timedelta | None, progress: TextIO | None = None) -> tuple[int, int]:
    """Recompute the prices of the calls started within `since` (all: None); returns (changed, total)."""
    cutoff = None if since is None else datetime.now(UTC) - since
    con = open_for_writing(db)
    try:
        return reprice_calls(con, pricer, since=cutoff, progress=progress)
    finally:
        con.close()
