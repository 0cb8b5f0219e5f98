"""Anthropic's Admin API: the Messages usage report, the cost report and the API keys, as billed rows.

From Anthropic's API reference: `GET /v1/organizations/usage_report/messages` with `starting_at` in RFC
3339, `bucket_width=1d`, `group_by[]` model, api_key_id, workspace_id and service_tier, up to 31 buckets
a page, following `next_page` while `has_more`; each result counts uncached input, cache reads and cache
creation (5-minute and 1-hour) apart — stored as `llm_calls` counts them, input including all three. No
request count is reported. `GET /v1/organizations/cost_report` gives amounts in cents as decimal strings
(`"123.45"` is $1.2345) per workspace and description (model, token type, service tier); it cannot be
grouped by key, so per-key dollars are spendwatch's pricing of the usage report. Keys come from
`/v1/organizations/api_keys` with their `partial_key_hint`. Every request carries `x-api-key` and
`anthropic-version`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from spendwatch.billing.client import MAX_PAGES, AdminApiError, AdminClient, buckets
from spendwatch.billing.rows import CostRow, KeyRow, Stream, UsageRow, hint_of

NAME = "anthropic"
API_VERSION = "2023-06-01"
USAGE_GROUPS = ("model", "api_key_id", "workspace_id", "service_tier")
COST_GROUPS = ("workspace_id", "description")
STREAMS = ("usage/messages", "cost_report")
PAGE_BUCKETS = 31


def auth_headers(key: str) -> dict[str, str]:
    return {"x-api-key": key, "anthropic-version": API_VERSION}


def fetch(client: AdminClient, stream: str, start: datetime, now: datetime) -> Stream:
    result = Stream(NAME, stream, start)
    if stream == "usage/messages":
        params = [("bucket_width", "1d"), ("limit", str(PAGE_BUCKETS)), *(("group_by[]", g) for g in USAGE_GROUPS)]
        for bucket in _buckets(client, "/v1/organizations/usage_report/messages", start, params, result):
            for item in bucket["results"]:
                result.usage.append(_usage_row(bucket, item))
        return result
    params = [("bucket_width", "1d"), ("limit", str(PAGE_BUCKETS)), *(("group_by[]", g) for g in COST_GROUPS)]
    for bucket in _buckets(client, "/v1/organizations/cost_report", start, params, result):
        for item in bucket["results"]:
            result.costs.append(_cost_row(bucket, item))
    return result


def keys(client: AdminClient) -> list[KeyRow]:
    found = []
    after: str | None = None
    for _ in range(MAX_PAGES):
        document = client.get(
            "/v1/organizations/api_keys", [("limit", "1000"), *([("after_id", after)] if after else [])]
        )
        data = document.get("data") if isinstance(document, dict) else None
        if not isinstance(data, list):
            raise AdminApiError("anthropic admin API: an answer without a data list on /v1/organizations/api_keys")
        for key in data:
            found.append(
                KeyRow(
                    provider=NAME,
                    provider_key_id=str(key["id"]),
                    name=key.get("name"),
                    redacted_value=key.get("partial_key_hint"),
                    hint=hint_of(key.get("partial_key_hint")),
                    project_id=key.get("workspace_id"),
                    status=key.get("status"),
                )
            )
        after = document.get("last_id")
        if not document.get("has_more") or not after:
            break
    return found


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _buckets(client: AdminClient, path: str, start: datetime, params: list, stream: Stream) -> Iterator[dict]:
    return buckets(client, path, [("starting_at", _rfc3339(start)), *params], stream)


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _usage_row(bucket: dict, item: dict) -> UsageRow:
    creation = item.get("cache_creation") or {}
    cache_write = _count(creation.get("ephemeral_5m_input_tokens")) + _count(creation.get("ephemeral_1h_input_tokens"))
    cache_read = _count(item.get("cache_read_input_tokens"))
    return UsageRow(
        provider=NAME,
        source="messages",
        bucket_start=_moment(bucket["starting_at"]),
        bucket_end=_moment(bucket["ending_at"]),
        model=item.get("model"),
        provider_key_id=item.get("api_key_id"),
        project_id=item.get("workspace_id"),
        service_tier=item.get("service_tier"),
        requests=None,  # the usage report counts tokens, not requests
        input_tokens=_count(item.get("uncached_input_tokens")) + cache_read + cache_write,
        output_tokens=_count(item.get("output_tokens")),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def _cost_row(bucket: dict, item: dict) -> CostRow:
    return CostRow(
        provider=NAME,
        bucket_start=_moment(bucket["starting_at"]),
        bucket_end=_moment(bucket["ending_at"]),
        grouping=",".join(COST_GROUPS),
        line_item=item.get("description"),
        model=item.get("model"),
        project_id=item.get("workspace_id"),
        provider_key_id=None,
        amount_usd=Decimal(str(item.get("amount") or "0")) / 100,  # cents as a decimal string
        currency=str(item.get("currency") or "USD").lower(),
    )
