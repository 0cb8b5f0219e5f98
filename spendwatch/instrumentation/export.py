"""Trace export for `spendwatch.instrument()` in an app that set up no OpenTelemetry of its own.

What opentelemetry-distro would do for traces, from the standard variables: `OTEL_TRACES_EXPORTER`
(default `otlp`; `none` to export nothing; a comma-separated list), `OTEL_EXPORTER_OTLP_PROTOCOL` or
`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` (default `grpc`, as the distro), the exporters' own
`OTEL_EXPORTER_OTLP_*` endpoint and timeout variables, and `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`
for the resource. Only traces: metrics and logs stay the app's business.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points

from opentelemetry import trace

_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}


def configured_tracer_provider() -> trace.TracerProvider:
    """The global tracer provider, set up from the environment first if the app has none."""
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider):
        return current
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create())
    for exporter_name in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(","):
        exporter_name = exporter_name.strip()
        if exporter_name in ("", "none"):
            continue
        if exporter_name == "otlp":
            protocol = os.environ.get(
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            )
            exporter_name = _OTLP_BY_PROTOCOL.get(protocol.strip(), "otlp_proto_grpc")
        found = list(entry_points(group="opentelemetry_traces_exporter", name=exporter_name))
        if not found:
            raise ValueError(f"OTEL_TRACES_EXPORTER: no trace exporter named {exporter_name!r} is installed")
        provider.add_span_processor(BatchSpanProcessor(found[0].load()()))
    trace.set_tracer_provider(provider)
    return trace.get_tracer_provider()
