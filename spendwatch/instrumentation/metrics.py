"""The semantic conventions' GenAI client metrics, from the same calls as the spans:
`gen_ai.client.token.usage` (tokens, `{token}`, per `gen_ai.token.type`) and
`gen_ai.client.operation.duration` (seconds), histograms with the bucket boundaries the conventions advise.

They go to the app's meter provider (`instrument(meter_provider=...)`, else the global one), so they reach
wherever the app's metrics go — beside the app's own, in the app's pipeline. With none configured, the
API's global provider is a proxy whose instruments do nothing until a real provider is set: recording
costs the attribute dict and two calls that return at once (benchmarks/RESULTS.md). Attributes are the
conventions' — operation, provider, request and response model, server address and port, `error.type` on
failure — and never the key id: a metric's every label set is a time series kept for ever, and the key
id belongs on the span. Tokens spendwatch estimated (a stream without usage) carry
`spendwatch.usage.estimated = true`, as the conventions allow offline counting when it is marked.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics

from spendwatch import semconv
from spendwatch.version import __version__

TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)


class ClientMetrics:
    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        provider = meter_provider or metrics.get_meter_provider()
        meter = provider.get_meter(semconv.INSTRUMENTATION_SCOPE, __version__)
        self.token_usage = meter.create_histogram(
            semconv.GEN_AI_CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
        )
        self.operation_duration = meter.create_histogram(
            semconv.GEN_AI_CLIENT_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )

    def record(
        self,
        attributes: dict[str, Any],
        seconds: float,
        input_tokens: int | None,
        output_tokens: int | None,
        estimated: bool,
    ) -> None:
        """One call: its duration, and its tokens when known (`attributes`: the span's, picked below)."""
        common = {name: attributes[name] for name in _METRIC_ATTRIBUTES if name in attributes}
        self.operation_duration.record(seconds, common)
        if estimated:
            common[semconv.SPENDWATCH_USAGE_ESTIMATED] = True
        common.pop(semconv.ERROR_TYPE, None)  # the token histogram has no error.type in the conventions
        for token_type, count in ((semconv.TOKEN_TYPE_INPUT, input_tokens), (semconv.TOKEN_TYPE_OUTPUT, output_tokens)):
            if count is not None:
                self.token_usage.record(count, {**common, semconv.GEN_AI_TOKEN_TYPE: token_type})


_METRIC_ATTRIBUTES = (
    semconv.GEN_AI_OPERATION_NAME,
    semconv.GEN_AI_PROVIDER_NAME,
    semconv.GEN_AI_REQUEST_MODEL,
    semconv.GEN_AI_RESPONSE_MODEL,
    semconv.SERVER_ADDRESS,
    semconv.SERVER_PORT,
    semconv.ERROR_TYPE,
)
