"""Who a call was for, set in the app: `spendwatch.attribute()` as a context manager and a decorator, across
threads, asyncio tasks and generators; OpenTelemetry baggage under it; `spendwatch.last_call()`.

The real openai SDK against the stand-in; what is asserted is the span spendwatch emits.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading

import openai
import pytest
from opentelemetry import baggage, context

import spendwatch
from spendwatch.instrumentation.keys import api_key_id
from tests.conftest import make_key, ours

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def key():
    return make_key()


def call(standin, key, **headers) -> str:
    client = openai.OpenAI(base_url=f"{standin.base_url}/v1", api_key=key, max_retries=0)
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers).id


def who(span) -> dict:
    names = ("enduser.id", "spendwatch.tenant", "spendwatch.feature", "gen_ai.agent.name", "gen_ai.conversation.id")
    attributes = dict(span.attributes)
    found = {name: attributes[name] for name in names if name in attributes}
    found.update({name: value for name, value in attributes.items() if name.startswith("spendwatch.tag.")})
    return found


def by_response(spans) -> dict:
    return {span.attributes["gen_ai.response.id"]: who(span) for span in ours(spans)}


def test_a_context_manager_nests_and_tags_merge(spans, standin, key):
    with spendwatch.attribute(user="alice", feature="search", team="growth"):
        outer = call(standin, key)
        with spendwatch.attribute(feature="rerank", agent="planner", region="eu"):
            inner = call(standin, key)
        after = call(standin, key)
    outside = call(standin, key)
    found = by_response(spans)
    assert found[outer] == {"enduser.id": "alice", "spendwatch.feature": "search", "spendwatch.tag.team": "growth"}
    assert found[inner] == {
        "enduser.id": "alice",
        "spendwatch.feature": "rerank",
        "gen_ai.agent.name": "planner",
        "spendwatch.tag.team": "growth",
        "spendwatch.tag.region": "eu",
    }
    assert found[after] == found[outer] and found[outside] == {}


def test_a_decorator_on_functions_coroutines_and_generators(spans, standin, key):
    @spendwatch.attribute(feature="sync")
    def plain():
        return call(standin, key)

    @spendwatch.attribute(feature="async")
    async def coroutine():
        return await asyncio.to_thread(call, standin, key)  # a thread it starts: no attribution there

    @spendwatch.attribute(feature="generator")
    def generator():
        yield call(standin, key)
        yield call(standin, key)

    @spendwatch.attribute(feature="async-generator")
    async def async_generator():
        client = openai.AsyncOpenAI(base_url=f"{standin.base_url}/v1", api_key=key, max_retries=0)
        for _ in range(2):
            yield (await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)).id

    first = plain()
    in_thread = asyncio.run(coroutine())
    between = []
    from_generator = []
    for response_id in generator():
        from_generator.append(response_id)
        between.append(call(standin, key))  # the caller, between two items: not the generator's attribution

    async def consume():
        return [response_id async for response_id in async_generator()]

    from_async_generator = asyncio.run(consume())
    found = by_response(spans)
    assert found[first] == {"spendwatch.feature": "sync"}
    assert found[in_thread] == {"spendwatch.feature": "async"}  # asyncio.to_thread copies the context
    assert [found[response] for response in from_generator] == [{"spendwatch.feature": "generator"}] * 2
    assert [found[response] for response in between] == [{}, {}]
    assert [found[response] for response in from_async_generator] == [{"spendwatch.feature": "async-generator"}] * 2


def test_threads_and_tasks_keep_their_own(spans, standin, key):
    results: dict[str, str] = {}

    def worker(user: str) -> None:
        with spendwatch.attribute(user=user):
            results[user] = call(standin, key)

    with spendwatch.attribute(user="main"):
        leaked = {}
        thread = threading.Thread(target=lambda: leaked.update(id=call(standin, key)))  # a new thread starts bare
        thread.start()
        thread.join()
    workers = [threading.Thread(target=worker, args=(f"user-{index}",)) for index in range(4)]
    for each in workers:
        each.start()
    for each in workers:
        each.join()

    async def tasks():
        client = openai.AsyncOpenAI(base_url=f"{standin.base_url}/v1", api_key=key, max_retries=0)

        async def one(user: str) -> tuple[str, str]:
            with spendwatch.attribute(user=user):
                await asyncio.sleep(0)  # let the others run between setting and calling
                return user, (await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)).id

        return dict(await asyncio.gather(*(one(f"task-{index}") for index in range(4))))

    from_tasks = asyncio.run(tasks())
    found = by_response(spans)
    assert found[leaked["id"]] == {}
    assert {user: found[response]["enduser.id"] for user, response in results.items()} == {u: u for u in results}
    assert {user: found[response]["enduser.id"] for user, response in from_tasks.items()} == {u: u for u in from_tasks}


def test_baggage_and_attribute_over_it(spans, standin, key):
    entries = context.get_current()
    for name, value in (("enduser.id", "bob"), ("tenant.id", "acme"), ("spendwatch.tag.plan", "pro")):
        entries = baggage.set_baggage(name, value, entries)
    token = context.attach(entries)
    try:
        from_baggage = call(standin, key)
        with spendwatch.attribute(user="carol"):
            overridden = call(standin, key)
    finally:
        context.detach(token)
    found = by_response(spans)
    assert found[from_baggage] == {"enduser.id": "bob", "spendwatch.tenant": "acme", "spendwatch.tag.plan": "pro"}
    assert found[overridden]["enduser.id"] == "carol" and found[overridden]["spendwatch.tenant"] == "acme"


def test_last_call_says_what_the_last_call_used(spans, standin, key):
    def body():
        assert spendwatch.last_call() is None  # a context that made no call yet
        with spendwatch.attribute(user="dave", feature="summary"):
            made = call(standin, key, **{"x-standin-usage": "input=30,output=9"})
        return made, spendwatch.last_call()

    response_id, record = contextvars.Context().run(body)
    (span,) = ours(spans)
    assert (record.trace_id, record.span_id) == (f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}")
    assert (record.provider, record.model, record.input_tokens, record.output_tokens) == (
        "openai",
        "gpt-4o-mini",
        30,
        9,
    )
    assert record.api_key_id == api_key_id(key) and dict(record.attribution) == {"user": "dave", "feature": "summary"}
    assert span.attributes["gen_ai.response.id"] == response_id


def test_bad_attribution_is_the_callers_mistake_at_once():
    with pytest.raises(ValueError, match="tag name"):
        spendwatch.attribute(**{"no spaces": "x"})
    with pytest.raises(ValueError, match="at most 16 tags"):
        spendwatch.attribute(**{f"t{index}": "x" for index in range(17)})
    with pytest.raises(ValueError, match="empty"):
        spendwatch.attribute(user="")
