"""Pricing stored calls again: after a price override (`spendwatch reprice`), and — inside the daemon — the
calls no price data knew, once fresh data or a reloaded config knows them.

Repricing the unpriced first asks which of their models are known now, so that a model nobody prices
(a self-hosted one) costs one pass over the distinct models, not a pass over its calls, at every refresh.
"""

from __future__ import annotations

from datetime import datetime
from typing import TextIO

import duckdb

from spendwatch.collector import rollup
from spendwatch.collector.pricing import FREE_OPERATIONS, Pricer, price_of

REPRICE_BATCH = 5000
_COLUMNS = """trace_id, span_id, start_time, provider, response_model, request_model, input_tokens, output_tokens,
              cache_read_tokens, cache_write_tokens, reasoning_tokens, attributes, api_key_id,
              operation IN (SELECT unnest($free::VARCHAR[])) AND error_type IS NULL AS free,
              cost_usd, list_cost_usd, fees_usd, price_data_version, price_data_source"""
_STAGING = "_repriced"
# A call's provider and models as one text, to match a list of them.
_MODELS_KEY = "concat_ws(chr(31), coalesce(provider, ''), coalesce(response_model, ''), coalesce(request_model, ''))"


def _key(provider: str | None, response_model: str | None, request_model: str | None) -> str:
    return "\x1f".join((provider or "", response_model or "", request_model or ""))


def reprice_calls(
    con: duckdb.DuckDBPyConnection,
    pricer: Pricer,
    *,
    since: datetime | None = None,
    only_unpriced: bool = False,
    progress: TextIO | None = None,
) -> tuple[int, int]:
    """Price the stored calls (started since `since`; only those without a price) again; returns
    (changed, looked at). Runs in one transaction of its own."""
    conditions = ["TRUE"]
    params: dict = {"free": sorted(FREE_OPERATIONS)}
    if since is not None:
        conditions.append("start_time >= $since")
        params["since"] = since
    if only_unpriced:
        known = _now_known(con, pricer, since)
        if not known:
            return 0, 0
        conditions.append("cost_usd IS NULL")
        conditions.append(f"{_MODELS_KEY} IN (SELECT unnest($known::VARCHAR[]))")
        params["known"] = [_key(*combination) for combination in known]
    rows = con.execute(f"SELECT {_COLUMNS} FROM llm_call_spans WHERE {' AND '.join(conditions)}", params).fetchall()
    con.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (trace_id VARCHAR, span_id VARCHAR, cost_usd DOUBLE, "
        "list_cost_usd DOUBLE, fees_usd DOUBLE, price_data_version VARCHAR, price_data_source VARCHAR)"
    )
    con.execute(f"DELETE FROM {_STAGING}")
    changed = 0
    hours = set()  # of the calls repriced: their sums in the hourly rollup change with them
    con.execute("BEGIN TRANSACTION")
    try:
        appender = con.appender(_STAGING)
        for done, row in enumerate(rows, start=1):
            trace_id, span_id, start, provider, response_model, request_model, *counts = row[:10]
            reasoning, attributes, api_key_id, free, *stored = row[10:]
            price = price_of(
                pricer,
                provider=provider,
                response_model=response_model,
                request_model=request_model,
                start=start,
                counts=tuple(counts),
                reasoning_tokens=reasoning,
                attributes=attributes,
                api_key_id=api_key_id,
                free=bool(free),
            )
            new = (
                price.cost_usd,
                price.list_cost_usd,
                price.fees_usd,
                price.price_data_version,
                price.price_data_source,
            )
            if only_unpriced and price.cost_usd is None:
                continue
            if new != tuple(stored):
                changed += 1
                hours.add(rollup.hour_of(start))
                appender.append_row(trace_id, span_id, *new)
            if progress is not None and (done % REPRICE_BATCH == 0 or done == len(rows)):
                _bar(progress, done, len(rows))
        appender.flush()
        con.execute(
            f"""
            UPDATE llm_call_spans AS s SET cost_usd = r.cost_usd, list_cost_usd = r.list_cost_usd,
                fees_usd = r.fees_usd, price_data_version = r.price_data_version,
                price_data_source = r.price_data_source
            FROM {_STAGING} AS r WHERE s.trace_id = r.trace_id AND s.span_id = r.span_id
            """
        )
        con.execute(f"DELETE FROM {_STAGING}")
        rollup.refresh(con, hours)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    if progress is not None and rows:
        progress.write("\n")
    return changed, len(rows)


def _now_known(
    con: duckdb.DuckDBPyConnection, pricer: Pricer, since: datetime | None
) -> list[tuple[str, str | None, str | None]]:
    """The (provider, response model, request model) of unpriced calls that a price is known for now."""
    where = "" if since is None else "AND start_time >= $since"
    combinations = con.execute(
        f"""SELECT DISTINCT provider, response_model, request_model, max(start_time)
            FROM llm_call_spans WHERE cost_usd IS NULL {where} GROUP BY ALL""",
        {} if since is None else {"since": since},
    ).fetchall()
    return [
        (provider, response, request)
        for provider, response, request, last in combinations
        if pricer.knows(provider, (response, request), at=last)
    ]


def _bar(out: TextIO, done: int, total: int, width: int = 30) -> None:
    filled = width * done // total
    out.write(f"\rrepricing [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    out.flush()
