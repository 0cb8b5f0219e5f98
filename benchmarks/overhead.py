"""What the instrumentation adds to the app's calls, next to a bare span and the peers, in one run.

Each variant (uninstrumented, a bare SDK span, spendwatch, OpenLLMetry, the contrib httpx2
instrumentation) runs in its own fresh interpreter, because instrumentations cannot all be undone
cleanly; the rounds interleave the variants in a new random order each time, so a drift of the machine
lands on all of them. Every variant has the same SDK TracerProvider with a BatchSpanProcessor to an
exporter that drops spans, so what differs is the instrumentation alone.

Two ways of calling, for two questions:
- **In memory**: the real openai and anthropic SDKs, with the connection pool under httpx2's transport
  replaced by one that answers with the stand-in provider's exact bytes. Everything from the SDK down to
  the transport runs as in production, the socket and the server do not, so a few µs of instrumentation
  are not lost in the tens of µs of loopback jitter. The per-call, non-LLM, and streaming figures come
  from here.
- **Loopback**: the same openai call over a real socket to the stand-in in another process, for the
  figure as an app would see it (wall clock and CPU time per call).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from benchmarks.common import ROOT, Section, Spread, Target, table

VARIANTS = ("uninstrumented", "bare span", "spendwatch", "OpenLLMetry", "contrib httpx2")
KEY = "sk-bench-" + "x" * 40
MESSAGES = [{"role": "user", "content": "Say hello in one short sentence."}]

# -- the worker: one variant in one interpreter ------------------------------------------------------------


class CannedPool:
    """Stands in for httpcore2's connection pool: consumes the request body, answers with canned bytes."""

    def __init__(self, answers: dict[str, tuple[int, list[tuple[bytes, bytes]], list[bytes]]]) -> None:
        self.answers = answers

    def handle_request(self, request: Any) -> Any:
        import httpcore2

        for _ in request.stream:
            pass
        status, headers, chunks = self.answers[request.url.target.decode().split("?")[0]]
        return httpcore2.Response(status, headers=headers, content=iter(chunks))

    def close(self) -> None:
        pass


