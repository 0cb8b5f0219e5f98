"""pydantic-ai's own spans (`Agent.instrument_all()`): an agent-run span (not a model call) and a model
request span per call, carrying the request parameters — the system prompt and the tools' descriptions —
under names of its own. With spendwatch on, the row is spendwatch's and keeps the agent's name and the
conversation id that only pydantic-ai's span knew.

Version: pydantic-ai-slim[openai] 2.68.0 (pyproject's test extra).
"""

from __future__ import annotations

import json

import pytest

from tests.peers.harness import assert_counted_once, run_app

SETUP = """
provider = tracer_provider()
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
Agent.instrument_all()

def agent_for(key, headers):
    import openai
    client = openai.AsyncOpenAI(base_url=BASE + "/v1", api_key=key, max_retries=0, default_headers=headers)
    model = OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(openai_client=client))

    def lookup(city: str) -> str:
        return "sunny"

    lookup.__doc__ = os.environ["TOOL"] + ": looks a city up."
    return Agent(model, system_prompt=SYSTEM, tools=[lookup], name="planner")
"""

SCENARIO = """
agent_for(KEY_A, usage(101, cache_read=32)).run_sync(PROMPT)
agent_for(KEY_B, usage(102)).run_sync(PROMPT)

async def concurrently():
    agent = agent_for(KEY_A, usage(103))
    await asyncio.gather(agent.run(PROMPT), agent.run(PROMPT))
asyncio.run(concurrently())
provider.shutdown()
"""


@pytest.mark.parametrize("spendwatch", [True, False], ids=["with-spendwatch", "peer-alone"])
def test_each_billed_request_is_one_row(tmp_path, standin, spendwatch):
    run = run_app(tmp_path, standin, SETUP, SCENARIO, spendwatch=spendwatch)
    assert len(run.billed) == 4
    calls = assert_counted_once(run, key_ids=spendwatch)
    for call in calls:  # who the call was for, from pydantic-ai's spans: the agent and the conversation
        assert call["agent"] == "planner" and call["conversation"]
        attributes = json.loads(call["attributes"])
        assert "model_request_parameters" not in attributes and "gen_ai.tool.definitions" not in attributes
    assert {call["operation"] for call in calls} == {"chat"}
