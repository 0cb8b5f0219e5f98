"""What an instrumented app pays when its collector is down: per LLM call, and at exit.

Run: python benchmarks/collector_down.py  (writes its figures to stdout; RESULTS.md keeps the last run)

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

CALLS = 300
ROUNDS = 5


def dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def per_call_medians() -> dict[str, float]:
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
            for _ in range(CALLS):
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
        for _ in range(ROUNDS):
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
        env = {**os.environ, "STANDIN": standin.base_url}
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


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent.parent))
    medians = per_call_medians()
    base = medians["uninstrumented"]
    print(f"Per call (median of {ROUNDS} rounds x {CALLS} calls, openai SDK, non-streaming chat):")
    for name, value in medians.items():
        print(f"  {name:<16} {value:8.0f} us  ({value - base:+.0f} us)")
    print("App exit with the collector down (one call, then exit):")
    for name, seconds in exit_seconds().items():
        print(f"  {name:<36} {seconds:5.2f} s")


if __name__ == "__main__":
    main()
