"""End to end: an app using the real SDKs and raw httpx runs under `opentelemetry-instrument` with the
distro's default exporters (traces, metrics and logs), into a real `spendwatch up`, over gRPC and HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from genai_prices import Usage as PricesUsage
from genai_prices import calc_price

from spendwatch.instrumentation.keys import api_key_id
from tests.collector import Collector
from tests.conftest import make_key

PROMPT = "PROMPT-CANARY-e2e-7f3a"
COMPLETION = "COMPLETION-CANARY-e2e-9b1c"

APP = """
import asyncio, os
import anthropic, httpx, openai
from google import genai
from google.genai import types

base = os.environ["STANDIN"]
reply = {"x-standin-reply": os.environ["COMPLETION"] + " and more"}
messages = [{"role": "user", "content": os.environ["PROMPT"]}]

def usage(n, **extra):
    fields = {"input": n, "output": 7, **extra}
    return {**reply, "x-standin-usage": ",".join(f"{k}={v}" for k, v in fields.items())}

team_a = openai.OpenAI(base_url=base + "/v1", api_key=os.environ["OPENAI_KEY_A"], max_retries=0)
team_b = openai.OpenAI(base_url=base + "/v1", api_key=os.environ["OPENAI_KEY_B"], max_retries=0)
team_a.chat.completions.create(model="gpt-4o-mini", messages=messages, extra_headers=usage(101, cache_read=64))
team_b.chat.completions.create(model="gpt-4o-mini", messages=messages, extra_headers=usage(102))
for _ in team_a.chat.completions.create(model="gpt-4o", messages=messages, stream=True,
                                        stream_options={"include_usage": True}, extra_headers=usage(103)):
    pass

async def async_calls():
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=os.environ["OPENAI_KEY_A"], max_retries=0)
    await client.chat.completions.create(model="gpt-4o-mini", messages=messages, extra_headers=usage(104))
    async with httpx.AsyncClient(base_url=base) as raw:
        await raw.post("/api/generate", json={"model": "llama3.2", "prompt": "hi", "stream": False},
                       headers=usage(110))
asyncio.run(async_calls())

claude = anthropic.Anthropic(base_url=base, api_key=os.environ["ANTHROPIC_KEY"], max_retries=0)
claude.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=messages,
                       extra_headers=usage(105, cache_read=40, cache_write=20))
with claude.messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=messages,
                            extra_headers=usage(106)) as stream:
    stream.until_done()

gemini = genai.Client(api_key=os.environ["GEMINI_KEY"], http_options=types.HttpOptions(base_url=base))
gemini.models.generate_content(model="gemini-2.5-flash", contents=os.environ["PROMPT"],
                               config=types.GenerateContentConfig(http_options=types.HttpOptions(headers=usage(107))))
list(gemini.models.generate_content_stream(
    model="gemini-2.5-flash", contents=os.environ["PROMPT"],
    config=types.GenerateContentConfig(http_options=types.HttpOptions(headers=usage(108)))))

with httpx.Client(base_url=base) as raw:
    raw.post("/api/chat", json={"model": "llama3.2", "messages": messages}, headers=usage(109))
    raw.get("/health")                                   # not LLM calls: no rows
    raw.post("/api/users", json={"name": "x"})
for status, n in (("429", 110), ("500", 111)):
    try:
        team_b.chat.completions.create(model="gpt-4o", messages=messages,
                                       extra_headers={**usage(n), "x-standin-status": status})
    except openai.APIStatusError as error:
        assert error.status_code == int(status)
