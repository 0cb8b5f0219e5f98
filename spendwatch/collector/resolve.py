"""Applying call identity (identity.py) to the stored spans, inside the writer's transaction.

After a batch is inserted, only the spans that now share a trace or a response id with another stored
span can change: they and everything connected to them (the traces of spans sharing their response ids,
and so on) are read, decided again as a whole, and the rows whose decision changed are updated. A batch
of calls that each arrive alone — the common case — costs two grouped scans of the batch's time window.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from spendwatch.collector.identity import (
    ATTRIBUTION_COLUMNS,
    COLUMN_MARK,
    FILLABLE_COLUMNS,
    FILLED,
    MAX_ANCESTRY_DEPTH,
    Span,
    resolve,
)
from spendwatch.collector.rollup import hour_of_ns
from spendwatch.collector.rollup import refresh as refresh_rollup

_COMPONENT = "_identity_traces"
_UPDATES = "_identity_updates"
_MAX_CLOSURE_ROUNDS = 8
_TRACES_PER_PASS = 20_000
EVER = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2300, 1, 1, tzinfo=UTC))
_KEY = "lower(trim(response_id))"

_SPAN_COLUMNS = """
    trace_id, span_id, parent_span_id, epoch_ns(start_time), epoch_ns(end_time), service_name, provider,
    instrumentation_scope, from_spendwatch, response_id, request_model, response_model, input_tokens,
    output_tokens, error_type IS NOT NULL OR coalesce(status_code, 0) >= 400, operation, streaming, attributes,
    superseded, superseded_by, supersede_rule, user, tenant, feature, agent, conversation, tags
"""


def _temp_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_COMPONENT} (trace_id VARCHAR)")
    con.execute(
        f"""CREATE TEMP TABLE IF NOT EXISTS {_UPDATES} (
            trace_id VARCHAR, span_id VARCHAR, superseded BOOLEAN, superseded_by VARCHAR, supersede_rule VARCHAR,
            operation VARCHAR, request_model VARCHAR, response_model VARCHAR, response_id VARCHAR,
            streaming BOOLEAN, user VARCHAR, tenant VARCHAR, feature VARCHAR, agent VARCHAR, conversation VARCHAR,
            tags MAP(VARCHAR, VARCHAR), attributes VARCHAR)"""
    )


def resolve_batch(con: duckdb.DuckDBPyConnection, staging: str, first: datetime, last: datetime) -> int:
    """Decide again every call the spans in `staging` (just inserted) are part of; returns the rows changed."""
    window = {"first": first, "last": last}
    seeds = _traces_with_several_calls(con, f"SELECT trace_id FROM {staging}", window)
    seeds |= {  # a call beneath a span that says who it was for
        trace_id
        for (trace_id,) in con.execute(
            f"""SELECT DISTINCT trace_id FROM span_links
                WHERE attribution IS NOT NULL AND trace_id IN (SELECT trace_id FROM {staging})"""
        ).fetchall()
    }
    seeds |= _traces_sharing_response_ids(con, f"SELECT {_KEY} FROM {staging} WHERE response_id IS NOT NULL", window)
    if not seeds:
        return 0
    return _resolve_traces(con, seeds, window)


def resolve_linked(
    con: duckdb.DuckDBPyConnection,
    traces: Iterable[str],
    now: datetime,
    horizon: timedelta,
    attributed: Iterable[str] = (),
) -> int:
    """Parent links arrived (spans that are not model calls): decide again the calls of their traces that
    started within twice `horizon` of now — links are about recent traffic. In the `attributed` traces a
    link says who the calls were for, so even one call there is decided again."""
    window = {"first": now - 2 * horizon, "last": now + horizon}
    _temp_tables(con)
    con.execute(f"DELETE FROM {_COMPONENT}")
    con.execute(f"INSERT INTO {_COMPONENT} SELECT unnest($traces)", {"traces": sorted(set(traces))})
    seeds = _traces_with_several_calls(con, f"SELECT trace_id FROM {_COMPONENT}", window)
    attributed = sorted(set(attributed))
    if attributed:
        seeds |= {
            trace_id
            for (trace_id,) in con.execute(
                """SELECT DISTINCT trace_id FROM llm_call_spans
                   WHERE start_time BETWEEN $first AND $last AND trace_id IN (SELECT unnest($traces))""",
                {**window, "traces": attributed},
            ).fetchall()
        }
    return _resolve_traces(con, seeds, window) if seeds else 0


def resolve_stored(con: duckdb.DuckDBPyConnection, since: datetime | None) -> int:
    """Decide again every call stored since `since` (all, with None): for a migration or a repair."""
    first, last = (since or EVER[0]), EVER[1]
    window = {"first": first, "last": last}
    seeds = {
        trace_id
        for (trace_id,) in con.execute(
            "SELECT trace_id FROM llm_call_spans WHERE start_time BETWEEN $first AND $last "
            "GROUP BY trace_id HAVING count(*) > 1",
            window,
        ).fetchall()
    }
    seeds |= _traces_sharing_response_ids(
        con,
        f"SELECT {_KEY} FROM llm_call_spans WHERE start_time BETWEEN $first AND $last AND response_id IS NOT NULL",
        window,
    )
    changed = 0
    pending = sorted(seeds)
    done: set[str] = set()
    while pending:
        chunk = [trace_id for trace_id in pending[:_TRACES_PER_PASS] if trace_id not in done]
        pending = pending[_TRACES_PER_PASS:]
        if chunk:
            changed += _resolve_traces(con, set(chunk), window, done=done)
    return changed


def _traces_with_several_calls(con: duckdb.DuckDBPyConnection, traces_sql: str, window: dict) -> set[str]:
    """The traces among `traces_sql`'s that hold more than one stored model-call span in the window."""
    return {
        trace_id
        for (trace_id,) in con.execute(
            f"""SELECT trace_id FROM llm_call_spans
                WHERE start_time BETWEEN $first AND $last AND trace_id IN ({traces_sql})
                GROUP BY trace_id HAVING count(*) > 1""",
            window,
        ).fetchall()
    }


