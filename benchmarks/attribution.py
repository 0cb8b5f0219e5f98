"""What attribution and budget enforcement add to an LLM call in the app, in CPU time.

Both run on the request path: where a call starts, `Recorder.start` captures `spendwatch.attribute()`'s
values and asks the budget guard whether an enforced, spent budget covers the call; where the span is
made, the attribution is read from `attribute()` and the baggage. Measured here in one process, in
alternating blocks, as the difference between a recorder with them and one without, on the same request
(openai chat completions, key header, a JSON body): with no budget spent (the guard's fast path), and with
three enforced budgets spent for other users (the guard looks up the call's user, its key id and its
model), inside `attribute(user=..., feature=...)` and with three baggage entries.
"""

from __future__ import annotations

import statistics
import time

from benchmarks.common import Section, Target, table

BLOCKS = [
    {"rule": "per-user", "where": {}, "group_by": ["user"], "exhausted": [["someone-else"]]},
    {"rule": "per-key", "where": {"provider": ["openai"]}, "group_by": ["api_key_id"], "exhausted": [["0" * 16]]},
    {"rule": "per-model", "where": {"feature": ["search"]}, "group_by": ["model"], "exhausted": [["gpt-5"]]},
]


def _setup():
    from opentelemetry import baggage, context
    from opentelemetry.sdk.trace import TracerProvider

    from spendwatch.instrumentation.attribution import Attributor
    from spendwatch.instrumentation.budgets import BudgetGuard, _Block
    from spendwatch.instrumentation.call import Recorder
    from spendwatch.instrumentation.families.registry import Classifier
    from spendwatch.instrumentation.request import LowerHeaders, Request

    tracer = TracerProvider().get_tracer("bench")
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}'

    def request() -> Request:
        headers = LowerHeaders.of({"authorization": "Bearer sk-bench-" + "x" * 40, "content-type": "application/json"})
        return Request("https", "api.openai.com", 443, "/v1/chat/completions", "", headers, body=body)

    bare = Recorder(tracer, Classifier())
    idle_guard = BudgetGuard("http://127.0.0.1:9/none")
    idle_guard._thread = object()  # no background reads: the state below is what it knows
    idle_guard._fetched_at = time.monotonic() + 10**6
    busy_guard = BudgetGuard("http://127.0.0.1:9/none")
    busy_guard._thread = object()
    busy_guard._blocks = tuple(_Block(block) for block in BLOCKS)
    busy_guard._fetched_at = time.monotonic() + 10**6
    idle = Recorder(tracer, Classifier(), Attributor(), idle_guard)
    busy = Recorder(tracer, Classifier(), Attributor(), busy_guard)
    entries = context.get_current()
    for name, value in (("enduser.id", "u-123"), ("tenant.id", "acme"), ("feature", "search")):
        entries = baggage.set_baggage(name, value, entries)
    return request, bare, idle, busy, entries


def _per_call(recorder, request, entries, rounds: int, attributed: bool = True) -> float:
    """CPU µs a call: start (attribution captured, guard asked) and the attribution read for the span.

    What the span's emission does for every call anyway (its key id, the request's JSON) is done here
    too, so that moving it before the request is not counted as added."""
    from opentelemetry import context

    import spendwatch

    token = context.attach(entries)
    try:
        with spendwatch.attribute(user="u-123", feature="search"):
            started = time.process_time()
            for _ in range(rounds):
                call = recorder.start(request())
                call.fact("api_key_id")
                call.fact("model")
                if attributed:
                    call.attribution_values()
            return (time.process_time() - started) / rounds * 1e6
    finally:
        context.detach(token)


def _price_from_a_card(rounds: int) -> float:
    """CPU µs to price a call in the app: its kind looked up among the cards, the card applied."""
    from spendwatch.instrumentation.prices import RateCards, _Card

    cards = RateCards("http://127.0.0.1:9/none")
    kind = cards.kind("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini", "0" * 16, {})
    cards._cards = {kind: _Card({"rates": ["1.5E-7", "6E-7", "7.5E-8", "1.5E-7"], "factor": 0.8, "version": "v"})}
    cards._until = time.time() + 10**6
    started = time.process_time()
    for _ in range(rounds):
        cards.cost(cards.kind("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini", "0" * 16, {}), 1200, 340, 1024, 0, 0)
    return (time.process_time() - started) / rounds * 1e6


def run(quick: bool) -> Section:
    request, bare, idle, busy, entries = _setup()
    rounds, blocks = (2_000, 3) if quick else (20_000, 9)
    figures: dict[str, list[float]] = {"bare": [], "idle": [], "busy": []}
    for _ in range(blocks):
        for name, recorder in (("bare", bare), ("idle", idle), ("busy", busy)):
            figures[name].append(_per_call(recorder, request, entries, rounds, attributed=name != "bare"))
    facts = {"user": "u-123", "provider": "openai", "api_key_id": "0" * 15 + "1", "feature": "search"}
    facts["model"] = "gpt-4o-mini"
    started = time.process_time()
    for _ in range(rounds):
        busy.guard.check(facts.get)
    guard_alone = (time.process_time() - started) / rounds * 1e6
    priced = _price_from_a_card(rounds)
    bare_us = statistics.median(figures["bare"])
    idle_added = statistics.median(figures["idle"]) - bare_us
    busy_added = statistics.median(figures["busy"]) - bare_us
    rows = [
        ["a call's start and attribution read, no attribution nor guard", f"{bare_us:.2f} µs", "reference"],
        ["... with attribution, no budget spent", f"{statistics.median(figures['idle']):.2f} µs",
         f"+{idle_added:.2f} µs"],
        ["... with attribution, three budgets spent for others", f"{statistics.median(figures['busy']):.2f} µs",
         f"+{busy_added:.2f} µs"],
        ["the guard's own check over three spent budgets, the call's facts known", f"{guard_alone:.2f} µs", ""],
        ["the call's cost from the daemon's rate card (a discounted key), as its span is made",
         f"{priced:.2f} µs", ""],
    ]  # fmt: skip
    body = __doc__.split("\n\n", 1)[1] + "\n" + table(["CPU per call", "this run", "added"], rows, "lrr")
    targets = [
        Target("attribution and enforcement, no budget spent: added per call", idle_added, 5, f"{idle_added:.2f} µs"),
        Target(
            "attribution and enforcement, three budgets spent for others: added per call",
            busy_added,
            5,
            f"{busy_added:.2f} µs",
        ),
    ]
    return Section("Attribution and budget enforcement in the app", body, targets)
