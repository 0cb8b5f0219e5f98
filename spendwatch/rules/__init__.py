"""The rules: scheduled budget, forecast, anomaly, key-hygiene and bill checks that alert through apprise.

Owns: the `[[rules]]`, `[notifiers]` and `[keys]` config (`config`: one dataclass per rule kind), the
evaluators (`budget`, `anomaly`, `keys`, `reconcile`), alerts and their delivery (`alerts`), the
scheduler (`engine`). Reads the database through a connection or a query function it is handed, so it
imports nothing of the collector. May import: the base modules (`groups`, `money`, `durations`,
`errors`) and the reconciliation's SQL (`billing.reconcile`, itself built on the base modules only).
Never the collector, the dashboard, the config or the daemon.
"""
