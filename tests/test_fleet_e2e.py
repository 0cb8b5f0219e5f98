"""Three daemons, one shared table: PostgreSQL as the catalog's database and moto's S3 server, on loopback,
with three `spendwatch up` subprocesses appending to one Iceberg table.

One daemon is killed (SIGKILL) right after a batch landed in the table and before its database recorded
it, and restarted; a call of another is superseded after it went out. Then: the table holds every
acknowledged call exactly once, `report --fleet` is the sum of the three daemons' reports, a fleet
budget alerts once, and when the lease holder is killed another daemon takes over within the time the
README gives (the lease's length and a third of it).
"""

from __future__ import annotations

import json
import secrets
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.collector import Collector, run_cli
from tests.fleet_servers import MotoS3, Postgres
from tests.receivers import JsonReceiver

LEASE_SECONDS = 3
CALLS_EACH = 10
TOKENS = 1_000_000  # gpt-4o-mini at $0.15 per million input tokens: $0.15 a call, $1.50 a daemon


@pytest.fixture(scope="module")
def servers():
    with Postgres() as postgres, MotoS3() as s3, JsonReceiver() as receiver:
        yield postgres, s3, receiver


def span(trace_id: str, span_id: str, *, parent: str | None = None, ours: bool = True) -> dict:
    now = time.time_ns()
    attributes = {
        "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": TOKENS,
        "gen_ai.usage.output_tokens": 0,
    }
    return {
        "scope": "spendwatch.instrumentation" if ours else "opentelemetry.instrumentation.openai",
        "span": {
            "traceId": trace_id,
            "spanId": span_id,
            **({"parentSpanId": parent} if parent else {}),
            "name": "chat gpt-4o-mini",
            "attributes": [{"key": key, "value": _value(value)} for key, value in attributes.items()],
            "startTimeUnixNano": str(now - (0 if ours else 1000)),
            "endTimeUnixNano": str(now + 1_000_000),
        },
    }


def _value(value) -> dict:
    return {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}


def export(spans: list[dict], service: str) -> dict:
    scopes: dict[str, list] = {}
    for item in spans:
        scopes.setdefault(item["scope"], []).append(item["span"])
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [{"scope": {"name": name}, "spans": items} for name, items in scopes.items()],
            }
        ]
    }


def send(collector: Collector, spans: list[dict], service: str = "checkout") -> None:
    with httpx.Client(base_url=collector.http_endpoint, timeout=30) as client:
        answer = client.post("/v1/traces", json=export(spans, service))
    assert answer.status_code == 200, answer.text  # acknowledged: committed to the daemon's database


def new_calls(count: int) -> list[dict]:
    return [span(secrets.token_hex(16), secrets.token_hex(8)) for _ in range(count)]


def config_for(tmp_path: Path, name: str, postgres: Postgres, receiver: JsonReceiver) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f"""
[fleet]
catalog = "{postgres.url}"
warehouse = "s3://fleet/warehouse"
daemon = "{name}"
every = "1s"
settle = "1s"
lease = "{LEASE_SECONDS}s"
maintain_every = "5s"

[notifiers]
ops = "json://127.0.0.1:{receiver.port}/alerts"

[[rules]]
name = "fleet-daily"
kind = "budget"
scope = "fleet"
every = "1s"
window = "day"
limit_usd = 3.0
thresholds = [1.0]
notify = ["ops"]
"""
    )
    return path


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.2)


def local_calls(collector: Collector, name: str) -> list[tuple]:
    answer = run_cli(
        "query", "--db", str(collector.db), "--format", "json", "SELECT trace_id, span_id, cost_usd FROM llm_calls"
    )
    assert answer.returncode == 0, answer.stderr
    return sorted((name, row["trace_id"], row["span_id"], row["cost_usd"]) for row in json.loads(answer.stdout))


def fleet_calls(config: Path, environ: dict) -> list[tuple]:
    answer = run_cli(
        "query", "--fleet", "--config", str(config), "--format", "json",
        "SELECT fleet_daemon, trace_id, span_id, cost_usd FROM llm_calls", env=environ,
    )  # fmt: skip
    if answer.returncode != 0:
        return []  # no daemon has created the table yet
    return sorted(
        (row["fleet_daemon"], row["trace_id"], row["span_id"], row["cost_usd"]) for row in json.loads(answer.stdout)
    )


