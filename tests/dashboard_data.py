"""A generated database for the dashboard's tests: calls written straight into a DuckDB file.

Thirty days of calls across providers, models, keys and services, with errors, cache hits, an unpriced
model, a service whose name is markup, a key first seen an hour ago, and alerts in each delivery state.
Deterministic for a given `now` and seed.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

from spendwatch.collector.migrations import migrate
from spendwatch.collector.rollup import rebuild
from spendwatch.collector.store import connect

MARKUP_SERVICE = "<script>alert('svc')</script>"
MODELS = (  # provider, model, dollars per million input tokens (None: unpriced), per million output
    ("openai", "gpt-4o-mini", 0.15, 0.6),
    ("openai", "gpt-4o", 2.5, 10.0),
    ("anthropic", "claude-sonnet-4", 3.0, 15.0),
    ("google", "gemini-2.0-flash", 0.1, 0.4),
    ("acme", "acme-unpriced-1", None, None),
)
SERVICES = ("chat-api", "batch-jobs", "search", MARKUP_SERVICE)
KEYS = {  # id: (hint, name in [keys] or None)
    "k1a2b3c4d5e6f7a8": ("Ab12", "production"),
    "k9f8e7d6c5b4a3f2": ("Cd34", "batch & backfill"),
    "k0011223344556677": ("Ef56", None),
}
NEW_KEY = ("knewnewnewnew0001", "Zz99")
CONFIG = """
[notifiers]
inbox = "json://127.0.0.1:9/hook"

[keys]
k1a2b3c4d5e6f7a8 = "production"
k9f8e7d6c5b4a3f2 = "batch & backfill"

[[rules]]
name = "monthly-all"
kind = "budget"
window = "month"
limit_usd = 40.0
thresholds = [0.5, 0.8, 1.0]
notify = ["inbox"]

[[rules]]
name = "daily-per-provider"
kind = "budget"
window = "day"
group_by = "provider"
limit_usd = 2.0
notify = ["inbox"]
"""

_COLUMNS = (
    ("trace_id", "VARCHAR"),
    ("span_id", "VARCHAR"),
    ("start_time", "TIMESTAMPTZ"),
    ("end_time", "TIMESTAMPTZ"),
    ("duration_ms", "DOUBLE"),
    ("service_name", "VARCHAR"),
    ("provider", "VARCHAR"),
    ("operation", "VARCHAR"),
    ("request_model", "VARCHAR"),
    ("response_model", "VARCHAR"),
    ("input_tokens", "BIGINT"),
    ("output_tokens", "BIGINT"),
    ("cache_read_tokens", "BIGINT"),
    ("cost_usd", "DOUBLE"),
    ("api_key_id", "VARCHAR"),
    ("api_key_hint", "VARCHAR"),
    ("status_code", "INTEGER"),
    ("error_type", "VARCHAR"),
    ("from_spendwatch", "BOOLEAN"),
)


def generate(db: Path, now: datetime, calls: int = 3000, days: int = 30, seed: int = 11) -> None:
    """Write `calls` calls over the last `days` days (plus the new key's few) and three alerts into `db`."""
    rows = []
    chance = random.Random(seed)
    for index in range(calls):
        start = now - timedelta(seconds=chance.uniform(60, days * 86400))
        key_id = chance.choice(list(KEYS))
        rows.append(_call(chance, index, start, key_id, KEYS[key_id][0]))
    for index in range(calls, calls + 5):
        rows.append(_call(chance, index, now - timedelta(minutes=chance.uniform(5, 60)), *NEW_KEY))
    con = connect(db)
    try:
        migrate(con)
        con.execute(f"CREATE TEMP TABLE staged ({', '.join(f'{name} {kind}' for name, kind in _COLUMNS)})")
        appender = con.appender("staged")
        for row in rows:
            appender.append_row(*row)
        appender.flush()
        con.execute("INSERT INTO llm_call_spans BY NAME SELECT * FROM staged")
        rebuild(con)  # written past the store: the hourly rollup summed again, as after a migration
        _alerts(con, now)
        con.execute("CHECKPOINT")
    finally:
        con.close()


def _call(chance: random.Random, index: int, start: datetime, key_id: str, hint: str) -> tuple:
    provider, model, input_price, output_price = chance.choice(MODELS)
    input_tokens = chance.randint(200, 6000)
    output_tokens = chance.randint(20, 1200)
    cache_read = chance.choice((0, 0, input_tokens // 2))
    failed = chance.random() < 0.06
    if failed:
        output_tokens, cache_read = 0, 0
    cost = None if input_price is None else (input_tokens * input_price + output_tokens * output_price) / 1e6
    duration = chance.uniform(150, 4000)
    return (
        f"{index:032x}",
        f"{index:016x}",
        start,
        start + timedelta(milliseconds=duration),
        duration,
        chance.choice(SERVICES),
        provider,
        "chat",
        model,
        model,
        input_tokens,
        output_tokens,
        cache_read,
        cost,
        key_id,
        hint,
        429 if failed else 200,
        "429" if failed else None,
        True,
    )


def _alerts(con, now: datetime) -> None:
    for number, (state, delivered, gave_up, error) in enumerate(
        (
            ("delivered", now - timedelta(hours=5), None, None),
            ("failed", None, now - timedelta(hours=2), "connection refused"),
            ("pending", None, None, None),
        )
    ):
        created = now - timedelta(hours=6 - number)
        (alert_id,) = con.execute(
            """INSERT INTO alerts (rule, kind, group_by, group_value, window_start, window_end, threshold, value,
                                   limit_value, title, message, created_at, state, attempts, delivered_at, last_error)
               VALUES (?, 'budget', NULL, '', ?, ?, 0.8, 33.0, 40.0, ?, 'message', ?, ?, 1, ?, ?) RETURNING id""",
            [
                "monthly-all",
                now - timedelta(days=number + 1),
                now,
                f"monthly-all: alert {number} <b>bold</b>",
                created,
                state,
                delivered,
                error,
            ],
        ).fetchone()
        # The pending one is not due again for a day: the daemon under test leaves every alert as it is.
        con.execute(
            "INSERT INTO alert_deliveries (alert_id, notifier, attempts, next_attempt_at, delivered_at, gave_up_at, "
            "last_error) VALUES (?, 'inbox', 1, ?, ?, ?, ?)",
            [alert_id, now + timedelta(days=1), delivered, gave_up, error],
        )
