"""The stand-in's admin APIs: what a provider publishes about what it billed, for the stand-in's own ledger.

Real providers publish their bill: OpenAI's organization Usage API (`GET /v1/organization/usage/{kind}`),
its Costs API (`/v1/organization/costs`) and its projects' API keys; Anthropic's Admin API usage report
(`/v1/organizations/usage_report/messages`), cost report (`/v1/organizations/cost_report`) and API keys.
The stand-in answers the same requests from what it billed (`StandinServer.billed`, one entry per request
it answered as billable) plus `StandinServer.usage`, records a test adds for what the stand-in does not
serve (images, audio, storage, a batch job), so a test can hold what spendwatch observed against what the
provider says it billed. It lives beside the LLM stand-in because it is the same provider: its admin
API reports the same ledger, as a real provider's does.

As documented: time buckets snapped to the width in UTC (OpenAI: epoch seconds, Anthropic: RFC 3339),
every bucket of the range listed (empty ones too), `limit` buckets a page with `has_more` and an opaque
`next_page` cursor passed back as `page`; `group_by[]` over the fields each endpoint allows, the other
fields null; OpenAI costs in dollars per `line_item` (per key only for buckets from 2025-12-01),
Anthropic costs in cents as decimal strings. Errors in each provider's shape: 400 for a bad parameter,
401 for a missing or wrong admin key — whose message quotes the credential back, which a client must never
repeat — and 429 with `retry-after` when a test asks for it (`StandinServer.fail_admin`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spendwatch.standin.exchange import Billed

OPENAI_USAGE_PREFIX = "/v1/organization/usage/"
PER_KEY_COSTS_FROM = datetime(2025, 12, 1, tzinfo=UTC)  # OpenAI reports costs per API key from this day on
WIDTHS = {"1m": timedelta(minutes=1), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}  # (default, maximum) buckets a page
DEFAULT_PROJECT = "proj_standin"

# What each OpenAI usage endpoint may be grouped by, and what its results count.
OPENAI_GROUPS = {
    "completions": ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier"),
    "embeddings": ("project_id", "user_id", "api_key_id", "model"),
    "moderations": ("project_id", "user_id", "api_key_id", "model"),
    "images": ("project_id", "user_id", "api_key_id", "model", "size", "source"),
    "audio_speeches": ("project_id", "user_id", "api_key_id", "model"),
    "audio_transcriptions": ("project_id", "user_id", "api_key_id", "model"),
    "vector_stores": ("project_id",),
    "code_interpreter_sessions": ("project_id",),
}
OPENAI_UNITS = {  # the count a non-token endpoint reports, and the stand-in's price of one
    "images": ("images", Decimal("0.04")),
    "audio_speeches": ("characters", Decimal("0.000015")),
    "audio_transcriptions": ("seconds", Decimal("0.0001")),
    "vector_stores": ("usage_bytes", Decimal("0.0000000001")),
    "code_interpreter_sessions": ("num_sessions", Decimal("0.03")),
}
OPENAI_COST_GROUPS = ("project_id", "user_id", "line_item", "api_key_id", "api_source")
ANTHROPIC_GROUPS = ("api_key_id", "workspace_id", "model", "service_tier", "context_window")
ANTHROPIC_COST_GROUPS = ("workspace_id", "description")
FALLBACK_RATES = (Decimal("0.000001"), Decimal("0.000002"))  # per token in and out, for models genai-prices lacks


@dataclass(frozen=True)
class AdminUsage:
    """One billed request (or a day's storage) as the provider's usage reports count it."""

    provider: str  # openai | anthropic
    source: str  # completions, embeddings, ..., or messages for anthropic
    at: float  # epoch seconds
    model: str | None
    key: str | None
    project: str | None = None  # OpenAI project, Anthropic workspace (None: the default workspace)
    input: int = 0  # semconv: includes cache reads and writes
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    requests: int = 1
    units: int = 0  # images, characters, seconds, bytes or sessions (OPENAI_UNITS)
    batch: bool = False
    service_tier: str = "standard"


@dataclass
class AdminFault:
    status: int
    retry_after: str | None


@dataclass
class AdminState:
    """What the admin APIs need beyond the ledger: their keys, injected faults, and what they were asked."""

    keys: dict[str, str] = field(default_factory=dict)  # provider -> the admin key it accepts
    faults: list[AdminFault] = field(default_factory=list)
    requests: list[tuple[float, str, dict[str, list[str]], int]] = field(default_factory=list)


def usage_of(billed: Billed) -> AdminUsage | None:
    """The ledger entry of an answered LLM request as its provider's usage API counts it (None: not billed
    by OpenAI or Anthropic)."""
    path = billed.path
    if "/deployments/" in path:  # Azure's deployments bill through Azure, not OpenAI
        return None
    if path.endswith("/v1/messages"):
        provider, source = "anthropic", "messages"
    elif path.endswith(("/chat/completions", "/responses", "/completions")):
        provider, source = "openai", "completions"  # the Responses API is counted under completions
    elif path.endswith("/embeddings"):
        provider, source = "openai", "embeddings"
    else:
        return None
    project = billed.project if provider == "anthropic" else (billed.project or DEFAULT_PROJECT)
    usage = billed.usage
    return AdminUsage(
        provider=provider,
        source=source,
        at=billed.at,
        model=billed.served_model or billed.model,
        key=billed.key,
        project=project,
        input=usage.input,
        output=usage.output,
        cache_read=usage.cache_read,
        cache_write=usage.cache_write,
    )


def key_id(provider: str, key: str) -> str:
    digest = hashlib.sha256(f"{provider}:{key}".encode()).hexdigest()
    return f"key_{digest[:20]}" if provider == "openai" else f"apikey_01{digest[:22]}"


def redacted(provider: str, key: str) -> str:
    return f"{key[:8]}...{key[-4:]}" if provider == "openai" else f"{key[:16]}...{key[-4:]}"


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def answer(
    state: AdminState, records: list[AdminUsage], path: str, query: dict[str, list[str]], headers: Any, now: datetime
) -> tuple[int, dict[str, str], Any] | None:
    """(status, headers, body) for an admin request, or None when `path` is no admin route."""
    provider = "openai" if path.startswith("/v1/organization/") else "anthropic"
    if not path.startswith(("/v1/organization/", "/v1/organizations/")):
        return None
    supplied = _credential(provider, headers)
    if supplied != state.keys.get(provider):
        # Real providers quote part of a wrong key back; this one quotes all of it, so that a client that
        # repeated the provider's message would be caught repeating a credential.
        message = f"Incorrect admin API key provided: {supplied!r}" if supplied else "Missing admin API key"
        return _error(provider, 401, message, "authentication_error")
    if provider == "anthropic" and not headers.get("anthropic-version"):
        return _error(provider, 400, "anthropic-version: header is required", "invalid_request_error")
    if state.faults:
        fault = state.faults.pop(0)
        extra = {"retry-after": fault.retry_after} if fault.retry_after is not None else {}
        status, _, body = _error(provider, fault.status, "Rate limit reached for admin requests", "rate_limit_error")
        return status, extra, body
    mine = [record for record in records if record.provider == provider]
    try:
        if path.startswith(OPENAI_USAGE_PREFIX) and path[len(OPENAI_USAGE_PREFIX) :] in OPENAI_GROUPS:
            return 200, {}, _openai_usage(path[len(OPENAI_USAGE_PREFIX) :], mine, query, now)
        if path == "/v1/organization/costs":
            return 200, {}, _openai_costs(mine, query, now)
        if path == "/v1/organization/projects":
            return 200, {}, _openai_list(_openai_projects(mine), query)
        if path.startswith("/v1/organization/projects/") and path.endswith("/api_keys"):
            project = path.split("/")[4]
            return 200, {}, _openai_list(_openai_keys(mine, project), query)
        if path == "/v1/organizations/usage_report/messages":
            return 200, {}, _anthropic_usage(mine, query, now)
        if path == "/v1/organizations/cost_report":
            return 200, {}, _anthropic_costs(mine, query, now)
        if path == "/v1/organizations/api_keys":
            return 200, {}, _anthropic_keys(mine, query)
    except BadRequest as error:
        return _error(provider, 400, str(error), "invalid_request_error", error.param)
    return _error(provider, 404, f"no such admin route: {path}", "not_found_error")


def _credential(provider: str, headers: Any) -> str | None:
    if provider == "anthropic":
        return headers.get("x-api-key")
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _error(
    provider: str, status: int, message: str, kind: str, param: str | None = None
) -> tuple[int, dict[str, str], Any]:
    if provider == "anthropic":
        return status, {}, {"type": "error", "error": {"type": kind, "message": message}}
    openai_type = {"authentication_error": "invalid_request_error", "rate_limit_error": "requests"}.get(kind, kind)
    return status, {}, {"error": {"message": message, "type": openai_type, "param": param, "code": None}}


# -- parameters --------------------------------------------------------------------------------------------


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _many(query: dict[str, list[str]], name: str) -> list[str]:
    values = [*query.get(f"{name}[]", []), *query.get(name, [])]
    return [part for value in values for part in value.split(",") if part]


def _width(query: dict[str, list[str]], allowed: tuple[str, ...]) -> str:
    width = _one(query, "bucket_width") or "1d"
    if width not in allowed:
        raise BadRequest(f"Invalid value for 'bucket_width': expected one of {', '.join(allowed)}", "bucket_width")
    return width


def _limit(query: dict[str, list[str]], default: int, maximum: int) -> int:
    text = _one(query, "limit")
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise BadRequest(f"Invalid value for 'limit': expected 1 to {maximum}, got {text!r}", "limit")
    return int(text)


def _groups(query: dict[str, list[str]], allowed: tuple[str, ...]) -> list[str]:
    groups = _many(query, "group_by")
    for group in groups:
        if group not in allowed:
            raise BadRequest(f"Invalid value for 'group_by': {group!r} (allowed: {', '.join(allowed)})", "group_by")
    return groups


def _epoch(query: dict[str, list[str]], name: str, required: bool) -> datetime | None:
    text = _one(query, name)
    if text is None:
        if required:
            raise BadRequest(f"Missing required parameter: '{name}'", name)
        return None
    if not text.lstrip("-").isdigit():
        raise BadRequest(f"Invalid value for '{name}': expected Unix seconds, got {text!r}", name)
    return datetime.fromtimestamp(int(text), UTC)


def _rfc3339(query: dict[str, list[str]], name: str, required: bool) -> datetime | None:
    text = _one(query, name)
    if text is None:
        if required:
            raise BadRequest(f"{name}: Field required", name)
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: expected an RFC 3339 date-time, got {text!r}", name) from None
    if moment.tzinfo is None:
        raise BadRequest(f"{name}: expected an RFC 3339 date-time with a zone, got {text!r}", name)
    return moment.astimezone(UTC)


def _buckets(
    start: datetime, end: datetime | None, width: str, limit: int, page: str | None, now: datetime
) -> tuple[list[tuple[datetime, datetime]], str | None]:
    """This page's buckets (snapped to the width in UTC) and the cursor of the next page, if any."""
    step = WIDTHS[width]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    first = epoch + ((start - epoch) // step) * step
    if page is not None:
        try:
            first = datetime.fromisoformat(base64.urlsafe_b64decode(page.encode()).decode())
        except ValueError:
            raise BadRequest("Invalid value for 'page': not a cursor this API returned", "page") from None
    stop = end if end is not None else now
    buckets = []
    moment = first
    while moment < stop and len(buckets) < limit:
        buckets.append((moment, moment + step))
        moment += step
    more = moment < stop
    return buckets, base64.urlsafe_b64encode(moment.isoformat().encode()).decode() if more else None


def _within(records: list[AdminUsage], start: datetime, end: datetime) -> list[AdminUsage]:
    low, high = start.timestamp(), end.timestamp()
    return [record for record in records if low <= record.at < high]


# -- OpenAI ------------------------------------------------------------------------------------------------


def _openai_dimensions(record: AdminUsage) -> dict[str, Any]:
    return {
        "project_id": record.project or DEFAULT_PROJECT,  # every OpenAI key and call belongs to a project
        "user_id": None,
        "api_key_id": key_id("openai", record.key) if record.key else None,
        "model": record.model,
        "batch": record.batch,
        "service_tier": "batch" if record.batch else "default",
        "size": "1024x1024",
        "source": "image.generation",
        "api_source": "unlabeled",
    }


def _grouped(records: list[AdminUsage], groups: list[str], dimensions) -> dict[tuple, list[AdminUsage]]:
    grouped: dict[tuple, list[AdminUsage]] = {}
    for record in records:
        values = dimensions(record)
        grouped.setdefault(tuple(values[group] for group in groups), []).append(record)
    return grouped


def _openai_usage(kind: str, records: list[AdminUsage], query: dict[str, list[str]], now: datetime) -> dict:
    width = _width(query, tuple(WIDTHS))
    default, maximum = LIMITS[width]
    limit = _limit(query, default, maximum)
    groups = _groups(query, OPENAI_GROUPS[kind])
    start = _epoch(query, "start_time", required=True)
    end = _epoch(query, "end_time", required=False)
    assert start is not None
    records = [record for record in records if record.source == kind]
    for name, dimension in (("api_key_ids", "api_key_id"), ("models", "model"), ("project_ids", "project_id")):
        wanted = set(_many(query, name))
        if wanted:
            records = [record for record in records if _openai_dimensions(record)[dimension] in wanted]
    buckets, next_page = _buckets(start, end, width, limit, _one(query, "page"), now)
    data = []
    for bucket_start, bucket_end in buckets:
        results = []
        for values, members in _grouped(_within(records, bucket_start, bucket_end), groups, _openai_dimensions).items():
            result: dict[str, Any] = {"object": f"organization.usage.{kind}.result"}
            result.update(_openai_counts(kind, members))
            for name in OPENAI_GROUPS[kind]:
                result[name] = None
            result.update(zip(groups, values, strict=True))
            results.append(result)
        data.append(
            {
                "object": "bucket",
                "start_time": int(bucket_start.timestamp()),
                "end_time": int(bucket_end.timestamp()),
                "results": results,
            }
        )
    return {"object": "page", "data": data, "has_more": next_page is not None, "next_page": next_page}


def _openai_counts(kind: str, members: list[AdminUsage]) -> dict[str, int]:
    requests = sum(record.requests for record in members)
    if kind in OPENAI_UNITS:
        name = OPENAI_UNITS[kind][0]
        counts = {name: sum(record.units for record in members)}
        if kind == "code_interpreter_sessions" or kind == "vector_stores":
            return counts
        return {**counts, "num_model_requests": requests}
    total_input = sum(record.input for record in members)
    if kind in ("embeddings", "moderations"):
        return {"input_tokens": total_input, "num_model_requests": requests}
    cached = sum(record.cache_read for record in members)
    written = sum(record.cache_write for record in members)
    return {
        "input_tokens": total_input,
        "output_tokens": sum(record.output for record in members),
        "input_cached_tokens": cached,
        "input_cache_write_tokens": written,
        "input_uncached_tokens": total_input - cached - written,
        "input_audio_tokens": 0,
        "output_audio_tokens": 0,
        "num_model_requests": requests,
    }


def _rates(provider: str, model: str | None, at: float) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """USD per token (uncached input, output, cache read, cache write) at the provider's list price."""
    from genai_prices import Usage, calc_price

    moment = datetime.fromtimestamp(at, UTC)
    try:
        price = calc_price(Usage(), model or "", provider_id=provider, genai_request_timestamp=moment).model_price
    except LookupError:
        inp, out = FALLBACK_RATES
        return inp, out, inp, inp
    million = 1_000_000

    def rate(**counts: int) -> Decimal:
        return price.calc_price(Usage(**counts))["total_price"] / million

    return (
        rate(input_tokens=million),
        rate(output_tokens=million),
        rate(input_tokens=million, cache_read_tokens=million),
        rate(input_tokens=million, cache_write_tokens=million),
    )


def _openai_line_items(record: AdminUsage) -> list[tuple[str, Decimal]]:
    if record.source in OPENAI_UNITS:
        return [(f"{record.model or record.source}, {record.source}", OPENAI_UNITS[record.source][1] * record.units)]
    uncached_rate, output_rate, read_rate, write_rate = _rates("openai", record.model, record.at)
    discount = Decimal("0.5") if record.batch else Decimal(1)
    uncached = record.input - record.cache_read - record.cache_write
    items = [(f"{record.model}, input", (uncached * uncached_rate + record.cache_write * write_rate) * discount)]
    if record.cache_read:
        items.append((f"{record.model}, cached input", record.cache_read * read_rate * discount))
    if record.source == "completions":
        items.append((f"{record.model}, output", record.output * output_rate * discount))
    return items


def _openai_costs(records: list[AdminUsage], query: dict[str, list[str]], now: datetime) -> dict:
    _width(query, ("1d",))
    limit = _limit(query, 7, 180)
    groups = _groups(query, OPENAI_COST_GROUPS)
    start = _epoch(query, "start_time", required=True)
    end = _epoch(query, "end_time", required=False)
    assert start is not None
    buckets, next_page = _buckets(start, end, "1d", limit, _one(query, "page"), now)
    data = []
    for bucket_start, bucket_end in buckets:
        per_key = bucket_start >= PER_KEY_COSTS_FROM
        sums: dict[tuple, Decimal] = {}
        for record in _within(records, bucket_start, bucket_end):
            dimensions = _openai_dimensions(record)
            if not per_key:
                dimensions["api_key_id"] = None
            for line_item, amount in _openai_line_items(record):
                values = tuple({**dimensions, "line_item": line_item}[group] for group in groups)
                sums[values] = sums.get(values, Decimal(0)) + amount
        results = []
        for values, amount in sums.items():
            result: dict[str, Any] = {
                "object": "organization.costs.result",
                "amount": {"value": float(amount), "currency": "usd"},
            }
            result.update({name: None for name in ("line_item", "project_id", "api_key_id", "user_id")})
            result.update(zip(groups, values, strict=True))
            results.append(result)
        data.append(
            {
                "object": "bucket",
                "start_time": int(bucket_start.timestamp()),
                "end_time": int(bucket_end.timestamp()),
                "results": results,
            }
        )
    return {"object": "page", "data": data, "has_more": next_page is not None, "next_page": next_page}


def _openai_projects(records: list[AdminUsage]) -> list[dict]:
    projects = sorted({record.project or DEFAULT_PROJECT for record in records})
    return [
        {"object": "organization.project", "id": project, "name": project.removeprefix("proj_"),
         "created_at": 1711471533, "archived_at": None, "status": "active"}
        for project in projects
    ]  # fmt: skip


def _openai_keys(records: list[AdminUsage], project: str) -> list[dict]:
    first_project: dict[str, str] = {}
    last_used: dict[str, float] = {}
    for record in records:
        if record.key:
            first_project.setdefault(record.key, record.project or DEFAULT_PROJECT)
            last_used[record.key] = max(last_used.get(record.key, 0), record.at)
    keys = sorted((key for key, where in first_project.items() if where == project), key=lambda k: key_id("openai", k))
    return [
        {
            "object": "organization.project.api_key",
            "redacted_value": redacted("openai", key),
            "name": f"key {key_id('openai', key)[-6:]}",
            "created_at": 1711471533,
            "last_used_at": int(last_used[key]),
            "id": key_id("openai", key),
            "owner": {"type": "service_account", "service_account": {"id": "svc_acct_standin", "name": "standin",
                                                                      "created_at": 1711471533, "role": "member"}},
            "owner_project_access": "active",
        }
        for key in keys
    ]  # fmt: skip


def _openai_list(items: list[dict], query: dict[str, list[str]]) -> dict:
    limit = _limit(query, 20, 100)
    after = _one(query, "after")
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


# -- Anthropic ---------------------------------------------------------------------------------------------


def _anthropic_dimensions(record: AdminUsage) -> dict[str, Any]:
    return {
        "api_key_id": key_id("anthropic", record.key) if record.key else None,
        "workspace_id": record.project,
        "model": record.model,
        "service_tier": "batch" if record.batch else record.service_tier,
        "context_window": "0-200k" if record.input <= 200_000 else "200k-1M",
    }


def _rfc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _anthropic_usage(records: list[AdminUsage], query: dict[str, list[str]], now: datetime) -> dict:
    width = _width(query, ("1d", "1m", "1h"))
    default, maximum = LIMITS[width]
    limit = _limit(query, default, maximum)
    groups = _groups(query, ANTHROPIC_GROUPS)
    start = _rfc3339(query, "starting_at", required=True)
    end = _rfc3339(query, "ending_at", required=False)
    assert start is not None
    records = [record for record in records if record.source == "messages"]
    for name, dimension in (("api_key_ids", "api_key_id"), ("models", "model"), ("workspace_ids", "workspace_id")):
        wanted = set(_many(query, name))
        if wanted:
            records = [record for record in records if _anthropic_dimensions(record)[dimension] in wanted]
    buckets, next_page = _buckets(start, end, width, limit, _one(query, "page"), now)
    data = []
    for bucket_start, bucket_end in buckets:
        results = []
        grouped = _grouped(_within(records, bucket_start, bucket_end), groups, _anthropic_dimensions)
        for values, members in grouped.items():
            result: dict[str, Any] = {name: None for name in ANTHROPIC_GROUPS}
            result.update(zip(groups, values, strict=True))
            cache_read = sum(record.cache_read for record in members)
            cache_write = sum(record.cache_write for record in members)
            result.update(
                {
                    "uncached_input_tokens": sum(record.input for record in members) - cache_read - cache_write,
                    "cache_read_input_tokens": cache_read,
                    "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": cache_write},
                    "output_tokens": sum(record.output for record in members),
                    "server_tool_use": {"web_search_requests": 0},
                }
            )
            results.append(result)
        data.append({"starting_at": _rfc(bucket_start), "ending_at": _rfc(bucket_end), "results": results})
    return {"data": data, "has_more": next_page is not None, "next_page": next_page}


