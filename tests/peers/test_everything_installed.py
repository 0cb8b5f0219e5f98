"""`opentelemetry-instrument` with every instrumentor installed turned on, as it does by default: OpenLLMetry's
openai and anthropic instrumentors, OpenTelemetry's openai-v2 (so two instrumentations wrap each openai
call), the contrib httpx instrumentor (an HTTP client span between each SDK span and spendwatch's), the
anthropic SDK's own spans — and spendwatch, or everything but spendwatch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.peers.harness import assert_counted_once, run_app

SCENARIO = """
import anthropic, openai
team_a = openai.OpenAI(base_url=BASE + "/v1", api_key=KEY_A, max_retries=0)
team_b = openai.OpenAI(base_url=BASE + "/v1", api_key=KEY_B, max_retries=1)
claude = anthropic.Anthropic(base_url=BASE, api_key=KEY_A, max_retries=0)
tracer = trace.get_tracer("app")
with tracer.start_as_current_span("handle request"):
    team_a.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers=usage(101, cache_read=64))
    for _ in team_b.chat.completions.create(model="gpt-4o", messages=USER_ONLY, stream=True,
                                            stream_options={"include_usage": True}, extra_headers=usage(102)):
        pass
    team_b.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers=flaky(103, "retry"))
    claude.messages.create(model="claude-haiku-4-5", max_tokens=50, system=SYSTEM, messages=USER_ONLY,
                           extra_headers=usage(104, cache_read=40))

async def concurrently():
    client = openai.AsyncOpenAI(base_url=BASE + "/v1", api_key=KEY_A, max_retries=0)
    with tracer.start_as_current_span("fan out"):
        await asyncio.gather(*(client.chat.completions.create(model="gpt-4o-mini", messages=USER_ONLY,
                                                              extra_headers=usage(n)) for n in (105, 106)))
asyncio.run(concurrently())
"""


@pytest.mark.parametrize("spendwatch", [True, False], ids=["with-spendwatch", "peers-alone"])
def test_each_billed_request_is_one_row(tmp_path, standin, spendwatch):
    launcher = (str(Path(sys.executable).parent / "opentelemetry-instrument"),)
    env = {
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "" if spendwatch else "spendwatch",
        "OTEL_SERVICE_NAME": "peer-app",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
    }
    run = run_app(tmp_path, standin, "", SCENARIO, spendwatch=False, env=env, launcher=launcher)
    assert len(run.billed) == 6
    assert_counted_once(run, key_ids=spendwatch, failed_attempts=1 if spendwatch else 0)
    scopes = {span[0] for span in run.spans()}
    assert {"opentelemetry.instrumentation.openai.v1", "com.anthropic.sdk.python"} <= scopes
