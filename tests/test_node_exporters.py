"""OpenTelemetry's Node.js trace exporters (OTLP/HTTP protobuf, OTLP/HTTP JSON, OTLP/gRPC) against
`spendwatch up`: every GenAI span they send is stored exactly once, and the exporters saw success.

The npm packages are the set of `../shared/PEERS.md`, installed once (tests/node_packages.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.collector import Collector
from tests.node_packages import node_modules as install

NODE_PACKAGES = (
    "@opentelemetry/api@1.9.1",
    "@opentelemetry/core@2.12.1",
    "@opentelemetry/resources@2.12.1",
    "@opentelemetry/sdk-trace-base@2.12.1",
    "@opentelemetry/sdk-trace-node@2.12.1",
    "@opentelemetry/exporter-trace-otlp-proto@0.223.1",
    "@opentelemetry/exporter-trace-otlp-http@0.223.1",
    "@opentelemetry/exporter-trace-otlp-grpc@0.223.1",
)
SCRIPT = Path(__file__).parent / "node" / "export_spans.js"
GENAI_SPANS, OTHER_SPANS = 240, 60


@pytest.fixture(scope="module")
def node_modules() -> Path:
    return install(NODE_PACKAGES)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    directory = tmp_path_factory.mktemp("node-exporters")
    collector = Collector(directory / "spendwatch.duckdb", directory / "log", shared=True).start()
    yield collector
    if collector.process.poll() is None:
        assert collector.stop() == 0


@pytest.mark.parametrize("kind", ["proto", "http", "grpc"])
def test_every_genai_span_from_a_node_exporter_is_stored_once(daemon, node_modules, kind):
    tag = f"node-{kind}-{os.urandom(4).hex()}"
    url = daemon.grpc_endpoint if kind == "grpc" else daemon.http_endpoint + "/v1/traces"
    result = subprocess.run(
        ["node", str(SCRIPT), kind, url, tag, str(GENAI_SPANS), str(OTHER_SPANS)],
        env={**os.environ, "NODE_PATH": str(node_modules), "OTEL_LOG_LEVEL": "error"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"exported": GENAI_SPANS + OTHER_SPANS, "failed": 0, "errors": []}, result.stderr
    answer = subprocess.run(
        [
            sys.executable,
            "-m",
            "spendwatch.cli",
            "query",
            "--db",
            str(daemon.db),
            "--format",
            "json",
            "SELECT request_model, count(*) AS copies, min(input_tokens) AS input_tokens, min(service_name) AS service"
            f" FROM llm_call_spans WHERE request_model LIKE '{tag}-%' GROUP BY request_model",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
    rows = {row["request_model"]: row for row in json.loads(answer.stdout)}
    assert set(rows) == {f"{tag}-{index}" for index in range(GENAI_SPANS)}
    assert {row["copies"] for row in rows.values()} == {1}
    assert all(row["input_tokens"] == 100 + int(model.rsplit("-", 1)[1]) for model, row in rows.items())
    assert {row["service"] for row in rows.values()} == {f"node-{kind}"}
