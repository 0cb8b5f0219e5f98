"""The identity rules on their own (collector/identity.py): which spans are one call, and what never is.

The peers' real spans are in tests/peers/; here the rules' edges, and properties over generated sets of
spans: the decision does not depend on the order spans are given in, a group never holds two spendwatch
spans or two response ids, and concurrent calls stay apart.
"""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from spendwatch.collector.identity import ANCESTOR, FILLED, RESPONSE_ID, STREAM_RECORD, TWIN, Span, resolve

SW = "spendwatch.instrumentation"
TRACE = "t" * 32
_ids = itertools.count(1)


def span(
    *,
    scope: str = "sdk",
    parent: str | None = "root",
    response_id: str | None = None,
    usage: tuple[int | None, int | None] = (10, 5),
    failed: bool = False,
    start: int = 1_000,
    end: int = 2_000,
    trace: str = TRACE,
    provider: str = "openai",
    model: str = "gpt-4o",
    service: str = "app",
    span_id: str | None = None,
    **extra,
) -> Span:
    return Span(
        trace_id=trace,
        span_id=span_id or f"{next(_ids):016x}",
        parent_span_id=parent,
        start_ns=start,
        end_ns=end,
        service_name=service,
        provider=provider,
        scope=scope,
        from_spendwatch=scope == SW,
        response_id=response_id,
        request_model=model,
        response_model=model,
        input_tokens=usage[0],
        output_tokens=usage[1],
        failed=failed,
        **extra,
    )


def calls(spans, parents=None) -> dict[str, set[tuple[str, str | None]]]:
    """Leader span id -> {(member span id, rule)} for every group."""
    decisions = resolve(spans, parents or {})
    groups: dict[str, list] = {}
    for (_, span_id), decision in decisions.items():
        if decision.superseded_by is None:
            groups.setdefault(span_id, set())
    for (_, span_id), decision in decisions.items():
        if decision.superseded_by is not None:
            groups[decision.superseded_by].add((span_id, decision.rule))
    return groups


def test_an_sdk_span_around_our_span_through_an_http_client_span():
    sdk = span(scope="openllmetry", response_id="chatcmpl-1")
    ours = span(scope=SW, parent="httpx-span", response_id="chatcmpl-1", start=1_100, end=1_900)
    assert calls([sdk, ours], {(TRACE, "httpx-span"): sdk.span_id}) == {ours.span_id: {(sdk.span_id, RESPONSE_ID)}}
    # without ids (a failed call), the chain through the HTTP client's span is the evidence
    sdk, ours = (
        span(scope="openllmetry", usage=(None, None), failed=True),
        span(scope=SW, parent="httpx-span", usage=(None, None), failed=True),
    )
    assert calls([sdk, ours], {(TRACE, "httpx-span"): sdk.span_id}) == {ours.span_id: {(sdk.span_id, ANCESTOR)}}


def test_a_retry_is_two_rows_and_the_sdk_span_is_not_a_third():
    sdk = span(scope="openllmetry", response_id="chatcmpl-2", start=0, end=5_000)
    failed = span(scope=SW, parent=sdk.span_id, usage=(None, None), failed=True, start=100, end=200)
    billed = span(scope=SW, parent=sdk.span_id, response_id="chatcmpl-2", start=1_000, end=4_000)
    assert calls([sdk, failed, billed]) == {failed.span_id: set(), billed.span_id: {(sdk.span_id, RESPONSE_ID)}}
    # before the billed attempt arrives, the SDK span (which reports usage) is not the failed attempt
    assert calls([sdk, failed]) == {failed.span_id: set(), sdk.span_id: set()}


def test_concurrent_calls_under_one_parent_stay_apart():
    first = span(scope="openllmetry", response_id="chatcmpl-a", start=0, end=3_000)
    second = span(scope="openllmetry", response_id="chatcmpl-b", start=100, end=3_100)
    ours_first = span(scope=SW, parent=first.span_id, response_id="chatcmpl-a", start=10, end=2_900)
    ours_second = span(scope=SW, parent=second.span_id, response_id="chatcmpl-b", start=110, end=3_000)
    groups = calls([first, second, ours_first, ours_second])
    assert groups == {
        ours_first.span_id: {(first.span_id, RESPONSE_ID)},
        ours_second.span_id: {(second.span_id, RESPONSE_ID)},
    }
    # an SDK span over a transport spendwatch does not see (aiohttp, Node) beside one it does
    unseen = span(scope="openllmetry", response_id="chatcmpl-c", start=0, end=3_000)
    assert len(calls([unseen, first, ours_first])) == 2


def test_siblings_and_separate_traces_with_one_response_id_are_one_call():
    native = span(scope="com.anthropic.sdk.python", provider="anthropic", response_id="msg_1", trace="a" * 32)
    openllmetry = span(
        scope="opentelemetry.instrumentation.anthropic",
        provider="anthropic",
        response_id="msg_1",
        trace="b" * 32,
        parent=None,
    )
    assert len(calls([native, openllmetry])) == 1
    # ... but not a minute and more apart, nor from another service
    late = span(scope="x", provider="anthropic", response_id="msg_1", start=70 * 10**9, end=71 * 10**9)
    elsewhere = span(scope="y", provider="anthropic", response_id="msg_1", service="other")
    assert len(calls([native, late])) == 2 and len(calls([native, elsewhere])) == 2


