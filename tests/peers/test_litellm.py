"""LiteLLM (1.110) as its users call it: `completion` (its sync path, over httpx) and `acompletion` (its
async path, over aiohttp), streamed and not — one span per request the stand-in billed, exact usage."""

from __future__ import annotations

import asyncio
import os
import secrets

from spendwatch.instrumentation.keys import api_key_id
from spendwatch.standin import Usage
from tests.conftest import make_key, ours

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # its bundled price map: no fetch at import
import litellm

USAGE = Usage(input=91, output=17, cache_read=32)
PROMPT = "PROMPT-CANARY-" + secrets.token_hex(6)


def arguments(standin, key, n):
    return {
        "model": "openai/gpt-4o-mini",
        "api_base": f"{standin.base_url}/v1",
        "api_key": key,
        "messages": [{"role": "user", "content": PROMPT}],
        "extra_headers": {"x-standin-usage": Usage(input=n, output=17, cache_read=32).header()},
    }


def check(spans, standin, key, inputs):
    billed = {exchange.usage.input: exchange for exchange in standin.requests if exchange.usage.input in inputs}
    found = {span.attributes["gen_ai.usage.input_tokens"]: dict(span.attributes) for span in ours(spans)}
    assert sorted(found) == sorted(billed) == sorted(inputs)  # one span per billed request
    for attributes in found.values():
        assert attributes["gen_ai.usage.output_tokens"] == 17
        assert attributes["gen_ai.usage.cache_read.input_tokens"] == 32
        assert attributes["spendwatch.fingerprint.id"] == api_key_id(key)
        assert attributes["spendwatch.usage.estimated"] is False
        assert all(PROMPT not in str(value) for value in attributes.values())
    return found


def test_completion_sync(spans, standin):
    key = make_key()
    litellm.completion(**arguments(standin, key, 201))
    chunks = list(
        litellm.completion(**arguments(standin, key, 202), stream=True, stream_options={"include_usage": True})
    )
    assert chunks
    found = check(spans, standin, key, [201, 202])
    assert (found[201]["gen_ai.request.stream"], found[202]["gen_ai.request.stream"]) == (False, True)


def test_acompletion_over_aiohttp(spans, standin):
    key = make_key()

    async def main():
        await litellm.acompletion(**arguments(standin, key, 203))
        stream = await litellm.acompletion(
            **arguments(standin, key, 204), stream=True, stream_options={"include_usage": True}
        )
        return [chunk async for chunk in stream]

    assert asyncio.run(main())
    found = check(spans, standin, key, [203, 204])
    assert (found[203]["gen_ai.request.stream"], found[204]["gen_ai.request.stream"]) == (False, True)
