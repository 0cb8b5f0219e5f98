"""The rules engine: scheduled budget, forecast, anomaly and key-hygiene checks that alert through apprise."""