def canned_answers(stream_chunks: int) -> dict[str, tuple[int, list[tuple[bytes, bytes]], list[bytes]]]:
    """The stand-in's bytes for each path the scenarios call, built by its own wire module."""
    from spendwatch.standin import wire
    from spendwatch.standin.server import Exchange

    def exchange(path: str, body: dict, headers: dict) -> Any:
        return Exchange(path, {}, body, headers, 1)

    chat = wire.answer(exchange("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES}, {}))
    chat_body = gzip.compress(json.dumps(chat.body).encode())
    openai_stream = wire.answer(
        exchange(
            "/v1/chat/completions",
            {"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True}},
            {"x-standin-chunks": str(stream_chunks)},
        )
    )
    anthropic_stream = wire.answer(
        exchange(
            "/v1/messages",
            {"model": "claude-sonnet-4-5", "stream": True, "max_tokens": 2000},
            {"x-standin-chunks": str(stream_chunks)},
        )
    )
    json_headers = [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")]
    sse = [(b"content-type", b"text/event-stream"), (b"transfer-encoding", b"chunked")]
    return {
        "/v1/chat/completions": (200, json_headers, [chat_body]),
        "/v1/chat/completions#stream": (200, sse, openai_stream.events),
        "/v1/messages": (200, sse, anthropic_stream.events),
        "/api/items": (200, [(b"content-type", b"application/json")], [b'{"items": [1, 2, 3]}']),
    }


class StreamSwitch(CannedPool):
    """One pool for both OpenAI answers: a request that asks for a stream gets the streamed bytes."""

    def handle_request(self, request: Any) -> Any:
        import httpcore2

        body = b"".join(request.stream)
        path = request.url.target.decode().split("?")[0]
        if path == "/v1/chat/completions" and b'"stream":true' in body.replace(b" ", b""):
            path += "#stream"
        status, headers, chunks = self.answers[path]
        return httpcore2.Response(status, headers=headers, content=iter(chunks))


def set_up(variant: str) -> Any:
    """The app's OpenTelemetry set-up, identical for every variant, then the variant's instrumentation."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DropExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    trace.set_tracer_provider(provider)
    if variant == "spendwatch":
        from spendwatch.instrumentation import SpendwatchInstrumentor

        SpendwatchInstrumentor().instrument(tracer_provider=provider)
    elif variant == "OpenLLMetry":
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider)
        AnthropicInstrumentor().instrument(tracer_provider=provider)
    elif variant == "contrib httpx2":
        from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor

        HTTPX2ClientInstrumentor().instrument(tracer_provider=provider)
    return provider


def bare_span_around(variant: str, provider: Any):
    """The reference: what one SDK span with a dozen attributes costs, wrapped around the same call."""
    tracer = provider.get_tracer("bench")

    def wrap(call):
        if variant != "bare span":
            return call

        def spanned(*args: Any, **kwargs: Any) -> Any:
            span = tracer.start_span("chat gpt-4o-mini")
            for index in range(12):
                span.set_attribute(f"bench.attribute_{index}", index)
            try:
                return call(*args, **kwargs)
            finally:
                span.end()

        return spanned

    return wrap


class raw_stream:
    """The provider's stream as bytes, iterated by the app through httpx2: no SDK on top, so what is added
    per chunk is the instrumentation's alone, not lost in the SDK's own ~20-80 µs per chunk."""

    def __init__(self, client: Any, url: str, body: dict) -> None:
        self.client, self.url, self.body = client, url, body

    def __call__(self) -> Iterator[bytes]:
        with self.client.stream("POST", self.url, json=self.body, headers={"authorization": f"Bearer {KEY}"}) as r:
            yield from r.iter_raw()


def per_call_us(call, calls: int) -> float:
    """CPU time of the whole process per call (the BatchSpanProcessor's thread included), in µs.

    CPU time, not wall time: what the app pays, and steady when other work shares the machine.
    """
    started = time.process_time_ns()
    for _ in range(calls):
        call()
    return (time.process_time_ns() - started) / calls / 1000


def wall_median_us(call, calls: int) -> float:
    samples = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - started)
    return statistics.median(samples) / 1000


def stream_figures(open_stream, calls: int) -> tuple[float, float]:
    """Median CPU time to the first chunk and for the whole stream, in µs."""
    first, whole = [], []
    for _ in range(calls):
        started = time.process_time_ns()
        stream = open_stream()
        iterator: Iterator[Any] = iter(stream)
        next(iterator)
        first.append(time.process_time_ns() - started)
        for _ in iterator:
            pass
        whole.append(time.process_time_ns() - started)
    return statistics.median(first) / 1000, statistics.median(whole) / 1000


def worker(variant: str, calls: int, stream_chunks: int, standin_url: str) -> dict[str, float]:
    import anthropic
    import httpx2
    import openai

    provider = set_up(variant)
    wrap = bare_span_around(variant, provider)
    answers = canned_answers(stream_chunks)

    def canned_client() -> Any:
        transport = httpx2.HTTPTransport()
        transport._pool = StreamSwitch(answers)
        return httpx2.Client(transport=transport)

    chat_client = openai.OpenAI(
        base_url="https://api.openai.com/v1", api_key=KEY, max_retries=0, http_client=canned_client()
    )
    claude = anthropic.Anthropic(
        base_url="https://api.anthropic.com", api_key="sk-ant-" + "y" * 40, max_retries=0, http_client=canned_client()
    )
    plain = canned_client()
    chat = wrap(lambda: chat_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES))
    non_llm = lambda: plain.get("https://inventory.internal.example/api/items").json()  # noqa: E731
    openai_stream = wrap(
        lambda: chat_client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    anthropic_stream = wrap(
        lambda: claude.messages.create(model="claude-sonnet-4-5", max_tokens=2000, messages=MESSAGES, stream=True)
    )
    raw_openai_stream = raw_stream(
        plain, "https://api.openai.com/v1/chat/completions", {"model": "gpt-4o-mini", "stream": True}
    )
    raw_anthropic_stream = raw_stream(
        plain, "https://api.anthropic.com/v1/messages", {"model": "claude-sonnet-4-5", "stream": True}
    )
    loopback_client = openai.OpenAI(base_url=f"{standin_url}/v1", api_key=KEY, max_retries=0)
    loopback = wrap(lambda: loopback_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES))

    for warm in (chat, non_llm, loopback):  # imports, pools and caches settle before anything is timed
        for _ in range(20):
            warm()
    for stream in (openai_stream, anthropic_stream, raw_openai_stream, raw_anthropic_stream):
        stream_figures(stream, 3)

    figures: dict[str, float] = {}
    figures["chat"] = per_call_us(chat, calls)
    figures["non_llm"] = per_call_us(non_llm, calls)
    stream_calls = max(5, calls // 100)
    figures["openai_first"], figures["openai_whole"] = stream_figures(openai_stream, stream_calls)
    figures["anthropic_first"], figures["anthropic_whole"] = stream_figures(anthropic_stream, stream_calls)
    figures["openai_raw_first"], figures["openai_raw_whole"] = stream_figures(raw_openai_stream, stream_calls)
    figures["anthropic_raw_first"], figures["anthropic_raw_whole"] = stream_figures(raw_anthropic_stream, stream_calls)
    loopback_calls = max(50, calls // 5)
    cpu_started = time.process_time_ns()
    figures["loopback"] = wall_median_us(loopback, loopback_calls)
    figures["loopback_cpu"] = (time.process_time_ns() - cpu_started) / loopback_calls / 1000
    provider.shutdown()
    return figures


# -- the runner: rounds of every variant, interleaved ----------------------------------------------------


def available(variant: str) -> str | None:
    """None when the variant runs here, else why not."""
    import importlib.util

    needs = {
        "OpenLLMetry": ("opentelemetry.instrumentation.openai", "opentelemetry-instrumentation-openai"),
        "contrib httpx2": ("opentelemetry.instrumentation.httpx", "opentelemetry-instrumentation-httpx"),
    }
    if variant not in needs:
        return None
    module, package = needs[variant]
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    return None if found else f"`{package}` is not installed (`pip install '.[bench]'`)"


def run(quick: bool) -> Section:
    from spendwatch.standin import StandinServer

    rounds, calls, chunks = (2, 200, 1000) if quick else (7, 2000, 1000)
    variants = [variant for variant in VARIANTS if available(variant) is None]
    skipped = {variant: available(variant) for variant in VARIANTS if available(variant) is not None}
    results: dict[str, dict[str, list[float]]] = {variant: {} for variant in variants}
    order = random.Random(7)
    with StandinServer() as standin:
        for _ in range(rounds):
            order.shuffle(variants)
            for variant in variants:
                output = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.overhead",
                        "worker",
                        variant,
                        str(calls),
                        str(chunks),
                        standin.base_url,
                    ],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    env={**os.environ, "OTEL_SDK_DISABLED": "false"},
                )
                if output.returncode != 0:
                    raise RuntimeError(f"overhead worker {variant} failed:\n{output.stderr[-4000:]}")
                for name, value in json.loads(output.stdout.splitlines()[-1]).items():
                    results[variant].setdefault(name, []).append(value)
    return report(results, skipped, rounds, calls, chunks)


def added(results: dict, variant: str, figure: str, per: float = 1.0) -> Spread:
    """Round by round: the variant's figure minus the uninstrumented one of the same round."""
    base = results["uninstrumented"][figure]
    return Spread([(value - base[index]) / per for index, value in enumerate(results[variant][figure])])


def report(results: dict, skipped: dict[str, str], rounds: int, calls: int, chunks: int) -> Section:
    base = results["uninstrumented"]
    rows = []
    for variant, figures in results.items():
        if variant == "uninstrumented":
            rows.append(
                [
                    variant,
                    Spread(base["chat"]).show(" µs"),
                    "",
                    Spread(base["non_llm"]).show(" µs"),
                    "",
                    Spread(base["loopback"]).show(" µs", 0),
                    Spread(base["loopback_cpu"]).show(" µs", 0),
                ]
            )
            continue
        rows.append(
            [
                variant,
                Spread(figures["chat"]).show(" µs"),
                added(results, variant, "chat").show(" µs"),
                Spread(figures["non_llm"]).show(" µs"),
                added(results, variant, "non_llm").show(" µs"),
                added(results, variant, "loopback").show(" µs", 0),
                added(results, variant, "loopback_cpu").show(" µs", 0),
            ]
        )
    calls_table = table(
        [
            "",
            "LLM call, in memory",
            "added",
            "non-LLM request",
            "added",
            "LLM call over loopback: added wall",
            "added CPU",
        ],
        rows,
    )
    stream_rows, sdk_rows = [], []
    for variant in results:
        if variant == "uninstrumented":
            continue
        for rows_of, kind in ((stream_rows, "_raw"), (sdk_rows, "")):
            rows_of.append(
                [
                    variant,
                    added(results, variant, f"openai{kind}_first").show(" µs"),
                    added(results, variant, f"openai{kind}_whole", chunks).show(" µs", 2),
                    added(results, variant, f"anthropic{kind}_first").show(" µs"),
                    added(results, variant, f"anthropic{kind}_whole", chunks).show(" µs", 2),
                ]
            )
    stream_header = ["", "OpenAI: first chunk added", "per chunk added", "Anthropic: first chunk added", "per chunk"]
    stream_table = table(stream_header, stream_rows)
    sdk_table = table(stream_header, sdk_rows)
    ours = "spendwatch"
    targets = []
    if ours in results:
        chat_added = added(results, ours, "chat")
        non_llm_added = added(results, ours, "non_llm")
        first = max(added(results, ours, "openai_raw_first").median, added(results, ours, "anthropic_raw_first").median)
        per_chunk = max(
            added(results, ours, "openai_raw_whole", chunks).median,
            added(results, ours, "anthropic_raw_whole", chunks).median,
        )
        targets = [
            Target("LLM call: added per call", chat_added.median, 40, chat_added.show(" µs")),
            Target("non-LLM request: added", non_llm_added.median, 2, non_llm_added.show(" µs", 2)),
            Target("stream: first chunk added (the worse of OpenAI and Anthropic)", first, 100, f"{first:.1f} µs"),
            Target("stream: added per chunk (the worse of the two)", per_chunk, 5, f"{per_chunk:.2f} µs"),
        ]
    notes = "".join(f"\n- {variant}: not measured — {why}." for variant, why in skipped.items())
    body = f"""{rounds} rounds, the variants in a new random order each round, each in a fresh interpreter;
in memory: median of {calls} calls per round; streams of {chunks} chunks, median of
{max(5, calls // 100)} streams per round; loopback: median of {max(50, calls // 5)} calls per round.
Each cell: the median over the rounds (lowest–highest round); "added" is the variant minus the
uninstrumented run of the same round. Every variant has the same TracerProvider and BatchSpanProcessor
(to an exporter that drops spans); "bare span" wraps each call in one SDK span with 12 attributes —
the floor any span-per-call instrumentation pays.

{calls_table}

Streams of 1,000 server-sent events (the stand-in's OpenAI chat and Anthropic Messages bytes), iterated
by the app through httpx2 as they arrive; "per chunk" is the whole stream's added CPU time divided by
the chunks, so it includes the span at the end:

{stream_table}

The same streams through the real SDKs (openai, anthropic), for scale: the SDKs' own parsing costs
~20–80 µs a chunk and varies more from stream to stream than the instrumentation costs, so these
differences are mostly noise:

{sdk_table}

The OpenLLMetry row instruments both SDKs (opentelemetry-instrumentation-openai and -anthropic); the
contrib httpx2 row records HTTP spans only — no model, no usage, no key. The anthropic SDK's own span
(on whenever a TracerProvider is set) is in every row, the uninstrumented one included.{notes}
"""
    return Section("Instrumentation overhead", body, targets)


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        variant, calls, chunks, url = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
        print(json.dumps(worker(variant, calls, chunks, url)))
    else:
        section = run(quick="--quick" in sys.argv)
        print(section.body)
        for target in section.targets:
            print(f"{target.name}: {target.shown} (goal {target.goal}) met={target.met}")
