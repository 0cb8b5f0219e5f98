"""The openai SDK under OpenLLMetry's openai instrumentor, OpenTelemetry's openai-v2 and logfire's
`instrument_openai` (its scrubber on, as by default), with spendwatch's instrumentation on and off: every
billed request one row, exact tokens, distinct key ids where spendwatch saw the keys, no content stored.

Versions (pyproject's test extra): opentelemetry-instrumentation-openai 0.62.4, -openai-v2 2.4b0 with
opentelemetry-util-genai 1.1b0 (the last release openai-v2 imports), logfire 5.4.0.
"""

from __future__ import annotations

import pytest

from tests.peers.harness import assert_counted_once, run_app

SETUPS = {
    "openllmetry": """
        provider = tracer_provider()
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
        OpenAIInstrumentor().instrument()  # content capture is on by default (TRACELOOP_TRACE_CONTENT)
        def flush():
            provider.shutdown()
    """,
    "openai_v2": """
        provider = tracer_provider()
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
        OpenAIInstrumentor().instrument()
        def flush():
            provider.shutdown()
    """,
    "logfire": """
        import logfire
        logfire.configure(send_to_logfire=False, console=False, service_name="peer-app",
                          additional_span_processors=[BatchSpanProcessor(exporter())])
        logfire.instrument_openai()  # runs the SDK call inside OpenTelemetry's suppress-instrumentation context
        def flush():
            logfire.force_flush()
            logfire.shutdown()
    """,
}
ENV = {"openai_v2": {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}}

SCENARIO = """
import openai
team_a = openai.OpenAI(base_url=BASE + "/v1", api_key=KEY_A, max_retries=0)
team_b = openai.OpenAI(base_url=BASE + "/v1", api_key=KEY_B, max_retries=1)
tracer = trace.get_tracer("app")
with tracer.start_as_current_span("handle request"):
    team_a.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers=usage(101, cache_read=64))
    team_b.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers=usage(102))
    for _ in team_a.chat.completions.create(model="gpt-4o", messages=USER_ONLY, stream=True,
                                            stream_options={"include_usage": True}, extra_headers=usage(103)):
        pass
    # the first attempt fails with 500, the SDK's retry is billed
    team_b.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers=flaky(104, "retry"))

async def concurrently():
    client = openai.AsyncOpenAI(base_url=BASE + "/v1", api_key=KEY_A, max_retries=0)
    with tracer.start_as_current_span("fan out"):
        await asyncio.gather(*(client.chat.completions.create(model="gpt-4o-mini", messages=USER_ONLY,
                                                              extra_headers=usage(n)) for n in (105, 106)))
asyncio.run(concurrently())
flush()
"""


@pytest.mark.parametrize("spendwatch", [True, False], ids=["with-spendwatch", "peer-alone"])
@pytest.mark.parametrize("peer", sorted(SETUPS))
def test_each_billed_request_is_one_row(tmp_path, standin, peer, spendwatch):
    run = run_app(tmp_path, standin, SETUPS[peer], SCENARIO, spendwatch=spendwatch, env=ENV.get(peer))
    assert len(run.billed) == 6
    # with spendwatch, the failed first attempt of the retried call is a row of its own, unbilled
    # openai-v2 reports no cached input: alone, its rows cannot price the cache discount
    cache_reported = spendwatch or peer != "openai_v2"
    calls = assert_counted_once(
        run, key_ids=spendwatch, failed_attempts=1 if spendwatch else 0, cache_reported=cache_reported
    )
    assert {call["service_name"] for call in calls} == {"peer-app"}
    assert {call["provider"] for call in calls} == {"openai"}