def _anthropic_line_items(record: AdminUsage) -> list[tuple[dict[str, Any], Decimal]]:
    uncached_rate, output_rate, read_rate, write_rate = _rates("anthropic", record.model, record.at)
    discount = Decimal("0.5") if record.batch else Decimal(1)
    name = record.model or "unknown model"
    parts = (
        ("uncached_input_tokens", "Input Tokens", record.input - record.cache_read - record.cache_write, uncached_rate),
        ("output_tokens", "Output Tokens", record.output, output_rate),
        ("cache_read_input_tokens", "Cache Read", record.cache_read, read_rate),
        ("cache_creation.ephemeral_5m_input_tokens", "Cache Write (5m)", record.cache_write, write_rate),
    )
    items = []
    for token_type, label, tokens, rate in parts:
        if tokens:
            description = {
                "description": f"{name} Usage - {label}",
                "model": record.model,
                "cost_type": "tokens",
                "token_type": token_type,
                "service_tier": "batch" if record.batch else "standard",
                "context_window": "0-200k" if record.input <= 200_000 else "200k-1M",
            }
            items.append((description, tokens * rate * discount * 100))  # in cents
    return items


def _anthropic_costs(records: list[AdminUsage], query: dict[str, list[str]], now: datetime) -> dict:
    _width(query, ("1d",))
    limit = _limit(query, 7, 31)
    groups = _groups(query, ANTHROPIC_COST_GROUPS)
    start = _rfc3339(query, "starting_at", required=True)
    end = _rfc3339(query, "ending_at", required=False)
    assert start is not None
    buckets, next_page = _buckets(start, end, "1d", limit, _one(query, "page"), now)
    detail = ("description", "model", "cost_type", "token_type", "service_tier", "context_window")
    data = []
    for bucket_start, bucket_end in buckets:
        sums: dict[str, tuple[dict[str, Any], Decimal]] = {}
        for record in _within(records, bucket_start, bucket_end):
            for description, cents in _anthropic_line_items(record):
                fields: dict[str, Any] = {"workspace_id": record.project if "workspace_id" in groups else None}
                fields.update({name: description[name] if "description" in groups else None for name in detail})
                key = json.dumps(fields, sort_keys=True)
                sums[key] = (fields, sums.get(key, (fields, Decimal(0)))[1] + cents)
        results = [{"amount": str(cents), "currency": "USD", **fields} for fields, cents in sums.values()]
        data.append({"starting_at": _rfc(bucket_start), "ending_at": _rfc(bucket_end), "results": results})
    return {"data": data, "has_more": next_page is not None, "next_page": next_page}


def _anthropic_keys(records: list[AdminUsage], query: dict[str, list[str]]) -> dict:
    limit = _limit(query, 20, 1000)
    workspaces: dict[str, str | None] = {}
    for record in records:
        if record.key:
            workspaces.setdefault(record.key, record.project)
    keys = sorted(workspaces, key=lambda key: key_id("anthropic", key))
    items = [
        {
            "id": key_id("anthropic", key),
            "type": "api_key",
            "name": f"key {key_id('anthropic', key)[-6:]}",
            "partial_key_hint": redacted("anthropic", key),
            "status": "active",
            "workspace_id": workspaces[key],
            "created_at": "2025-01-01T00:00:00Z",
            "created_by": {"id": "user_01standin", "type": "user"},
        }
        for key in keys
    ]
    after = _one(query, "after_id")
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {
        "data": page,
        "has_more": len(items) > limit,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }
