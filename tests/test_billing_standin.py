"""The stand-in's admin APIs speak as OpenAI's and Anthropic's references document them: paging, bucket
shapes, grouping and errors — checked with the real openai SDK's admin client where it has one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from spendwatch.standin import StandinServer
from spendwatch.standin.admin import AdminUsage, key_id
from tests.conftest import make_key

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
NOON = TODAY + timedelta(hours=12) if datetime.now(UTC).hour >= 12 else TODAY + timedelta(minutes=1)


@pytest.fixture
def provider():
    with StandinServer() as server:
        yield server


def openai_admin(server: StandinServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", admin_api_key=server.admin.keys["openai"])


def anthropic_get(server: StandinServer, path: str, **params) -> httpx.Response:
    headers = {"x-api-key": server.admin.keys["anthropic"], "anthropic-version": "2023-06-01"}
    return httpx.get(f"{server.base_url}{path}", params=params, headers=headers)


def test_openai_usage_buckets_grouped_as_asked_through_the_sdk(provider):
    key_a, key_b = make_key(), make_key()
    for key, project, tokens in ((key_a, None, 100), (key_a, None, 50), (key_b, "proj_batch", 7)):
        client = openai.OpenAI(base_url=f"{provider.base_url}/v1", api_key=key, project=project, max_retries=0)
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-standin-usage": f"input={tokens},output=3,cache_read=2"},
        )
    start = int((TODAY - timedelta(days=2)).timestamp())
    page = openai_admin(provider).admin.organization.usage.completions(
        start_time=start, group_by=["api_key_id", "project_id", "model"]
    )
    assert provider.admin.requests[-1][2]["group_by[]"] == ["api_key_id", "project_id", "model"]  # the SDK's format
    assert [bucket.start_time for bucket in page.data] == [start, start + 86400, start + 2 * 86400]
    assert [len(bucket.results) for bucket in page.data] == [0, 0, 2]  # empty days are listed too
    results = {result.api_key_id: result for result in page.data[-1].results}
    first = results[key_id("openai", key_a)]
    assert (first.object, first.model, first.project_id, first.user_id, first.batch) == (
        "organization.usage.completions.result",
        "gpt-4o-mini",
        "proj_standin",
        None,
        None,
    )
    assert (first.input_tokens, first.input_cached_tokens, first.output_tokens, first.num_model_requests) == (
        150,
        4,
        6,
        2,
    )
    assert results[key_id("openai", key_b)].project_id == "proj_batch"
    (total,) = openai_admin(provider).admin.organization.usage.completions(start_time=start).data[-1].results
    assert (total.input_tokens, total.api_key_id, total.model, total.num_model_requests) == (157, None, None, 3)


def test_openai_pages_follow_next_page_without_gaps_or_repeats(provider):
    start = int((TODAY - timedelta(days=4)).timestamp())
    admin = openai_admin(provider).admin.organization.usage
    seen, page_token, pages = [], None, 0
    while True:
        kwargs = {"page": page_token} if page_token else {}
        page = admin.embeddings(start_time=start, limit=2, **kwargs)
        pages += 1
        seen += [bucket.start_time for bucket in page.data]
        if not page.has_more:
            assert page.next_page is None
            break
        page_token = page.next_page
    assert pages == 3 and seen == [start + day * 86400 for day in range(5)]


def test_openai_usage_that_counts_no_tokens_and_the_costs_per_line_item_and_key(provider):
    key = make_key()
    at = NOON.timestamp()
    provider.usage += [
        AdminUsage("openai", "images", at, "gpt-image-1", key, "proj_art", units=3, requests=2),
        AdminUsage("openai", "audio_speeches", at, "tts-1", key, units=1200),
        AdminUsage("openai", "audio_transcriptions", at, "whisper-1", key, units=95),
        AdminUsage("openai", "vector_stores", at, None, None, "proj_art", units=5_000_000, requests=0),
        AdminUsage("openai", "code_interpreter_sessions", at, None, None, "proj_art", units=4, requests=0),
        AdminUsage(
            "openai", "completions", datetime(2025, 11, 30, 12, tzinfo=UTC).timestamp(), "gpt-4o", key, input=10
        ),
        AdminUsage("openai", "completions", datetime(2025, 12, 1, 12, tzinfo=UTC).timestamp(), "gpt-4o", key, input=10),
    ]
    usage = openai_admin(provider).admin.organization.usage
    start = int(TODAY.timestamp())
    (images,) = usage.images(start_time=start, group_by=["project_id", "model"]).data[0].results
    assert (images.images, images.num_model_requests, images.model, images.project_id) == (
        3,
        2,
        "gpt-image-1",
        "proj_art",
    )
    assert usage.audio_speeches(start_time=start).data[0].results[0].characters == 1200
    assert usage.audio_transcriptions(start_time=start).data[0].results[0].seconds == 95
    assert usage.vector_stores(start_time=start, group_by=["project_id"]).data[0].results[0].usage_bytes == 5_000_000
    assert usage.code_interpreter_sessions(start_time=start).data[0].results[0].num_sessions == 4
    with pytest.raises(openai.BadRequestError, match="group_by"):
        usage.vector_stores(start_time=start, group_by=["api_key_id"])  # storage is per project only

    costs = usage.costs(
        start_time=int(datetime(2025, 11, 30, tzinfo=UTC).timestamp()), group_by=["api_key_id"], limit=2
    )
    before, after = costs.data
    assert [result.api_key_id for result in before.results] == [None]  # no dollars per key before 2025-12
    assert [result.api_key_id for result in after.results] == [key_id("openai", key)]
    assert after.results[0].amount.value == pytest.approx(10 * 2.5 / 1e6) and after.results[0].amount.currency == "usd"
    lines = usage.costs(start_time=start, group_by=["line_item"]).data[0].results
    assert {line.line_item: line.amount.value for line in lines} == pytest.approx(
        {"gpt-image-1, images": 0.12, "tts-1, audio_speeches": 0.018, "whisper-1, audio_transcriptions": 0.0095,
         "vector_stores, vector_stores": 0.0005, "code_interpreter_sessions, code_interpreter_sessions": 0.12}
    )  # fmt: skip


def test_openai_project_keys_are_listed_with_redacted_values_in_pages(provider):
    keys = [make_key() for _ in range(3)]
    for key in keys:
        provider.usage.append(AdminUsage("openai", "completions", NOON.timestamp(), "gpt-4o", key, "proj_x", input=1))
    admin = openai_admin(provider).admin.organization
    (project,) = admin.projects.list()
    assert project.id == "proj_x"
    listed = list(admin.projects.api_keys.list(project.id, limit=2))  # the SDK follows `after` itself
    assert sorted(item.id for item in listed) == sorted(key_id("openai", key) for key in keys)
    by_id = {item.id: item for item in listed}
    for key in keys:
        redacted = by_id[key_id("openai", key)].redacted_value
        assert redacted.endswith("..." + key[-4:]) and key not in redacted


def test_anthropic_usage_report_with_cache_tokens_grouped_and_paged(provider):
    key = make_key("sk-ant-")
    claude = anthropic.Anthropic(base_url=provider.base_url, api_key=key, max_retries=0)
    for workspace in (None, "wrkspc_01team"):
        claude.messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={
                "x-standin-usage": "input=100,output=9,cache_read=30,cache_write=20",
                **({"x-standin-workspace": workspace} if workspace else {}),
            },
        )
    start = (TODAY - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    first = anthropic_get(provider, "/v1/organizations/usage_report/messages", starting_at=start, limit=1,
                          **{"group_by[]": ["workspace_id", "api_key_id"]}).json()  # fmt: skip
    assert first["has_more"] is True and first["data"][0]["results"] == []
    assert (first["data"][0]["starting_at"], first["data"][0]["ending_at"]) == (
        start,
        TODAY.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    grouped = {"group_by[]": ["workspace_id", "api_key_id"]}
    path = "/v1/organizations/usage_report/messages"
    second = anthropic_get(provider, path, starting_at=start, limit=1, page=first["next_page"], **grouped).json()
    assert second["has_more"] is False
    results = sorted(second["data"][0]["results"], key=lambda result: result["workspace_id"] or "")
    assert [result["workspace_id"] for result in results] == [None, "wrkspc_01team"]  # None: the default workspace
    assert results[0] == {
        "api_key_id": key_id("anthropic", key),
        "workspace_id": None,
        "model": None,
        "service_tier": None,
        "context_window": None,
        "uncached_input_tokens": 50,
        "cache_read_input_tokens": 30,
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 20},
        "output_tokens": 9,
        "server_tool_use": {"web_search_requests": 0},
    }
    report = anthropic_get(provider, "/v1/organizations/cost_report", starting_at=TODAY.strftime("%Y-%m-%dT%H:%M:%SZ"),
                           **{"group_by[]": ["description"]}).json()  # fmt: skip
    lines = {line["token_type"]: line for line in report["data"][0]["results"]}
    assert set(lines) == {"uncached_input_tokens", "output_tokens", "cache_read_input_tokens",
                          "cache_creation.ephemeral_5m_input_tokens"}  # fmt: skip
    output = lines["output_tokens"]
    assert (output["currency"], output["model"], output["cost_type"]) == ("USD", "claude-haiku-4-5", "tokens")
    assert Decimal(output["amount"]) == Decimal(2 * 9) * Decimal(5) / 1_000_000 * 100  # $5/M output, in cents

    keys = anthropic_get(provider, "/v1/organizations/api_keys", limit=5).json()
    (listed,) = keys["data"]
    assert listed["id"] == key_id("anthropic", key) and listed["partial_key_hint"].endswith("..." + key[-4:])
    assert keys["has_more"] is False and keys["last_id"] == listed["id"]


@pytest.mark.parametrize(
    "path,params,message",
    [
        ("/v1/organization/usage/completions", {}, "Missing required parameter: 'start_time'"),
        ("/v1/organization/usage/completions", {"start_time": "0", "limit": "32"}, "'limit': expected 1 to 31"),
        ("/v1/organization/usage/completions", {"start_time": "0", "bucket_width": "1w"}, "'bucket_width'"),
        ("/v1/organization/costs", {"start_time": "0", "bucket_width": "1h"}, "'bucket_width'"),
        ("/v1/organization/costs", {"start_time": "0", "limit": "181"}, "'limit': expected 1 to 180"),
        ("/v1/organizations/usage_report/messages", {"starting_at": "yesterday"}, "starting_at: expected an RFC 3339"),
        ("/v1/organizations/usage_report/messages", {"starting_at": "2026-01-01T00:00:00Z", "group_by[]": "user"},
         "'group_by'"),
        ("/v1/organizations/cost_report", {}, "starting_at: Field required"),
    ],
)  # fmt: skip
def test_bad_parameters_are_400_in_each_providers_error_shape(provider, path, params, message):
    if path.startswith("/v1/organizations/"):
        answer = anthropic_get(provider, path, **params)
        assert answer.status_code == 400 and answer.json()["type"] == "error"
        assert (
            answer.json()["error"]["type"] == "invalid_request_error" and message in answer.json()["error"]["message"]
        )
    else:
        headers = {"authorization": f"Bearer {provider.admin.keys['openai']}"}
        answer = httpx.get(f"{provider.base_url}{path}", params=params, headers=headers)
        assert answer.status_code == 400 and message in answer.json()["error"]["message"]


def test_a_wrong_key_is_401_quoting_it_and_rate_limits_are_429_with_retry_after(provider):
    wrong = make_key("sk-admin-")
    refused = httpx.get(
        f"{provider.base_url}/v1/organization/costs?start_time=0", headers={"authorization": f"Bearer {wrong}"}
    )
    assert refused.status_code == 401 and wrong in refused.json()["error"]["message"]  # what clients must not repeat
    no_version = httpx.get(
        f"{provider.base_url}/v1/organizations/api_keys", headers={"x-api-key": provider.admin.keys["anthropic"]}
    )
    assert no_version.status_code == 400 and "anthropic-version" in no_version.json()["error"]["message"]
    provider.fail_admin(429, times=1, retry_after="7")
    limited = anthropic_get(provider, "/v1/organizations/api_keys")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert anthropic_get(provider, "/v1/organizations/api_keys").status_code == 200  # the fault was used up
