"""The anthropic SDK's own spans (2.x emits one per call when a tracer provider is set), alone and beside
OpenLLMetry's anthropic instrumentor — whose span is the SDK span's sibling, or the root of another trace
when the app has no span open — with spendwatch's instrumentation on and off.

Versions: anthropic 2.16.0, opentelemetry-instrumentation-anthropic 0.62.4 (pyproject's test extra).
"""

from __future__ import annotations

import pytest

from tests.peers.harness import assert_counted_once, run_app

SETUPS = {
    "anthropic_native": """
        provider = tracer_provider()
    """,
    "openllmetry_anthropic": """
        provider = tracer_provider()
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
        AnthropicInstrumentor().instrument()
    """,
}

SCENARIO = """
import anthropic
team_a = anthropic.Anthropic(base_url=BASE, api_key=KEY_A, max_retries=0)
team_b = anthropic.Anthropic(base_url=BASE, api_key=KEY_B, max_retries=1)
tracer = trace.get_tracer("app")
with tracer.start_as_current_span("handle request"):
    team_a.messages.create(model="claude-haiku-4-5", max_tokens=50, system=SYSTEM, messages=USER_ONLY,
                           extra_headers=usage(101, cache_read=40, cache_write=20))
    with team_a.messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=USER_ONLY,
                                extra_headers=usage(102)) as stream:
        stream.until_done()
    team_b.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=USER_ONLY,
                           extra_headers=flaky(103, "retry"))
# no span open: each call's spans are roots, of different traces
team_b.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=USER_ONLY, extra_headers=usage(104))
for _ in team_b.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=USER_ONLY, stream=True,
                                extra_headers=usage(105)):
    pass

async def concurrently():
    client = anthropic.AsyncAnthropic(base_url=BASE, api_key=KEY_A, max_retries=0)
    with tracer.start_as_current_span("fan out"):
        await asyncio.gather(*(client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=USER_ONLY,
                                                      extra_headers=usage(n)) for n in (106, 107)))
asyncio.run(concurrently())
provider.shutdown()
"""


@pytest.mark.parametrize("spendwatch", [True, False], ids=["with-spendwatch", "peer-alone"])
@pytest.mark.parametrize("peer", sorted(SETUPS))
def test_each_billed_request_is_one_row(tmp_path, standin, peer, spendwatch):
    run = run_app(tmp_path, standin, SETUPS[peer], SCENARIO, spendwatch=spendwatch)
    assert len(run.billed) == 7
    calls = assert_counted_once(run, key_ids=spendwatch, failed_attempts=1 if spendwatch else 0)
    assert {call["provider"] for call in calls} == {"anthropic"}
    cached = next(call for call in calls if call["input_tokens"] == 101)
    assert (cached["cache_read_tokens"], cached["cache_write_tokens"]) == (40, 20)
    # every span is stored; the ones of a call already counted say which span counted it, and why
    spans = run.spans()
    superseded = [span for span in spans if span[1]]
    assert len(spans) - len(superseded) == len(calls)
    assert all(span[2] and span[3] in ("response_id", "ancestor") for span in superseded)