def _traces_sharing_response_ids(con: duckdb.DuckDBPyConnection, keys_sql: str, window: dict) -> set[str]:
    """Traces of the stored spans whose response id is among `keys_sql`'s and is shared by two spans."""
    return {
        trace_id
        for (trace_id,) in con.execute(
            f"""WITH shared AS (
                    SELECT {_KEY} AS key FROM llm_call_spans
                    WHERE start_time BETWEEN $first AND $last AND response_id IS NOT NULL
                      AND {_KEY} IN ({keys_sql})
                    GROUP BY key HAVING count(*) > 1
                )
                SELECT DISTINCT trace_id FROM llm_call_spans
                WHERE start_time BETWEEN $first AND $last AND response_id IS NOT NULL
                  AND {_KEY} IN (SELECT key FROM shared)""",
            window,
        ).fetchall()
    }


def _resolve_traces(con: duckdb.DuckDBPyConnection, seeds: set[str], window: dict, done: set[str] | None = None) -> int:
    _temp_tables(con)
    traces = set(seeds)
    rows = _load(con, traces, window)
    for _ in range(_MAX_CLOSURE_ROUNDS):  # the traces of spans that share a response id with these
        keys = sorted({row[9].strip().lower() for row in rows if row[9]})
        if not keys:
            break
        more = {
            trace_id
            for (trace_id,) in con.execute(
                f"""SELECT DISTINCT trace_id FROM llm_call_spans
                    WHERE start_time BETWEEN $first AND $last AND response_id IS NOT NULL
                      AND {_KEY} IN (SELECT unnest($keys))""",
                {**window, "keys": keys},
            ).fetchall()
        } - traces
        if not more:
            break
        traces |= more
        rows += _load(con, more, window)
    if done is not None:
        done |= traces
    parents, said = _links(con, traces)
    spans = [_span(row) for row in rows]
    own = [span.own() for span in spans]
    inherited = inherit(own, parents, said)
    with_inherited = [
        replace(span, **{mark[len(COLUMN_MARK) :]: value for mark, (value, _) in inherited[span.key].items()})
        for span in own
    ]
    decisions = resolve(with_inherited, parents)
    updates = []
    hours = set()  # of the spans changed: their sums in the rollup change with them
    for row, span, own_span in zip(rows, spans, own, strict=True):
        decision = decisions[span.key]
        target = _target(own_span, {**inherited[span.key], **decision.fills})
        current = (row[18], row[19], row[20], *(getattr(span, column) for column in FILLABLE_COLUMNS), span.attributes)
        wanted = (decision.superseded_by is not None, decision.superseded_by, decision.rule, *target)
        if wanted != current:
            hours.add(hour_of_ns(row[3]))
            updates.append((span.trace_id, span.span_id, *wanted[:-1], json.dumps(wanted[-1], separators=(",", ":"))))
    if not updates:
        return 0
    con.execute(f"DELETE FROM {_UPDATES}")
    appender = con.appender(_UPDATES)
    appender.append_rows(updates)
    appender.flush()
    con.execute(
        f"""UPDATE llm_call_spans AS s SET superseded = u.superseded, superseded_by = u.superseded_by,
                supersede_rule = u.supersede_rule, operation = u.operation, request_model = u.request_model,
                response_model = u.response_model, response_id = u.response_id, streaming = u.streaming,
                user = u.user, tenant = u.tenant, feature = u.feature, agent = u.agent,
                conversation = u.conversation, tags = u.tags, attributes = u.attributes
            FROM {_UPDATES} AS u
            WHERE s.start_time BETWEEN $first AND $last AND s.trace_id = u.trace_id AND s.span_id = u.span_id""",
        window,
    )
    con.execute(f"DELETE FROM {_UPDATES}")
    refresh_rollup(con, hours)
    return len(updates)


