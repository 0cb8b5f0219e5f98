"""Shared fixtures: one global SDK tracer provider with an in-memory exporter, the stand-in provider, and
an isolated environment for every test."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spendwatch
from spendwatch.standin import StandinServer

# Set once: OpenTelemetry allows one global provider per process. SDKs with their own tracing (anthropic)
# use the global provider, so their spans land in the same exporter as ours.
EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(PROVIDER)


# The peers' instrumentors installed as test dependencies (tests/peers): `opentelemetry-instrument` loads
# every installed one, so a test about spendwatch alone (and every subprocess it starts) turns them off,
# and a peer's test turns on the ones it is about.
PEER_INSTRUMENTORS = "openai,anthropic,httpx,httpx2"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", PEER_INSTRUMENTORS)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("SPENDWATCH_DB", "SPENDWATCH_CONFIG", "SPENDWATCH_PROVIDER_HOSTS"):
        monkeypatch.delenv(name, raising=False)
    # Offline, as the machine is: no daemon a test starts fetches price data unless the test says from where.
    monkeypatch.setenv("SPENDWATCH_PRICES_URL", "off")
    yield
    spendwatch.uninstrument()
    _stop_leftover_collectors()


def _stop_leftover_collectors() -> None:
    """A test that failed before stopping its daemon must not leave it running."""
    from tests.collector import RUNNING

    for collector in list(RUNNING):
        if collector.process is not None and collector.process.poll() is None and not collector.shared:
            collector.process.kill()
            collector.process.wait()
        if collector.process is None or collector.process.poll() is not None:
            RUNNING.remove(collector)


@pytest.fixture(scope="session", autouse=True)
def stop_every_collector_at_the_end():
    yield
    from tests.collector import RUNNING

    for collector in RUNNING:
        if collector.process is not None and collector.process.poll() is None:
            collector.process.kill()
            collector.process.wait()


@pytest.fixture(scope="session")
def standin():
    with StandinServer() as server:
        yield server


@pytest.fixture
def spans():
    """Instrumented, with the finished spans of this test in `spans.get_finished_spans()`."""
    EXPORTER.clear()
    spendwatch.instrument()
    yield EXPORTER
    spendwatch.uninstrument()
    EXPORTER.clear()


def ours(exporter: InMemorySpanExporter) -> list:
    """spendwatch's spans among the finished ones."""
    return [
        span
        for span in exporter.get_finished_spans()
        if span.instrumentation_scope is not None and span.instrumentation_scope.name == "spendwatch.instrumentation"
    ]


def only_span(exporter: InMemorySpanExporter):
    found = ours(exporter)
    assert len(found) == 1, [(span.name, dict(span.attributes or {})) for span in found]
    return found[0]


def make_key(prefix: str = "sk-") -> str:
    """A made-up key, new at each call: tests never carry anything that looks like a real key."""
    import secrets

    return prefix + "test" + secrets.token_urlsafe(24)


def call_attributes(standin, key: str) -> dict:
    """The attributes every answered call to the stand-in has, whatever its format."""
    from spendwatch.instrumentation.keys import api_key_id

    return {
        "server.address": "127.0.0.1",
        "server.port": standin.server_address[1],
        "http.response.status_code": 200,
        "spendwatch.fingerprint.id": api_key_id(key),
        "spendwatch.fingerprint.hint": key[-4:],
        "spendwatch.usage.estimated": False,
    }
