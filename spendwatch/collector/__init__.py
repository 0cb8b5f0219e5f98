"""The collector: receives OTLP, keeps each LLM call once, prices it and stores it in the DuckDB file.

Owns: the receivers (`http_receiver`, `grpc_receiver`, `web`), span parsing into rows (`spans`,
`attributes`, `scrub`, `rows`), call identity (`identity`, `resolve`), pricing (`pricing`), the store and
its schema (`store`, `migrations`, `writer`), read-only SQL (`readonly`, `read_api`) and maintenance.
May import: the base modules (`semconv`, `errors`, `durations`, ...). Never the rules, the dashboard, the
config or the daemon that composes them (`spendwatch/daemon.py`).
"""
