"""The daemon's own counters as OpenTelemetry metrics, for teams that watch their collectors.

Off unless an endpoint is named (`--metrics-endpoint` or `SPENDWATCH_METRICS_ENDPOINT`): then the
counters `spendwatch up` shows in `spendwatch status` are exported over OTLP/HTTP every 30 s, with
`service.name = spendwatch`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

EXPORT_INTERVAL_MILLIS = 30_000
COUNTERS = (
    ("spans_received", "spendwatch.spans.received", "spans received over OTLP"),
    ("spans_stored", "spendwatch.spans.stored", "LLM-call spans stored"),
    ("spans_dropped", "spendwatch.spans.dropped", "spans that were not LLM calls"),
    ("spans_rejected", "spendwatch.spans.rejected", "spans that could not be stored"),
    ("duplicates_ignored", "spendwatch.spans.duplicates", "spans received again and ignored"),
)
GAUGES = (
    ("unpriced_models", "spendwatch.models.unpriced", "models with calls and no known price"),
    ("alert_deliveries_failing", "spendwatch.alerts.deliveries_failing", "alert deliveries not yet delivered"),
)


def start_self_metrics(
    endpoint: str, status: Callable[[], dict[str, Any]], interval_millis: int = EXPORT_INTERVAL_MILLIS
):
    """A meter provider exporting the counters; call `.shutdown()` on it at stop."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=endpoint.rstrip("/") + "/v1/metrics", timeout=5),
        export_interval_millis=interval_millis,
    )
    provider = MeterProvider(resource=Resource.create({"service.name": "spendwatch"}), metric_readers=[reader])
    meter = provider.get_meter("spendwatch.collector")

    def observe(key: str):
        def callback(options: CallbackOptions):
            return [Observation(status().get(key) or 0)]

        return callback

    for key, name, description in COUNTERS:
        meter.create_observable_counter(name, callbacks=[observe(key)], description=description)
    for key, name, description in GAUGES:
        meter.create_observable_gauge(name, callbacks=[observe(key)], description=description)
    return provider
