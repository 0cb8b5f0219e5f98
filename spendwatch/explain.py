"""`spendwatch explain TRACE_ID`: a trace's model-call spans, which were merged into which, and by what rule.

For the user who doubts a number: every span received for the calls of a trace is stored, and each one
that was not counted says which span was counted for it and why (collector/identity.py). Spans of other
traces that are the same calls (by response id: an SDK span in a trace of its own) are shown too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from spendwatch.errors import UserError

Query = Callable[[str, list[Any]], tuple[list[str], list[list[Any]]]]
_TRACE_ID = re.compile(r"[0-9a-f]{32}")

RULES = {
    "response_id": "the same response id",
    "ancestor": "one contains the other in the trace",
    "stream_record": "a stream and the record of its usage",
    "twin": "two instrumentations' spans of one call (same model and usage, no id)",
}

EXPLAIN_SQL = """
    WITH own AS (SELECT * FROM llm_call_spans WHERE trace_id = ?),
    related AS (
        SELECT * FROM own
        UNION
        SELECT * FROM llm_call_spans
        WHERE response_id IS NOT NULL
          AND lower(trim(response_id)) IN (SELECT lower(trim(response_id)) FROM own WHERE response_id IS NOT NULL)
        UNION
        SELECT * FROM llm_call_spans WHERE span_id IN (SELECT superseded_by FROM own)
    )
    SELECT trace_id, span_id, parent_span_id, start_time, instrumentation_scope AS scope,
           coalesce(provider_raw, provider) AS provider, coalesce(response_model, request_model) AS model,
           response_id, input_tokens, output_tokens, api_key_id, coalesce(error_type, '') AS error,
           cost_usd, CASE WHEN superseded THEN 'merged into ' || superseded_by ELSE 'counted' END AS counted,
           supersede_rule AS rule
    FROM related
    ORDER BY start_time, span_id
"""


def explain(query: Query, trace_id: str) -> tuple[list[str], list[list[Any]]]:
    trace_id = trace_id.strip().lower()
    if _TRACE_ID.fullmatch(trace_id) is None:
        raise UserError(f"{trace_id!r} is not a trace id: expected 32 hex digits, as OpenTelemetry tools show them")
    columns, rows = query(EXPLAIN_SQL, [trace_id])
    if not rows:
        raise UserError(f"no model-call spans stored for trace {trace_id}")
    return columns, rows


def summary(columns: list[str], rows: list[list[Any]]) -> str:
    """The lines under the table: how many calls the spans make, and what each rule means."""
    counted = columns.index("counted")
    rule = columns.index("rule")
    calls = sum(row[counted] == "counted" for row in rows)
    used = sorted({row[rule] for row in rows if row[rule]})
    lines = [f"{len(rows)} span(s), {calls} call(s) counted."]
    lines += [f"  {name}: {RULES.get(name, name)}" for name in used]
    return "\n".join(lines)
