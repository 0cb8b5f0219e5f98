"""`spendwatch demo`: the whole product in one command, offline, in under a minute.

It starts a collector on a temporary database with a budget rule, runs three instrumented services of a
sample app (each under `spendwatch run`, as a user's would be) against the built-in stand-in provider,
waits until every call is stored, prints the report and three example queries with their answers,
shows the budget alert the support bot's spend raised arriving at a local inbox, and stops cleanly.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from spendwatch.demo.app import KEY_VARIABLES, SCENARIOS
from spendwatch.errors import UserError

START_TIMEOUT_SECONDS = 30
STORE_TIMEOUT_SECONDS = 30

DEMO_CONFIG = """
[daemon]
settle = "0s"

[prices]
url = "off"                           # offline: the bundled price data


[notifiers]
inbox = "json://127.0.0.1:{inbox_port}/alerts"

[keys]
{key_names}

[[rules]]
name = "support-bot-daily"
kind = "budget"
every = "1s"
window = "day"
limit_usd = 0.05
where = {{ service = "support-bot" }}
notify = ["inbox"]
"""

EXAMPLE_QUERIES = (
    (
        "Spend per API key",
        "SELECT api_key_id, api_key_hint, count(*) AS calls, round(sum(cost_usd), 4) AS cost_usd "
        "FROM llm_calls GROUP BY ALL ORDER BY cost_usd DESC",
    ),
    (
        "Cache savings: input tokens served from the cache, per model",
        "SELECT model, sum(input_tokens) AS input_tokens, "
        "sum(cache_read_tokens) AS cached, round(sum(cache_read_tokens) / sum(input_tokens), 3) AS share "
        "FROM llm_calls WHERE cache_read_tokens > 0 GROUP BY ALL ORDER BY cached DESC",
    ),
    (
        "Error rate and estimated usage per service",
        "SELECT service_name, count(*) AS calls, count(*) FILTER (error_type IS NOT NULL) AS errors, "
        "count(*) FILTER (usage_estimated) AS estimated FROM llm_calls GROUP BY ALL ORDER BY service_name",
    ),
)


def run_demo(out: TextIO) -> int:
    from spendwatch.config import resolve
    from spendwatch.demo.inbox import Inbox
    from spendwatch.instrumentation.keys import api_key_id
    from spendwatch.output import write_rows
    from spendwatch.reads import daemon_status, query
    from spendwatch.report_table import print_report
    from spendwatch.standin import StandinServer

    expected_calls = sum(len(calls) for calls in SCENARIOS.values())
    keys = {variable: "sk-demo-" + secrets.token_urlsafe(24) for variable in KEY_VARIABLES.values()}
    names = {api_key_id(key): variable.removeprefix("DEMO_KEY_").lower() for variable, key in keys.items()}
    with (
        tempfile.TemporaryDirectory(prefix="spendwatch-demo-") as directory,
        StandinServer() as standin,
        Inbox() as inbox,
    ):
        db = Path(directory) / "demo.duckdb"
        log = Path(directory) / "collector.log"
        config = Path(directory) / "spendwatch.toml"
        key_names = "\n".join(f'"{key_id}" = "{name}"' for key_id, name in names.items())
        config.write_text(DEMO_CONFIG.format(inbox_port=inbox.port, key_names=key_names))
        daemon = _start_collector(db, log, config)
        try:
            info = json.loads(db.with_name(db.name + ".daemon.json").read_text())
            print(f"spendwatch demo: a collector on {db.name}, three services calling a stand-in provider\n", file=out)
            _run_services(standin.base_url, f"http://127.0.0.1:{info['grpc_port']}", keys)
            deadline = time.monotonic() + STORE_TIMEOUT_SECONDS
            while (daemon_status(db) or {}).get("calls_stored", 0) < expected_calls:
                if time.monotonic() > deadline:
                    raise UserError(f"the demo's calls did not all arrive; the collector's log: {log.read_text()}")
                time.sleep(0.1)

            print("$ spendwatch report --by provider,model --since all\n", file=out)
            print_report(out, resolve({"db": db, "config": config}), ["provider", "model"], None)
            for title, sql in EXAMPLE_QUERIES:
                print(f'\n{title}:\n$ spendwatch query "{sql}"\n', file=out)
                columns, rows = query(db, sql)
                if "api_key_id" in columns:
                    index = columns.index("api_key_id")
                    columns = [*columns, "key"]
                    rows = [[*row, names.get(row[index], "")] for row in rows]
                write_rows(out, columns, rows, "table")
            (alert, *_) = inbox.wait_for(1, timeout=STORE_TIMEOUT_SECONDS) or [None]
            if alert is None:
                raise UserError(f"the demo's budget alert did not arrive; the collector's log: {log.read_text()}")
            print("\nA budget rule fired; its alert, as delivered to a local inbox through apprise:\n", file=out)
            print(f"  {alert['title']}\n  " + alert["message"].replace("\n", "\n  "), file=out)
        finally:
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(timeout=30)
        if code != 0:
            raise UserError(f"the demo's collector exited with {code}: {log.read_text()}")
    print(
        f"\n{expected_calls} calls from 3 services, stored once each, priced, no prompt or key kept."
        "\nNext: `spendwatch up`, then `spendwatch run -- python your_app.py`.",
        file=out,
    )
    return 0


def _start_collector(db: Path, log: Path, config: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "spendwatch.cli",
        "up",
        "--db",
        str(db),
        "--config",
        str(config),
        "--http-port",
        "0",
        "--grpc-port",
        "0",
        "--no-ui",  # a demo's daemon lives for seconds; a real one may already serve the dashboard's port
    ]
    with log.open("wb") as log_file:
        daemon = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    daemon_file = db.with_name(db.name + ".daemon.json")
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not (daemon_file.exists() and daemon_file.stat().st_size):
        if daemon.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            raise UserError(f"the demo's collector did not start: {log.read_text()}")
        time.sleep(0.05)
    return daemon


def _run_services(standin_url: str, endpoint: str, keys: dict[str, str]) -> None:
    processes = []
    for service in SCENARIOS:
        env = {**os.environ, **keys, "STANDIN": standin_url, "OTEL_SERVICE_NAME": service}
        command = [
            sys.executable,
            "-m",
            "spendwatch.cli",
            "run",
            "--endpoint",
            endpoint,
            "--",
            sys.executable,
            "-m",
            "spendwatch.demo.app",
            service,
        ]
        processes.append((service, subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
    for service, process in processes:
        _, stderr = process.communicate(timeout=120)
        if process.returncode != 0:
            raise UserError(f"the demo's {service} service failed: {stderr.decode(errors='replace')[-2000:]}")