def test_three_daemons_one_table_every_call_once(tmp_path, servers):
    postgres, s3, receiver = servers
    environ = s3.environ
    configs = {name: config_for(tmp_path, name, postgres, receiver) for name in ("a", "b", "c")}
    trigger = tmp_path / "kill-c-after-its-next-fleet-commit"
    daemons = {}
    for name, config in configs.items():
        env = {**environ, "FAULT_KILL_AFTER_FLEET_COMMIT": str(trigger)} if name == "c" else environ
        module = "tests.faulty_daemon" if name == "c" else "spendwatch.cli"
        daemons[name] = Collector(tmp_path / f"{name}.duckdb", tmp_path / f"{name}.log", config, env=env, module=module)
        daemons[name].start()

    # a call on a goes out as the SDK's span, then spendwatch's span beneath it supersedes it
    sdk_trace, sdk_span = secrets.token_hex(16), secrets.token_hex(8)
    send(daemons["a"], [span(sdk_trace, sdk_span, ours=False)])
    wait_for(lambda: daemons["a"].status()["fleet_rows_appended"] >= 1, 60, "a's first batch")
    send(daemons["a"], [span(sdk_trace, secrets.token_hex(8), parent=sdk_span)])
    for name in ("a", "b"):
        send(daemons[name], new_calls(CALLS_EACH - (1 if name == "a" else 0)), service=f"svc-{name}")

    # c: some calls out, then killed right after a batch landed and before it was recorded
    send(daemons["c"], new_calls(4), service="svc-c")
    wait_for(lambda: daemons["c"].status()["fleet_rows_appended"] >= 4, 60, "c's first batch")
    trigger.touch()
    send(daemons["c"], new_calls(3), service="svc-c")
    daemons["c"].process.wait(timeout=60)
    assert daemons["c"].process.returncode == -signal.SIGKILL
    trigger.unlink()
    daemons["c"] = Collector(daemons["c"].db, tmp_path / "c-again.log", configs["c"], env=environ).start()
    send(daemons["c"], new_calls(CALLS_EACH - 7), service="svc-c")

    # every acknowledged call in the table once, as each daemon's own llm_calls shows it
    expected = sorted(call for name, daemon in daemons.items() for call in local_calls(daemon, name))
    assert len(expected) == 3 * CALLS_EACH
    found = wait_for(lambda: (rows := fleet_calls(configs["a"], environ)) == expected and rows, 90, "the table")
    assert len({row[:3] for row in found}) == len(found)  # no call twice
    assert sdk_span not in {row[2] for row in found}  # the superseded span's call went out, then was replaced
    assert daemons["a"].status()["fleet_hours_replaced"] >= 1
    assert "had landed before the restart; recorded" in (tmp_path / "c-again.log").read_text()

    # report --fleet is the sum of the three daemons' reports
    local_totals = []
    for daemon in daemons.values():
        answer = run_cli("report", "--db", str(daemon.db), "--since", "1d", "--format", "json")
        local_totals.append(json.loads(answer.stdout)["total"])
    answer = run_cli(
        "report", "--fleet", "--config", str(configs["b"]), "--since", "1d", "--format", "json", env=environ
    )
    assert answer.returncode == 0, answer.stderr
    fleet_total = json.loads(answer.stdout)["total"]
    for measure in ("calls", "errors", "input_tokens", "output_tokens", "unpriced_calls"):
        assert fleet_total[measure] == sum(total[measure] or 0 for total in local_totals), measure
    assert fleet_total["cost_usd"] == pytest.approx(sum(total["cost_usd"] for total in local_totals), rel=1e-12)
    assert fleet_total["cost_usd"] == pytest.approx(3 * CALLS_EACH * 0.15)

    # the fleet budget ($4.50 of $3.00, no daemon over it alone) alerts once, from the lease holder
    (alert,) = receiver.wait_for(1, timeout=60)
    title = alert["title"]  # fired once crossed: at $3.00 or more, as the daemons' calls landed
    assert title.startswith("fleet-daily: ") and title.endswith("% of $3.00")
    assert 100 <= int(title.removeprefix("fleet-daily: ").split("%")[0]) <= 150
    holder = wait_for(lambda: [n for n, d in daemons.items() if d.status()["fleet_lease_held"]], 30, "a holder")
    assert len(holder) == 1
    daemons[holder[0]].more("fleet_rule_evaluations", 3, timeout=30)
    assert len(receiver.received) == 1

    # the holder is killed: another daemon holds the lease within its length and a third of it
    killed = holder[0]
    daemons[killed].process.kill()
    daemons[killed].process.wait()
    died = time.monotonic()
    others = [daemon for name, daemon in daemons.items() if name != killed]
    wait_for(lambda: any(daemon.status()["fleet_lease_held"] for daemon in others), 30, "a new holder")
    took = time.monotonic() - died
    assert took <= LEASE_SECONDS * 4 / 3 + 1.5, f"took {took:.1f} s"  # 1.5 s: status polling and scheduling
    new_holder = next(daemon for daemon in others if daemon.status()["fleet_lease_held"])
    new_holder.more("fleet_rule_evaluations", 3, timeout=30)
    assert len(receiver.received) == 1  # the new holder finds the alert raised: not again
    for daemon in others:
        assert daemon.stop() == 0