def test_what_is_never_one_call():
    ours_a = span(scope=SW, response_id="same")
    ours_b = span(scope=SW, response_id="same")
    assert len(calls([ours_a, ours_b])) == 2  # two requests on the wire
    outer = span(scope="framework", response_id="resp-1")
    inner = span(scope="sdk", parent=outer.span_id, response_id="resp-2")
    assert len(calls([outer, inner])) == 2  # different response ids
    anthropic = span(scope="a", provider="anthropic")
    gemini = span(scope="b", parent=anthropic.span_id, provider="gcp.gemini")
    assert len(calls([anthropic, gemini])) == 2  # providers that cannot describe one call
    groq = span(scope=SW, parent="p", provider="groq")
    openai_view = span(scope="openllmetry", span_id="p", parent=None, provider="openai")
    assert len(calls([groq, openai_view])) == 1  # an OpenAI SDK pointed at Groq


def test_a_stream_reported_as_a_span_and_a_record():
    """logfire: the call's span ends when the stream is handed over; a zero-length record carries the usage."""
    opened = span(scope="logfire.openai", usage=(None, None), start=0, end=100)
    record = span(scope="logfire.openai", response_id="chatcmpl-s", start=5_000, end=5_000)
    assert calls([opened, record]) == {record.span_id: {(opened.span_id, STREAM_RECORD)}}
    # a real call takes time: two calls of one instrumentation are never one
    later_call = span(scope="logfire.openai", response_id="chatcmpl-t", start=5_000, end=6_000)
    assert len(calls([opened, later_call])) == 2
    # with spendwatch: our span under the opened one, the record beside it
    ours = span(scope=SW, parent=opened.span_id, response_id="chatcmpl-s", start=10, end=4_990)
    assert calls([opened, record, ours]) == {ours.span_id: {(record.span_id, RESPONSE_ID), (opened.span_id, ANCESTOR)}}


def test_twins_pair_up_one_to_one():
    a1, a2 = span(scope="a", usage=(10, 5)), span(scope="a", usage=(10, 5))
    b1, b2 = span(scope="b", usage=(10, 5)), span(scope="b", usage=(10, 5))
    groups = calls([a1, a2, b1, b2])
    assert len(groups) == 2 and all([rule for _, rule in members] == [TWIN] for members in groups.values())
    assert len(calls([a1, span(scope="b", usage=(11, 5))])) == 2  # different usage: two calls


def test_the_leader_keeps_its_usage_and_takes_what_only_others_knew():
    framework = span(
        scope="pydantic-ai", response_id="chatcmpl-f", attributes={"gen_ai.agent.name": "planner"}, operation="chat"
    )
    ours = span(scope=SW, parent=framework.span_id, response_id="chatcmpl-f", operation=None, usage=(30, 7))
    decisions = resolve([framework, ours], {})
    fills = decisions[ours.key].fills
    assert fills["gen_ai.agent.name"] == ("planner", framework.span_id)
    assert fills["@operation"] == ("chat", framework.span_id)
    assert not any(name.startswith("gen_ai.usage") for name in fills)
    # what was filled is undone before the next decision: a span is judged as received
    marks = {"gen_ai.agent.name": "x", "@operation": "x"}
    filled = span(scope=SW, attributes={"gen_ai.agent.name": "planner", FILLED: marks}, operation="chat")
    assert filled.own().attributes == {} and filled.own().operation is None


# -- properties over generated spans --------------------------------------------------------------------

SCOPES = ("sdk", "openllmetry", "framework", SW)


@st.composite
def span_sets(draw):
    count = draw(st.integers(1, 9))
    spans = []
    for index in range(count):
        parent = draw(st.sampled_from([None, "root", *(s.span_id for s in spans)]))
        has_usage = draw(st.booleans())
        start = draw(st.integers(0, 10)) * 1_000
        spans.append(
            span(
                span_id=f"{index:016x}",
                scope=draw(st.sampled_from(SCOPES)),
                parent=parent,
                response_id=draw(st.sampled_from([None, None, "id-a", "id-b"])),
                usage=(draw(st.sampled_from([10, 20])), 5) if has_usage else (None, None),
                failed=not has_usage and draw(st.booleans()),
                start=start,
                end=start + draw(st.sampled_from([0, 500, 5_000])),
                provider=draw(st.sampled_from(["openai", "openai", "groq", "anthropic"])),
            )
        )
    return spans


@settings(max_examples=300, deadline=None, derandomize=True)
@given(span_sets(), st.randoms(use_true_random=False))
def test_the_decision_is_order_free_and_never_merges_what_must_stay_apart(spans, shuffler):
    decisions = resolve(spans, {})
    shuffled = list(spans)
    shuffler.shuffle(shuffled)
    assert resolve(shuffled, {}) == decisions
    by_id = {s.span_id: s for s in spans}
    groups: dict[str, list[Span]] = {}
    for (_, span_id), decision in decisions.items():
        groups.setdefault(decision.superseded_by or span_id, []).append(by_id[span_id])
    for leader_id, members in groups.items():
        assert decisions[(TRACE, leader_id)].superseded_by is None
        assert sum(member.from_spendwatch for member in members) <= 1
        assert len({member.response_id for member in members if member.response_id}) <= 1
        if any(member.from_spendwatch for member in members):
            assert by_id[leader_id].from_spendwatch  # spendwatch's span is the row when there is one
    # every spendwatch span is a call of its own: a retry is two rows
    assert sum(s.from_spendwatch for s in spans) <= len(groups)


def test_many_concurrent_identical_calls_seen_twice_each_stay_many():
    """Ten concurrent calls with equal usage, no ids, each seen by two instrumentations: ten calls."""
    rng = random.Random(7)
    spans = [
        span(scope=scope, usage=(10, 5), start=rng.randrange(100), end=10_000)
        for scope in ("a", "b")
        for _ in range(10)
    ]
    assert len(calls(spans)) == 10
