"""An app on the openai Node SDK under OpenTelemetry's openai instrumentation for Node, exporting over
OTLP/HTTP protobuf (chunked bodies on keep-alive connections): every billed request one row with its exact
tokens — two calls made at once in one trace stay two, the failed attempt of a retry costs nothing — and
no content stored. spendwatch's instrumentation does not run in Node: the rows have no key id.

Versions (../shared/PEERS.md): openai 6.49.0, @opentelemetry/instrumentation-openai 0.21.0 with the SDK
2.12.1 and exporter 0.223.1 packages; Node from Debian's packages.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

from tests.collector import Collector
from tests.conftest import make_key
from tests.node_packages import node_modules
from tests.peers.harness import COMPLETION, PROMPT, Run, _database_bytes, assert_counted_once

PACKAGES = (
    "@opentelemetry/api@1.9.1",
    "@opentelemetry/core@2.12.1",
    "@opentelemetry/resources@2.12.1",
    "@opentelemetry/sdk-trace-base@2.12.1",
    "@opentelemetry/sdk-trace-node@2.12.1",
    "@opentelemetry/instrumentation@0.223.0",
    "@opentelemetry/exporter-trace-otlp-proto@0.223.1",
    "@opentelemetry/instrumentation-openai@0.21.0",
    "openai@6.49.0",
)
APP = Path(__file__).parent.parent / "node" / "openai_app.js"


def test_each_billed_request_from_node_is_one_row(tmp_path, standin):
    modules = node_modules(PACKAGES)
    keys = {"KEY_A": make_key(), "KEY_B": make_key()}
    collector = Collector(tmp_path / "spendwatch.duckdb", tmp_path / "collector.log").start()
    result = subprocess.run(
        [shutil.which("node") or "node", str(APP)],
        env={
            **os.environ,
            **keys,
            "NODE_PATH": str(modules),
            "STANDIN": standin.base_url,
            "ENDPOINT": collector.http_endpoint,
            "PROMPT": PROMPT,
            "COMPLETION": COMPLETION,
            "RUN": secrets.token_hex(4),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0 and "app done" in result.stdout, result.stdout + result.stderr
    raw = _database_bytes(collector.db)
    assert collector.stop() == 0
    raw += _database_bytes(collector.db)
    ours = set(keys.values())
    run = Run(collector, keys, [entry for entry in standin.billed if entry.key in ours], raw, result.stdout)
    assert len(run.billed) == 5
    calls = assert_counted_once(run, key_ids=False)
    assert {call["service_name"] for call in calls} == {"node-app"}
