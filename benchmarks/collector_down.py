"""What an instrumented app pays when its collector is down: per LLM call, and at exit.

Run with the others: `python -m benchmarks` (or `--only collector_down`).

1. Per call: the real openai SDK against the stand-in provider, uninstrumented, instrumented with the
   collector up, and instrumented with the collector down (OTLP/gRPC to a port nobody listens on), with
   the SDK's BatchSpanProcessor. Export happens on the processor's thread, so a dead collector should
   add nothing to the call itself.
2. At exit: an app that makes one call and exits, under `spendwatch run` (exporter timeouts bounded to a
   second) and under plain `opentelemetry-instrument` (the SDK's default 10 s timeout and retries),
   with the collector down.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Section, Target, table

CALLS = 300
ROUNDS = 5
QUICK_CALLS, QUICK_ROUNDS = 60, 1


def dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def per_call_medians(calls: int = CALLS, rounds: int = ROUNDS) -> dict[str, float]:
    import openai
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from spendwatch.instrumentation import SpendwatchInstrumentor
    from spendwatch.standin import StandinServer
    from tests.otlp_receiver import OtlpReceiver

    results: dict[str, list[float]] = {"uninstrumented": [], "collector up": [], "collector down": []}
    with StandinServer() as standin, OtlpReceiver() as receiver:
        client = openai.OpenAI(base_url=f"{standin.base_url}/v1", api_key="sk-bench-" + "x" * 32, max_retries=0)

        def timed() -> float:
            samples = []
            for _ in range(calls):
                started = time.perf_counter_ns()
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
                samples.append((time.perf_counter_ns() - started) / 1000)
            return statistics.median(samples)

        providers = {}
        for name, port in (("collector up", receiver.port), ("collector down", dead_port())):
            provider = TracerProvider()
            exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}", insecure=True, timeout=1)
            provider.add_span_processor(BatchSpanProcessor(exporter))
            providers[name] = provider
        timed()  # warm-up
        instrumentor = SpendwatchInstrumentor()
        for _ in range(rounds):
            results["uninstrumented"].append(timed())
            for name, provider in providers.items():
                instrumentor.instrument(tracer_provider=provider)
                results[name].append(timed())
                instrumentor.uninstrument()
        for provider in providers.values():
            provider.shutdown()
    return {name: statistics.median(values) for name, values in results.items()}


APP = "import httpx2, os\nhttpx2.post(os.environ['STANDIN'] + '/v1/chat/completions', json={'model': 'gpt-4o-mini'})\n"


def exit_seconds() -> dict[str, float]:
    from spendwatch.standin import StandinServer

    bin_dir = Path(sys.executable).parent
    results = {}
    with StandinServer() as standin, tempfile.TemporaryDirectory() as directory:
        app = Path(directory) / "app.py"
        app.write_text(APP)
        endpoint = f"http://127.0.0.1:{dead_port()}"
        # Only spendwatch, as in an app that installs it alone: opentelemetry-instrument loads every
        # instrumentor installed, and the peers the overhead benchmark compares are (their extra spans and
        # exports took the exit from ~1 s to ~4 s here).
        peers = "openai,anthropic,httpx,httpx2"
        env = {**os.environ, "STANDIN": standin.base_url, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": peers}
        commands = {
            "spendwatch run": [
                str(bin_dir / "spendwatch"),
                "run",
                "--endpoint",
                endpoint,
                "--",
                sys.executable,
                str(app),
            ],
            "opentelemetry-instrument (defaults)": [
                str(bin_dir / "opentelemetry-instrument"),
                sys.executable,
                str(app),
            ],
        }
        envs = {
            "spendwatch run": env,
            "opentelemetry-instrument (defaults)": {
                **env,
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "OTEL_METRICS_EXPORTER": "none",
                "OTEL_LOGS_EXPORTER": "none",
            },
        }
        for name, command in commands.items():
            started = time.monotonic()
            subprocess.run(command, env=envs[name], capture_output=True, check=True, timeout=120)
            results[name] = time.monotonic() - started
        started = time.monotonic()
        subprocess.run([sys.executable, str(app)], env=env, capture_output=True, check=True)
        results["uninstrumented"] = time.monotonic() - started
    return results


def run(quick: bool) -> Section:
    calls, rounds = (QUICK_CALLS, QUICK_ROUNDS) if quick else (CALLS, ROUNDS)
    medians = per_call_medians(calls, rounds)
    base = medians["uninstrumented"]
    per_call = table(
        ["", "median per call", "added"],
        [
            [name, f"{value:.0f} µs", "" if name == "uninstrumented" else f"{value - base:+.0f} µs"]
            for name, value in medians.items()
        ],
    )
    exits = exit_seconds()
    at_exit = table(["", "wall time"], [[name, f"{seconds:.2f} s"] for name, seconds in exits.items()])
    body = f"""Per call: median of {rounds} round(s) x {calls} calls of the real openai SDK (non-streaming chat)
against the stand-in, with a BatchSpanProcessor and the OTLP/gRPC exporter — to a live receiver, and to
a port nobody listens on. Wall clock, in one process: read the difference between the two instrumented
rows, not the absolute overhead (that is the first section's figure).

{per_call}

An app that makes one call and exits, with the collector down:

{at_exit}
"""
    exit_bound = exits["spendwatch run"] - exits["uninstrumented"]
    return Section(
        "What an app pays when its collector is down",
        body,
        [Target("exit with the collector down, added by `spendwatch run`", exit_bound, 1.5, f"{exit_bound:.2f} s")],
    )
