"""Running a peer as its users do, against the stand-in provider, into a real `spendwatch up`; then
comparing `llm_calls` with what the stand-in billed.

An app is a Python script made of a peer's set-up and a scenario, run as its own process (each peer sets
up OpenTelemetry its own way, once per process): its spans go over OTLP/HTTP to the collector, and the
app exits only after its tracer provider has flushed, that is after the collector acknowledged, that is
after the calls are committed. spendwatch's instrumentation is turned on (`spendwatch.instrument()`, after
the app's own set-up, as the README says) or left off.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from spendwatch.instrumentation.keys import api_key_id
from tests.collector import Collector
from tests.conftest import make_key

PROMPT = "PROMPT-CANARY-" + secrets.token_hex(4)
SYSTEM = "SYSTEM-CANARY-" + secrets.token_hex(4)
COMPLETION = "COMPLETION-CANARY-" + secrets.token_hex(4)
TOOL = "TOOL-CANARY-" + secrets.token_hex(4)
CANARIES = (PROMPT, SYSTEM, COMPLETION, TOOL)

PRELUDE = """
import asyncio, os, sys
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

BASE = os.environ["STANDIN"]
KEY_A, KEY_B = os.environ["KEY_A"], os.environ["KEY_B"]
PROMPT, SYSTEM, COMPLETION = os.environ["PROMPT"], os.environ["SYSTEM"], os.environ["COMPLETION"]
REPLY = {"x-standin-reply": COMPLETION + " and more words"}
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
USER_ONLY = [{"role": "user", "content": PROMPT}]

def exporter():
    return OTLPSpanExporter(endpoint=os.environ["ENDPOINT"] + "/v1/traces", timeout=10)

def tracer_provider():
    provider = TracerProvider(resource=Resource.create({"service.name": "peer-app"}))
    provider.add_span_processor(BatchSpanProcessor(exporter()))
    trace.set_tracer_provider(provider)
    return provider

def usage(n, **extra):
    fields = {"input": n, "output": 7, **extra}
    return {**REPLY, "x-standin-usage": ",".join(f"{k}={v}" for k, v in fields.items())}

def flaky(n, name):
    return {**usage(n), "x-standin-fail-first": f"{name}-{os.environ['RUN']}=1"}
"""

ENABLE_SPENDWATCH = """
if os.environ.get("SPENDWATCH") == "1":
    import spendwatch
    spendwatch.instrument()
"""


@dataclass
class Run:
    collector: Collector
    keys: dict[str, str]
    billed: list  # the stand-in's ledger entries of this run
    raw_bytes: bytes  # the database file and its WAL while the daemon held them, then after it stopped
    output: str

    def calls(self) -> list[dict]:
        columns = (
            "span_id, provider, operation, request_model, response_model, response_id, input_tokens, output_tokens,"
            " cache_read_tokens, cache_write_tokens, cost_usd, api_key_id, status_code, error_type, usage_unknown,"
            " usage_estimated, service_name, user, tenant, feature, agent, conversation, attributes"
        )
        names = [name.strip() for name in columns.split(",")]
        rows = self.collector.query(f"SELECT {columns} FROM llm_calls ORDER BY start_time")
        return [dict(zip(names, row, strict=True)) for row in rows]

    def spans(self) -> list[tuple]:
        return self.collector.query(
            "SELECT instrumentation_scope, superseded, superseded_by, supersede_rule, response_id FROM llm_call_spans"
        )


def run_app(
    tmp_path: Path,
    standin,
    setup: str,
    scenario: str,
    *,
    spendwatch: bool,
    env: dict | None = None,
    launcher: tuple[str, ...] = (),
) -> Run:
    """Run the app (under `launcher`, such as `opentelemetry-instrument`, when given) and the collector."""
    keys = {"KEY_A": make_key(), "KEY_B": make_key()}
    collector = Collector(tmp_path / "spendwatch.duckdb", tmp_path / "collector.log").start()
    app = tmp_path / "app.py"
    app.write_text(
        PRELUDE + textwrap.dedent(setup) + ENABLE_SPENDWATCH + textwrap.dedent(scenario) + "\nprint('app done')\n"
    )
    result = subprocess.run(
        [*launcher, sys.executable, str(app)],
        env={
            **os.environ,
            **keys,
            **(env or {}),
            "STANDIN": standin.base_url,
            "ENDPOINT": collector.http_endpoint,
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_endpoint,
            "PROMPT": PROMPT,
            "SYSTEM": SYSTEM,
            "COMPLETION": COMPLETION,
            "TOOL": TOOL,
            "RUN": secrets.token_hex(4),
            "SPENDWATCH": "1" if spendwatch else "0",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        },
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "app done" in result.stdout, output
    for complaint in ("Failed to export", "Exception while exporting", "internal error"):
        assert complaint not in output, output
    raw = _database_bytes(collector.db)
    assert collector.stop() == 0
    raw += _database_bytes(collector.db)
    ours = set(keys.values())
    billed = [entry for entry in standin.billed if entry.key in ours]
    return Run(collector, keys, billed, raw, output)


def _database_bytes(db: Path) -> bytes:
    wal = db.with_name(db.name + ".wal")
    return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def assert_counted_once(
    run: Run, *, key_ids: bool, failed_attempts: int = 0, cache_reported: bool = True
) -> list[dict]:
    """Every billed request is one row with its exact tokens; failed attempts are rows without cost; the
    key id is there where spendwatch saw the request; no canary anywhere in the file or its WAL.

    `cache_reported=False` for a peer that does not report cached input on its own: its rows then say
    nothing of the cache (NULL), never a wrong number."""
    calls = run.calls()
    billed_rows = [call for call in calls if call["error_type"] is None]
    failed_rows = [call for call in calls if call["error_type"] is not None]
    assert sorted(row["response_id"] for row in billed_rows) == sorted(entry.response_id for entry in run.billed), (
        calls,
        run.spans(),
    )
    by_id = {entry.response_id: entry for entry in run.billed}
    for row in billed_rows:
        entry = by_id[row["response_id"]]
        assert (row["input_tokens"], row["output_tokens"]) == (entry.usage.input, entry.usage.output), row
        if cache_reported:
            assert (row["cache_read_tokens"] or 0) == entry.usage.cache_read, row
        else:
            assert row["cache_read_tokens"] is None, row
        assert row["usage_unknown"] is False and row["usage_estimated"] is False, row
        assert row["cost_usd"] is not None and row["cost_usd"] > 0, row
        assert row["api_key_id"] == (api_key_id(entry.key) if key_ids else None), row
    assert len(failed_rows) == failed_attempts, failed_rows
    for row in failed_rows:
        assert row["input_tokens"] is None and not row["cost_usd"], row
    if key_ids:
        assert len({row["api_key_id"] for row in billed_rows}) == len({entry.key for entry in run.billed})
    for canary in CANARIES:
        assert canary.encode() not in run.raw_bytes, canary
    for key in run.keys.values():
        assert key.encode() not in run.raw_bytes
    return calls