def _load(con: duckdb.DuckDBPyConnection, traces: Iterable[str], window: dict) -> list[tuple]:
    con.execute(f"DELETE FROM {_COMPONENT}")
    con.execute(f"INSERT INTO {_COMPONENT} SELECT unnest($traces)", {"traces": sorted(traces)})
    return con.execute(
        f"""SELECT {_SPAN_COLUMNS} FROM llm_call_spans
            WHERE start_time BETWEEN $first AND $last AND trace_id IN (SELECT trace_id FROM {_COMPONENT})""",
        window,
    ).fetchall()


def _links(
    con: duckdb.DuckDBPyConnection, traces: set[str]
) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], dict[str, Any]]]:
    """The parents of the traces' spans that are not model calls, and what those spans say of attribution."""
    con.execute(f"DELETE FROM {_COMPONENT}")
    con.execute(f"INSERT INTO {_COMPONENT} SELECT unnest($traces)", {"traces": sorted(traces)})
    parents: dict[tuple[str, str], str] = {}
    said: dict[tuple[str, str], dict[str, Any]] = {}
    for trace_id, span_id, parent, attribution in con.execute(
        f"SELECT trace_id, span_id, parent_span_id, attribution FROM span_links "
        f"WHERE trace_id IN (SELECT trace_id FROM {_COMPONENT})"
    ).fetchall():
        parents[(trace_id, span_id)] = parent
        if attribution:
            said[(trace_id, span_id)] = json.loads(attribution)
    return parents, said


def inherit(
    spans: list[Span], parents: dict[tuple[str, str], str], said: dict[tuple[str, str], dict[str, Any]]
) -> dict[tuple[str, str], dict[str, tuple[Any, str]]]:
    """For each span (as received), the attribution it lacks and the nearest span around it says:
    `{"@user": (value, "^" + that span's id)}`. The spans around are model-call spans of the set and the
    spans that are not model calls whose links say something (`said`)."""
    by_key = {span.key: span for span in spans}
    found: dict[tuple[str, str], dict[str, tuple[Any, str]]] = {}
    for span in spans:
        fills: dict[str, tuple[Any, str]] = {}
        missing = [column for column in ATTRIBUTION_COLUMNS if getattr(span, column) is None]
        parent = span.parent_span_id
        steps = 0
        while parent and missing and steps < MAX_ANCESTRY_DEPTH:
            steps += 1
            key = (span.trace_id, parent)
            ancestor = by_key.get(key)
            values = (
                {column: getattr(ancestor, column) for column in ATTRIBUTION_COLUMNS}
                if ancestor is not None
                else said.get(key, {})
            )
            for column in list(missing):
                if values.get(column) is not None:
                    fills[COLUMN_MARK + column] = (values[column], "^" + parent)
                    missing.remove(column)
            parent = ancestor.parent_span_id if ancestor is not None else parents.get(key)
        found[span.key] = fills
    return found


def _span(row: tuple) -> Span:
    attributes = json.loads(row[17]) if row[17] else {}
    user, tenant, feature, agent, conversation, tags = row[21:27]
    return Span(
        user=user,
        tenant=tenant,
        feature=feature,
        agent=agent,
        conversation=conversation,
        tags=dict(tags) if tags else None,
        trace_id=row[0],
        span_id=row[1],
        parent_span_id=row[2],
        start_ns=row[3],
        end_ns=row[4],
        service_name=row[5],
        provider=row[6],
        scope=row[7],
        from_spendwatch=row[8],
        response_id=row[9],
        request_model=row[10],
        response_model=row[11],
        input_tokens=row[12],
        output_tokens=row[13],
        failed=bool(row[14]),
        operation=row[15],
        streaming=row[16],
        attributes=attributes if isinstance(attributes, dict) else {},
    )


def _target(span: Span, fills: dict[str, tuple[Any, str]]) -> tuple:
    """The stored values a span should have: its own, and for a leader what its group filled in."""
    own = span.own()
    columns = {column: getattr(own, column) for column in FILLABLE_COLUMNS}
    attributes = dict(own.attributes)
    filled: dict[str, str] = {}
    for name, (value, source) in sorted(fills.items()):
        if name.startswith(COLUMN_MARK):
            columns[name[len(COLUMN_MARK) :]] = value
        else:
            attributes[name] = value
        filled[name] = source
    if filled:
        attributes[FILLED] = filled
    return (*(columns[column] for column in FILLABLE_COLUMNS), attributes)


LINKS_WITHOUT_CALLS = timedelta(minutes=10)


def prune_links(con: duckdb.DuckDBPyConnection, now: datetime, horizon: timedelta) -> int:
    """Forget the parents of spans that are not model calls: after `LINKS_WITHOUT_CALLS` in a trace where
    no model call arrived (most of an app's traces), after `horizon` in the others."""
    (quiet,) = con.execute(
        """DELETE FROM span_links WHERE received_at < $quiet AND trace_id NOT IN (
               SELECT trace_id FROM llm_call_spans WHERE received_at >= $since)""",
        {"quiet": now - LINKS_WITHOUT_CALLS, "since": now - horizon - LINKS_WITHOUT_CALLS},
    ).fetchone()
    (old,) = con.execute("DELETE FROM span_links WHERE received_at < ?", [now - horizon]).fetchone()
    return int(quiet) + int(old)
