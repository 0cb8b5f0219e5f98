"""spendwatch: what every LLM API call cost, under which key, from which service.

`instrument()` turns on the instrumentation from code; `opentelemetry-instrument` does it with none.
The rooms: `instrumentation` (inside the user's app), `collector` (the daemon's ingest and store),
`rules` (scheduled checks and alerts), `ui` (the dashboard), `cli` (the command line); `daemon` wires
collector, rules and dashboard together. README's "Layout" has the tree.
"""

from __future__ import annotations

from typing import Any

from spendwatch.version import __version__

__all__ = [
    "BudgetExceeded",
    "__version__",
    "attribute",
    "budget_exceeded",
    "instrument",
    "last_call",
    "uninstrument",
]


def instrument(tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Report every LLM API call made through httpx, httpx2, aiohttp or urllib3 (requests, boto3) as a span. Idempotent.

    Uses `tracer_provider`, else the global one; when the app has set none, sets up OTLP trace export
    from the standard `OTEL_*` variables first, as opentelemetry-distro would. The GenAI client metrics
    go to `meter_provider`, else the global one (nowhere, at next to no cost, while the app has none).
    """
    from spendwatch.instrumentation import SpendwatchInstrumentor
    from spendwatch.instrumentation.export import configured_tracer_provider

    SpendwatchInstrumentor().instrument(
        tracer_provider=tracer_provider or configured_tracer_provider(), meter_provider=meter_provider
    )


def uninstrument() -> None:
    """Undo `instrument()`: the HTTP libraries are as they were."""
    from spendwatch.instrumentation import SpendwatchInstrumentor

    SpendwatchInstrumentor().uninstrument()


def __getattr__(name: str) -> Any:
    """`attribute`, `last_call`, `BudgetExceeded`, `budget_exceeded`: imported when first used."""
    if name == "attribute":
        from spendwatch.instrumentation.attribution import attribute

        return attribute
    if name == "last_call":
        from spendwatch.instrumentation.call import last_call

        return last_call
    if name in ("BudgetExceeded", "budget_exceeded"):
        from spendwatch.instrumentation import budgets

        return getattr(budgets, name)
    raise AttributeError(f"module 'spendwatch' has no attribute {name!r}")
