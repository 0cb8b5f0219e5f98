"""spendwatch's instrumentation: one CLIENT span per LLM API call, with usage and an API-key id.

Runs inside the user's app, so it imports nothing from the collector or the rules and nothing heavy.
`SpendwatchInstrumentor` is registered under the `opentelemetry_instrumentor` entry point, so
`opentelemetry-instrument python app.py` turns it on; `spendwatch.instrument()` does the same from code.

Each call also records the semantic conventions' GenAI client metrics through the app's meter provider
(`instrumentation/metrics.py`); `instrument(meter_provider=...)` names one.

Sampling: an LLM call that is not counted is this product's worst bug, so spendwatch's spans bypass the
app's sampler. They go through the app's own span processors and exporters, but are always recorded
and sampled, whatever `OTEL_TRACES_SAMPLER` says; everything else in the app is sampled as configured.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from spendwatch import semconv
from spendwatch.instrumentation import transport
from spendwatch.instrumentation.attribution import Attributor
from spendwatch.instrumentation.budgets import BudgetGuard
from spendwatch.instrumentation.call import Recorder
from spendwatch.instrumentation.families.registry import Classifier
from spendwatch.instrumentation.metrics import ClientMetrics
from spendwatch.version import __version__


class SpendwatchInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Patches httpx, httpx2, aiohttp and urllib3 so that every LLM API call they carry becomes one span."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()  # each HTTP library is optional: whichever is installed is patched when imported

    def _instrument(self, **kwargs: Any) -> None:
        tracer = unsampled_tracer(kwargs.get("tracer_provider") or trace.get_tracer_provider())
        self._guard = BudgetGuard.from_env()
        metrics = ClientMetrics(kwargs.get("meter_provider"))
        transport.patch(Recorder(tracer, Classifier.from_env(), Attributor.from_env(), self._guard, metrics))
        if self._guard is not None:
            self._guard.start()

    def _uninstrument(self, **kwargs: Any) -> None:
        transport.unpatch()
        guard = getattr(self, "_guard", None)
        if guard is not None:
            guard.stop()


def unsampled_tracer(tracer_provider: trace.TracerProvider) -> trace.Tracer:
    """A tracer for our spans that records them whatever the provider's sampler decides."""
    tracer = tracer_provider.get_tracer(semconv.INSTRUMENTATION_SCOPE, __version__)
    try:
        from opentelemetry.sdk.trace import Tracer as SdkTracer
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON
    except ImportError:  # the API without the SDK: nothing is exported anyway
        return tracer
    if isinstance(tracer, SdkTracer):
        tracer = copy.copy(tracer)
        tracer.sampler = ALWAYS_ON
    return tracer