print("app done")
"""


def expected_cost(provider_id, model, input_tokens, output_tokens, cache_read=0, cache_write=0):
    usage = PricesUsage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )
    return float(calc_price(usage, model, provider_id=provider_id).total_price)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_app_to_collector(tmp_path: Path, standin, protocol):
    collector = Collector(tmp_path / "data" / "spendwatch.duckdb", tmp_path / "collector.log").start()
    keys = {
        "OPENAI_KEY_A": make_key(),
        "OPENAI_KEY_B": make_key(),
        "ANTHROPIC_KEY": make_key("sk-ant-"),
        "GEMINI_KEY": make_key("AIza"),
    }
    app = tmp_path / "app.py"
    app.write_text(APP)
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
    env = {
        **os.environ,
        **keys,
        "STANDIN": standin.base_url,
        "PROMPT": PROMPT,
        "COMPLETION": COMPLETION,
        "OTEL_SERVICE_NAME": "checkout",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true",
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "opentelemetry-instrument"), sys.executable, str(app)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "app done" in result.stdout
    output = result.stdout + result.stderr
    for complaint in ("Failed to export", "Transient error", "Exception while exporting", "StatusCode."):
        assert complaint not in output, output
    # The app exited after its exporters flushed, that is after the daemon committed and acknowledged.
    raw_bytes = _database_bytes(collector.db)  # the file and its WAL, while the daemon holds them
    assert collector.stop() == 0

    rows = collector.query(
        """SELECT coalesce(input_tokens, status_code), provider, operation, request_model, output_tokens,
                  cache_read_tokens, cache_write_tokens, cost_usd, api_key_id, status_code, error_type,
                  service_name, streaming
           FROM llm_calls ORDER BY 1"""
    )
    by_input = {row[0]: row for row in rows}
    assert sorted(by_input) == [*range(101, 111), 429, 500], rows  # one row per call, errors by status
    # Stored as many times as they were reported: the anthropic SDK's own spans are there, but hidden.
    foreign = collector.query("SELECT instrumentation_scope, provider FROM llm_call_spans WHERE NOT from_spendwatch")
    assert foreign == [("com.anthropic.sdk.python", "anthropic")] * 2

    assert by_input[101][1:8] == (
        "openai",
        "chat",
        "gpt-4o-mini",
        7,
        64,
        None,
        expected_cost("openai", "gpt-4o-mini", 101, 7, cache_read=64),
    )
    assert by_input[103][1:5] == ("openai", "chat", "gpt-4o", 7) and by_input[103][12] is True
    assert by_input[105][1:8] == (
        "anthropic",
        "chat",
        "claude-haiku-4-5",
        7,
        40,
        20,
        expected_cost("anthropic", "claude-haiku-4-5", 105, 7, 40, 20),
    )
    assert by_input[107][1:4] == ("gcp.gemini", "generate_content", "gemini-2.5-flash")
    assert by_input[107][7] == expected_cost("google", "gemini-2.5-flash", 107, 7)
    assert by_input[109][1:4] == ("ollama", "chat", "llama3.2") and by_input[109][7] is None  # unpriced: NULL
    assert by_input[110][1:5] == ("ollama", "text_completion", "llama3.2", 7)
    assert {row[11] for row in rows} == {"checkout"}

    key_ids = {name: api_key_id(key) for name, key in keys.items()}
    assert by_input[101][8] == by_input[103][8] == by_input[104][8] == key_ids["OPENAI_KEY_A"]
    assert by_input[102][8] == key_ids["OPENAI_KEY_B"] != key_ids["OPENAI_KEY_A"]
    assert by_input[105][8] == by_input[106][8] == key_ids["ANTHROPIC_KEY"]
    assert by_input[107][8] == by_input[108][8] == key_ids["GEMINI_KEY"]

    assert by_input[429][9:11] == (429, "429") and by_input[429][7] is None  # never answered: never billed
    assert by_input[429][3] == "gpt-4o" and by_input[500][9:11] == (500, "500")

    # The canary: no key, prompt or completion in the database (as stored bytes and as values) or the log.
    text_values = collector.query("SELECT * FROM llm_call_spans")
    dumped = repr(text_values)
    log = collector.log.read_text()
    for canary in (PROMPT, COMPLETION, *keys.values()):
        assert canary not in dumped
        assert canary.encode() not in raw_bytes
        assert canary not in log
        assert canary.encode() not in collector.db.read_bytes()


def _database_bytes(db: Path) -> bytes:
    wal = db.with_name(db.name + ".wal")
    return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
