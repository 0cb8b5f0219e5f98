"""OpenAI's organization Usage and Costs APIs, and its projects' API keys, as billed rows.

From OpenAI's API reference: `GET /v1/organization/usage/{completions, embeddings, moderations, images,
audio_speeches, audio_transcriptions, vector_stores, code_interpreter_sessions}` and `GET
/v1/organization/costs`, with `start_time` in epoch seconds, `bucket_width=1d`, `group_by[]` over the
fields each endpoint allows and `limit` buckets a page (31 for usage, 180 for costs), following
`next_page` while `has_more`. Completions count input including cached and cache-write tokens, as
`llm_calls` does; embeddings and moderations count input tokens; the rest count images, characters,
seconds, bytes or sessions. Costs come in dollars, per line item and project; per API key only for
buckets from 2025-12-01 (before, OpenAI did not attribute dollars to keys), asked for apart so that the two
groupings never add up. Keys come from each project's key list, with their redacted values.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from spendwatch.billing.client import MAX_PAGES, AdminApiError, AdminClient, buckets
from spendwatch.billing.rows import CostRow, KeyRow, Stream, UsageRow, hint_of

NAME = "openai"
# endpoint -> the fields its buckets are grouped by, and the unit it counts when it counts no tokens
USAGE = {
    "completions": (("model", "project_id", "api_key_id", "batch"), None),
    "embeddings": (("model", "project_id", "api_key_id"), None),
    "moderations": (("model", "project_id", "api_key_id"), None),
    "images": (("model", "project_id", "api_key_id"), ("images", "images")),
    "audio_speeches": (("model", "project_id", "api_key_id"), ("characters", "characters")),
    "audio_transcriptions": (("model", "project_id", "api_key_id"), ("seconds", "seconds")),
    "vector_stores": (("project_id",), ("usage_bytes", "bytes")),
    "code_interpreter_sessions": (("project_id",), ("num_sessions", "sessions")),
}
COSTS_GROUPING = ("line_item", "project_id")
KEY_COSTS_GROUPING = ("api_key_id",)
PER_KEY_COSTS_FROM = datetime(2025, 12, 1, tzinfo=UTC)
STREAMS = (*(f"usage/{source}" for source in USAGE), "costs", "costs/api_key_id")
USAGE_PAGE_BUCKETS = 31
COSTS_PAGE_BUCKETS = 180


def auth_headers(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def fetch(client: AdminClient, stream: str, start: datetime, now: datetime) -> Stream:
    result = Stream(NAME, stream, start)
    if stream.startswith("usage/"):
        source = stream.removeprefix("usage/")
        groups, unit = USAGE[source]
        params = [("bucket_width", "1d"), ("limit", str(USAGE_PAGE_BUCKETS)), *(("group_by[]", g) for g in groups)]
        for bucket in _buckets(client, f"/organization/usage/{source}", start, params, result):
            for item in bucket["results"]:
                result.usage.append(_usage_row(source, unit, bucket, item))
        return result
    grouping = KEY_COSTS_GROUPING if stream == "costs/api_key_id" else COSTS_GROUPING
    if grouping is KEY_COSTS_GROUPING:
        result.start = start = max(start, PER_KEY_COSTS_FROM)
        if start >= now:
            return result
    params = [("bucket_width", "1d"), ("limit", str(COSTS_PAGE_BUCKETS)), *(("group_by[]", g) for g in grouping)]
    for bucket in _buckets(client, "/organization/costs", start, params, result):
        for item in bucket["results"]:
            row = _cost_row(bucket, item, ",".join(grouping))
            if row is not None:
                result.costs.append(row)
    return result


def keys(client: AdminClient) -> list[KeyRow]:
    found = []
    for project in _listed(client, "/organization/projects"):
        for key in _listed(client, f"/organization/projects/{project['id']}/api_keys"):
            found.append(
                KeyRow(
                    provider=NAME,
                    provider_key_id=str(key["id"]),
                    name=key.get("name"),
                    redacted_value=key.get("redacted_value"),
                    hint=hint_of(key.get("redacted_value")),
                    project_id=project["id"],
                    status=key.get("owner_project_access"),
                )
            )
    return found


def _buckets(client: AdminClient, path: str, start: datetime, params: list, stream: Stream) -> Iterator[dict]:
    return buckets(client, path, [("start_time", str(int(start.timestamp()))), *params], stream)


def _listed(client: AdminClient, path: str) -> Iterator[dict]:
    after: str | None = None
    for _ in range(MAX_PAGES):
        document = client.get(path, [("limit", "100"), *([("after", after)] if after else [])])
        data = document.get("data") if isinstance(document, dict) else None
        if not isinstance(data, list):
            raise AdminApiError(f"openai admin API: an answer without a data list on {path}")
        yield from data
        after = document.get("last_id") or (data[-1].get("id") if data else None)
        if not document.get("has_more") or not after:
            return


def _moment(seconds: Any) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC)


def _count(item: dict, name: str) -> int:
    value = item.get(name)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _usage_row(source: str, unit: tuple[str, str] | None, bucket: dict, item: dict) -> UsageRow:
    tokens = unit is None
    with_output = source == "completions"
    return UsageRow(
        provider=NAME,
        source=source,
        bucket_start=_moment(bucket["start_time"]),
        bucket_end=_moment(bucket["end_time"]),
        model=item.get("model"),
        provider_key_id=item.get("api_key_id"),
        project_id=item.get("project_id"),
        service_tier="batch" if item.get("batch") is True else None,
        requests=_count(item, "num_model_requests") if "num_model_requests" in item else None,
        input_tokens=_count(item, "input_tokens") if tokens else None,
        output_tokens=_count(item, "output_tokens") if with_output else (0 if tokens else None),
        cache_read_tokens=_count(item, "input_cached_tokens") if tokens else None,
        cache_write_tokens=_count(item, "input_cache_write_tokens") if tokens else None,
        units=float(_count(item, unit[0])) if unit else None,
        unit=unit[1] if unit else None,
    )


def _cost_row(bucket: dict, item: dict, grouping: str) -> CostRow | None:
    amount = item.get("amount") or {}
    value = amount.get("value")
    if value is None:
        return None
    line_item = item.get("line_item")
    return CostRow(
        provider=NAME,
        bucket_start=_moment(bucket["start_time"]),
        bucket_end=_moment(bucket["end_time"]),
        grouping=grouping,
        line_item=line_item,
        # "gpt-4o-mini-2024-07-18, input": the model is the part before the kind of charge
        model=line_item.split(", ", 1)[0] if isinstance(line_item, str) and ", " in line_item else None,
        project_id=item.get("project_id"),
        provider_key_id=item.get("api_key_id"),
        amount_usd=Decimal(str(value)),
        currency=str(amount.get("currency") or "usd").lower(),
    )
