"""End to end through `spendwatch up`: an app under `opentelemetry-instrument` reaching providers through
aiohttp (openai's DefaultAioHttpClient), requests, boto3's bedrock-runtime and the wider OpenAI surface —
one row per billed request in llm_calls, priced, fees apart, key ids, and no content in the database."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from genai_prices import Usage as PricesUsage
from genai_prices import calc_price

from spendwatch.instrumentation.keys import api_key_id
from tests.collector import Collector
from tests.conftest import make_key

PROMPT = "PROMPT-CANARY-" + secrets.token_hex(6)
COMPLETION = "COMPLETION-CANARY-" + secrets.token_hex(6)

APP = """
import asyncio, io, json, os
import boto3, openai, requests

base, prompt = os.environ["STANDIN"], os.environ["PROMPT"]
reply = {"x-standin-reply": os.environ["COMPLETION"] + " and more"}
messages = [{"role": "user", "content": prompt}]

def usage(n, out=7, **extra):
    return {**reply, "x-standin-usage": f"input={n},output={out}", **extra}

async def over_aiohttp():
    async with openai.AsyncOpenAI(base_url=base + "/v1", api_key=os.environ["OPENAI_KEY"], max_retries=0,
                                  http_client=openai.DefaultAioHttpClient()) as client:
        await client.chat.completions.create(model="gpt-4o-mini", messages=messages, extra_headers=usage(301))
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True,
                                                      stream_options={"include_usage": True},
                                                      extra_headers=usage(302))
        async for _ in stream:
            pass
asyncio.run(over_aiohttp())

requests.post(base + "/v1/chat/completions", json={"model": "gpt-4o", "messages": messages},
              headers={"authorization": "Bearer " + os.environ["OPENAI_KEY"], **usage(303)}, timeout=10).json()

bedrock = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=base,
                       aws_access_key_id=os.environ["AWS_KEY_ID"], aws_secret_access_key=os.environ["AWS_SECRET"])
steer = {}
bedrock.meta.events.register("before-send.bedrock-runtime.*", lambda request, **kw: request.headers.update(steer))
model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
steer.update(usage(304, 20))
bedrock.converse(modelId=model, messages=[{"role": "user", "content": [{"text": prompt}]}])
steer.update(usage(305, 20))
list(bedrock.converse_stream(modelId=model, messages=[{"role": "user", "content": [{"text": prompt}]}])["stream"])

client = openai.OpenAI(base_url=base + "/v1", api_key=os.environ["OPENAI_KEY"], max_retries=0)
client.responses.create(model="gpt-5", input=prompt, tools=[{"type": "web_search"}],
                        extra_headers=usage(306, 50, **{"x-standin-web-search": "2"}))
client.images.generate(model="dall-e-3", prompt=prompt, size="1024x1024", extra_headers={"x-standin-marker": "307"})
client.audio.speech.create(model="tts-1", voice="alloy", input=prompt + " " + "x" * 955)
client.audio.transcriptions.create(model="whisper-1", file=("a.mp3", io.BytesIO(b"ID3 audio"), "audio/mpeg"),
                                   extra_headers={"x-standin-audio-seconds": "30"})
client.moderations.create(model="omni-moderation-latest", input=prompt)
print("app done")
"""


def cost(provider_id, model, **usage):
    return float(calc_price(PricesUsage(**usage), model, provider_id=provider_id).total_price)


def test_every_transport_into_the_collector(tmp_path: Path, standin):
    collector = Collector(tmp_path / "data" / "spendwatch.duckdb", tmp_path / "collector.log").start()
    keys = {"OPENAI_KEY": make_key(), "AWS_KEY_ID": "AKIA" + secrets.token_hex(8).upper()}
    secret = "secret-" + secrets.token_urlsafe(30)
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = {
        **os.environ,
        **keys,
        "AWS_SECRET": secret,
        "STANDIN": standin.base_url,
        "PROMPT": PROMPT,
        "COMPLETION": COMPLETION,
        "OTEL_SERVICE_NAME": "media",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.grpc_endpoint,
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        # only spendwatch: the peers the bench extra installs would add spans of their own to compare
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai,anthropic,httpx",
    }
    started = len(standin.requests)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "opentelemetry-instrument"), sys.executable, str(app)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "app done" in result.stdout
    billed = len(standin.requests) - started
    assert collector.stop() == 0  # the app's exporter flushed at exit: an export is answered once committed

    rows = collector.query(
        """SELECT operation, provider, request_model, input_tokens, output_tokens, cost_usd, fees_usd,
                  api_key_id, streaming, attributes
           FROM llm_calls ORDER BY start_time"""
    )
    assert len(rows) == billed == 10  # one row per request the stand-in answered
    by = {(row[0], row[2], row[3], row[8]): row for row in rows}
    openai_id, aws_id = api_key_id(keys["OPENAI_KEY"]), api_key_id(keys["AWS_KEY_ID"])

    chat = by["chat", "gpt-4o-mini", 301, False]
    assert chat[4:8] == (7, cost("openai", "gpt-4o-mini", input_tokens=301, output_tokens=7), None, openai_id)
    assert by["chat", "gpt-4o-mini", 302, True][7] == openai_id
    assert by["chat", "gpt-4o", 303, False][5] == cost("openai", "gpt-4o", input_tokens=303, output_tokens=7)
    for n, stream in ((304, False), (305, True)):
        converse = by["chat", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", n, stream]
        assert converse[1] == "aws.bedrock" and converse[7] == aws_id
        assert converse[5] == cost(
            "aws", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", input_tokens=n, output_tokens=20
        )
    responses = by["responses", "gpt-5", 306, False]
    assert responses[6] == 0.02  # two web searches at $10 per 1,000
    assert responses[5] == cost("openai", "gpt-5", input_tokens=306, output_tokens=50, web_searches=2)
    assert by["image_generation", "dall-e-3", None, False][5] == 0.04  # one standard 1024x1024 image
    speech = next(row for row in rows if row[0] == "speech")
    assert speech[5] == cost("openai", "tts-1", input_characters=len(PROMPT) + 956)
    transcription = next(row for row in rows if row[0] == "transcription")
    assert transcription[5] == cost("openai", "whisper-1", audio_seconds=30)
    assert next(row for row in rows if row[0] == "moderation")[5] == 0.0

    raw = collector.db.read_bytes()
    dumped = repr(collector.query("SELECT * FROM llm_call_spans")) + collector.log.read_text()
    for canary in (PROMPT, COMPLETION, secret, *keys.values()):
        assert canary not in dumped
        assert canary.encode() not in raw
