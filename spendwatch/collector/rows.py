"""A stored span, as the span parser makes it and the writer appends it: one named record, one column order.

Times are nanoseconds since the epoch (the writer turns them into TIMESTAMPTZ); `attributes` is JSON text.
"""

from __future__ import annotations

from typing import NamedTuple


class SpanRow(NamedTuple):
    trace_id: str
    span_id: str
    parent_span_id: str | None
    start_ns: int
    end_ns: int
    service_name: str | None
    provider: str
    operation: str | None
    request_model: str | None
    response_model: str | None
    response_id: str | None
    streaming: bool | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    reasoning_tokens: int | None
    usage_estimated: bool
    cost_usd: float | None
    api_key_id: str | None
    api_key_hint: str | None
    status_code: int | None
    error_type: str | None
    finish_reasons: list[str] | None
    server_address: str | None
    attributes: str
    instrumentation_scope: str | None
    from_spendwatch: bool
    provider_raw: str | None = None  # what the instrumentation sent, where it differs from `provider`
    fees_usd: float | None = None  # the part of cost_usd that is per-use fees (web searches, grounding)
    user: str | None = None  # who the call was for (collector/attribution.py)
    tenant: str | None = None
    feature: str | None = None
    agent: str | None = None
    conversation: str | None = None
    tags: dict[str, str] | None = None
    list_cost_usd: float | None = None  # list price; cost_usd is what is paid (discounts applied)
    price_data_version: str | None = None  # the price data that priced it (`bundled-0.2.3`, `fetched-...`)
    price_data_source: str | None = None  # where that data came from (`bundled`, a URL, `[prices.models]`)


_SQL_TYPES = {
    "trace_id": "VARCHAR",
    "span_id": "VARCHAR",
    "parent_span_id": "VARCHAR",
    "start_ns": "BIGINT",
    "end_ns": "BIGINT",
    "service_name": "VARCHAR",
    "provider": "VARCHAR",
    "operation": "VARCHAR",
    "request_model": "VARCHAR",
    "response_model": "VARCHAR",
    "response_id": "VARCHAR",
    "streaming": "BOOLEAN",
    "input_tokens": "BIGINT",
    "output_tokens": "BIGINT",
    "cache_read_tokens": "BIGINT",
    "cache_write_tokens": "BIGINT",
    "reasoning_tokens": "BIGINT",
    "usage_estimated": "BOOLEAN",
    "cost_usd": "DOUBLE",
    "api_key_id": "VARCHAR",
    "api_key_hint": "VARCHAR",
    "status_code": "INTEGER",
    "error_type": "VARCHAR",
    "finish_reasons": "VARCHAR[]",
    "server_address": "VARCHAR",
    "attributes": "VARCHAR",
    "instrumentation_scope": "VARCHAR",
    "from_spendwatch": "BOOLEAN",
    "provider_raw": "VARCHAR",
    "fees_usd": "DOUBLE",
    "user": "VARCHAR",
    "tenant": "VARCHAR",
    "feature": "VARCHAR",
    "agent": "VARCHAR",
    "conversation": "VARCHAR",
    "tags": "MAP(VARCHAR, VARCHAR)",
    "list_cost_usd": "DOUBLE",
    "price_data_version": "VARCHAR",
    "price_data_source": "VARCHAR",
}
# The order of a row's values, with their DuckDB types.
ROW_COLUMNS: tuple[tuple[str, str], ...] = tuple((name, _SQL_TYPES[name]) for name in SpanRow._fields)


class SpanLink(NamedTuple):
    """A span that is not a model call, kept a while for its parent: the chain between an SDK's span and
    the HTTP-level span of the same call often runs through such spans (an HTTP client's, a framework's)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    attribution: str | None = None  # JSON: what the span says of who its calls were for, when it says it
