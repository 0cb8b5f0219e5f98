"""What is stored of a span: an allow-list of attributes, and no secret in any stored string.

Spans here are hand-built, as instrumentations we do not run in the suite would send them (the Vercel AI
SDK, OpenInference, Langfuse): this tests what the parser keeps, the peers' tests (tests/peers) what real
instrumentations send.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

from spendwatch.collector import scrub
from spendwatch.collector.attributes import KeepList
from spendwatch.collector.spans import Counts, Extract, rows_from_request
from spendwatch.collector.store import Store

CONTENT = "CONTENT-CANARY-" + secrets.token_hex(6)


def value(item):
    if isinstance(item, bool):
        return common_pb2.AnyValue(bool_value=item)
    if isinstance(item, int):
        return common_pb2.AnyValue(int_value=item)
    if isinstance(item, bytes):
        return common_pb2.AnyValue(bytes_value=item)
    if isinstance(item, list):
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[value(v) for v in item]))
    if isinstance(item, dict):
        pairs = [common_pb2.KeyValue(key=k, value=value(v)) for k, v in item.items()]
        return common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=pairs))
    return common_pb2.AnyValue(string_value=item)


def request(
    attributes: dict, resource: dict | None = None, scope: str = "other"
) -> trace_service_pb2.ExportTraceServiceRequest:
    message = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = message.resource_spans.add()
    for key, item in {"service.name": "svc", **(resource or {})}.items():
        resource_spans.resource.attributes.add(key=key, value=value(item))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = scope
    span = scope_spans.spans.add()
    span.trace_id, span.span_id = secrets.token_bytes(16), secrets.token_bytes(8)
    span.name = "chat"
    span.start_time_unix_nano = time.time_ns() - 10**9
    span.end_time_unix_nano = time.time_ns()
    base = {"gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}
    for key, item in {**base, **attributes}.items():
        span.attributes.add(key=key, value=value(item))
    return message


def stored(attributes: dict, resource: dict | None = None, keep: tuple[str, ...] = ()) -> tuple:
    extract = Extract(links=[], dropped_attributes=Counter())
    (row,) = rows_from_request(request(attributes, resource), Counts(), keep=KeepList(keep), extract=extract)
    return row, json.loads(row.attributes), extract.dropped_attributes


def test_content_under_names_nobody_listed_is_not_stored():
    messages = json.dumps([{"role": "user", "content": [{"type": "text", "text": CONTENT}]}])
    row, kept, dropped = stored(
        {
            "ai.prompt.messages": messages,  # Vercel AI SDK
            "ai.response.text": CONTENT,
            "llm.input_messages.0.message.content": CONTENT,  # OpenInference
            "llm.invocation_parameters": json.dumps({"system": CONTENT}),
            "langfuse.observation.input": CONTENT,  # Langfuse
            "gen_ai.content.prompt": CONTENT,
            "prompt": CONTENT,
            "model_request_parameters": json.dumps({"function_tools": [{"description": CONTENT}]}),  # pydantic-ai
            "gen_ai.tool.definitions": CONTENT,
            "gen_ai.system_instructions": CONTENT,
            "gen_ai.request.temperature": "0.2",
            "gen_ai.agent.name": "planner",
            "gen_ai.usage.total_tokens": 30,
        }
    )
    assert CONTENT not in repr(row)
    assert kept == {"gen_ai.request.temperature": "0.2", "gen_ai.usage.total_tokens": 30}
    assert row.agent == "planner"  # a typed column: who the call was for
    assert set(dropped) == {
        "ai.prompt.messages", "ai.response.text", "llm.input_messages.0.message.content", "llm.invocation_parameters",
        "langfuse.observation.input", "gen_ai.content.prompt", "prompt", "model_request_parameters",
        "gen_ai.tool.definitions", "gen_ai.system_instructions",
    }  # fmt: skip


def test_the_users_keep_list_and_the_resources_identity():
    _, kept, dropped = stored(
        {"app.tenant": "acme", "app.api_key": "anything", "other.thing": "x"},
        resource={"service.version": "1.2", "deployment.environment.name": "prod", "process.command_line": "x --k"},
        keep=("app.*",),
    )
    assert kept["app.tenant"] == "acme" and kept["app.api_key"] == scrub.SCRUBBED  # kept by pattern, not its secret
    assert kept["service.version"] == "1.2" and kept["deployment.environment.name"] == "prod"
    assert "process.command_line" not in kept and "other.thing" not in kept and dropped["other.thing"] == 1


KEYS = {
    "perplexity": "pplx-" + secrets.token_hex(20),
    "huggingface": "hf_" + secrets.token_hex(17),
    "aws": "AKIA" + secrets.token_hex(8).upper(),
    "github": "ghp_" + secrets.token_hex(18),
    "github_pat": "github_pat_" + secrets.token_hex(20),
    "openai": "sk-proj-" + secrets.token_hex(20),
    "anthropic": "sk-ant-api03-" + secrets.token_hex(20),
    "google": "AIza" + secrets.token_hex(17),
    "groq": "gsk_" + secrets.token_hex(20),
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0." + secrets.token_hex(16),
}


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_no_key_shape_survives_in_any_stored_string(kind, tmp_path):
    key = KEYS[kind]
    row, kept, _ = stored(
        {
            "gen_ai.request.model": f"model-{key}",
            "gen_ai.response.id": f"id {key}",
            "error.type": f"AuthenticationError: {key}",
            "server.address": key,
            "url.full": f"https://api.example.com/v1/chat?api-key={key}&x=1",
            "gen_ai.openai.api_base": f"https://user:{key}@gateway.internal/v1",
            "spendwatch.fingerprint.id": key,  # a raw key where an id belongs is no id
            "gen_ai.usage.input_tokens": 3,
        },
        resource={"service.name": f"svc-{key}"},
    )
    assert key not in repr(row), kind
    assert row.api_key_id is None
    assert kept["url.full"] == "https://api.example.com/v1/chat?api-key=[scrubbed]&x=1"
    # through the store: not in the database file or its WAL either
    store = Store(tmp_path / "spendwatch.duckdb")
    store.write([row])
    raw = (tmp_path / "spendwatch.duckdb").read_bytes()
    wal = tmp_path / "spendwatch.duckdb.wal"
    raw += wal.read_bytes() if wal.exists() else b""
    store.close()
    raw += (tmp_path / "spendwatch.duckdb").read_bytes()
    assert key.encode() not in raw


def test_secrets_by_name_as_bytes_and_as_names():
    key = "sk-live-" + secrets.token_hex(20)
    row, kept, dropped = stored(
        {
            "app.access_token": "opaque-value-1234567890",
            "app.blob": key.encode(),  # a key sent as bytes
            key: "a map keyed by the key itself",
            "app.nested": {"authorization": "Bearer xyz", "fine": key},
        },
        keep=("app.*", "sk-*"),
    )
    assert "opaque-value" not in repr(row) and key not in repr(row) and key not in repr(dropped)
    assert kept["app.access_token"] == scrub.SCRUBBED and kept["app.blob"] == scrub.SCRUBBED
    assert kept["app.nested"] == {"authorization": scrub.SCRUBBED, "fine": scrub.SCRUBBED}
    assert scrub.SECRET_NAME_PLACEHOLDER in kept


def test_a_scrubbed_key_id_is_no_key_id():
    """logfire's scrubber rewrote the old attribute name's value: two keys would have become one."""
    row, kept, _ = stored({"spendwatch.api_key.id": "[Scrubbed due to 'api_key']", "gen_ai.usage.input_tokens": 1})
    assert row.api_key_id is None and "not a key id" in kept["spendwatch.invalid"][0]
    old, _, _ = stored({"spendwatch.api_key.id": "3f992a85b654efea", "spendwatch.api_key.hint": "wxyz"})
    new, _, _ = stored({"spendwatch.fingerprint.id": "3f992a85b654efea", "spendwatch.fingerprint.hint": "wxyz"})
    assert (old.api_key_id, old.api_key_hint) == (new.api_key_id, new.api_key_hint) == ("3f992a85b654efea", "wxyz")


def test_provider_spellings_are_the_well_known_names_and_the_raw_one_is_kept():
    spellings = {
        "openai.chat": "openai",
        "openai.responses": "openai",
        "google.generative-ai": "gcp.gemini",
        "amazon-bedrock": "aws.bedrock",
        "az.ai.openai": "azure.ai.openai",
        "anthropic": "anthropic",
    }
    for raw, expected in spellings.items():
        row, _, _ = stored({"gen_ai.provider.name": raw})
        assert (row.provider, row.provider_raw) == (expected, None if raw == expected else raw)
