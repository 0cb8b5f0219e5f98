"""The providers' bills: what they say they billed, imported, and held against what spendwatch observed.

Only the provider's bill is the truth: spend no instrumented app reported — a service nobody
instrumented, a batch job, a notebook, a leaked key used elsewhere — shows only there. Owns: the
`[billing]` config (`config`: admin keys, kept as `Secret`s), the admin API client (`client`: retries,
rate limits, nothing secret in a message), one module per provider's admin API (`openai`, `anthropic`),
the import (`importer`: incremental and idempotent), the reconciliation's SQL (`reconcile`) and the
daemon's daily schedule (`schedule`).

May import: the base modules (`errors`, `durations`, `money`, `groups`). Never the collector, the rules,
the dashboard, the config or the daemon: the daemon and the CLI hand it a way to write (a function run on
a DuckDB connection) and a way to price (the collector's pricer); the rules and the dashboard read its SQL.
"""
