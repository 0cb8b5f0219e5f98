"""Fresh price data without a release, offline: a real `spendwatch up` refreshing from a local HTTP server
that serves a genai-prices data file, as a mirror of genai-prices' published data would."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from spendwatch.reads import query
from tests.collector import Collector, run_cli


def provider_file(models: dict[str, tuple[float, float]]) -> bytes:
    """A genai-prices data file (v2: a JSON array of providers) with one provider, OpenAI, and these models."""
    return json.dumps(
        [
            {
                "id": "openai",
                "name": "OpenAI",
                "api_pattern": "https://api\\.openai\\.com",
                "models": [
                    {
                        "id": model,
                        "match": {"equals": model},
                        "prices": {"input_mtok": rates[0], "output_mtok": rates[1]},
                    }
                    for model, rates in models.items()
                ],
            }
        ]
    ).encode()


def version_of(body: bytes) -> str:
    return "fetched-" + hashlib.sha256(body).hexdigest()[:12]


class PriceServer(ThreadingHTTPServer):
    """Serves `body` at any path, with an ETag; answers a matching If-None-Match with 304; `failing` gives 500."""

    daemon_threads = True

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.failing = False
        self.answers: list[int] = []
        self.queries: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(handler) -> None:
                server = handler.server
                server.queries.append(handler.path)
                etag = '"' + hashlib.sha256(server.body).hexdigest() + '"'
                if server.failing:
                    status, body = 500, b"upstream trouble, token=server-secret"
                elif handler.headers.get("if-none-match") == etag:
                    status, body = 304, b""
                else:
                    status, body = 200, server.body
                server.answers.append(status)
                handler.send_response(status)
                handler.send_header("etag", etag)
                handler.send_header("content-length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, secret: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/prices/data.json?token={secret}"


def call_export(model: str, input_tokens: int, output_tokens: int) -> dict:
    now = time.time_ns()
    attributes = {
        "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }
    span = {
        "traceId": secrets.token_hex(16),
        "spanId": secrets.token_hex(8),
        "name": f"chat {model}",
        "startTimeUnixNano": str(now - 10**9),
        "endTimeUnixNano": str(now),
        "attributes": [
            {"key": key, "value": {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}}
            for key, value in attributes.items()
        ],
    }
    return {"resourceSpans": [{"scopeSpans": [{"scope": {"name": "acme-sdk"}, "spans": [span]}]}]}


def wait_for(condition, what: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.05)


def costs(db) -> dict[str, list[tuple]]:
    _, rows = query(
        db, "SELECT model, cost_usd, price_data_version, price_data_source FROM llm_calls ORDER BY start_time"
    )
    found: dict[str, list[tuple]] = {}
    for model, *rest in rows:
        found.setdefault(model, []).append(tuple(rest))
    return found


@pytest.fixture
def server():
    first = provider_file({"gpt-4o-mini": (1.0, 2.0)})  # not the bundled price ($0.15 / $0.60): it shows which is used
    running = PriceServer(first)
    try:
        yield running
    finally:
        running.shutdown()
        running.server_close()


def test_refresh_reprice_fall_back_and_restart(tmp_path, server):
    secret = "url-secret-" + secrets.token_hex(4)
    url = server.url(secret)
    db, log, config = tmp_path / "spendwatch.duckdb", tmp_path / "log", tmp_path / "spendwatch.toml"
    config.write_text('[prices]\nrefresh = "1s"\n')
    env = {"SPENDWATCH_PRICES_URL": url}
    collector = Collector(db, log, config=config, env=env).start()
    first = server.body
    status = wait_for(lambda: (s := collector.status()["price_data"])["version"] == version_of(first) and s, "data A")
    shown = url.split("?")[0]
    assert status["source"] == shown and status["refresh_url"] == shown  # never the query, which may hold a token
    assert status["fetched_at"] is not None and status["last_error"] is None

    with httpx.Client(base_url=collector.http_endpoint) as client:
        assert client.post("/v1/traces", json=call_export("gpt-4o-mini", 1_000_000, 1_000_000)).status_code == 200
        assert client.post("/v1/traces", json=call_export("acme-new-1", 1_000_000, 1_000_000)).status_code == 200
    stored = costs(db)
    assert stored["gpt-4o-mini"] == [(3.0, version_of(first), shown)]  # $1 + $2 from the fetched data
    assert stored["acme-new-1"] == [(None, None, None)]  # no data knows it: unpriced, never $0
    missing = run_cli("prices", "missing", "--db", str(db), "--format", "json")
    assert [row["model"] for row in json.loads(missing.stdout)] == ["acme-new-1"]

    shown_status = run_cli("prices", "status", "--db", str(db), "--format", "json")
    assert shown_status.returncode == 0, shown_status.stderr
    facts = json.loads(shown_status.stdout)
    assert (facts["daemon"], facts["version"], facts["source"]) == ("running", version_of(first), shown)
    assert facts["age"].endswith(("s", "m"))
    # the file did not change: later fetches asked with its ETag and were not downloaded again
    wait_for(lambda: 304 in server.answers, "a conditional fetch answered 304")

    # The data learns the new model: its stored call is priced, by itself, with the new data.
    server.body = provider_file({"gpt-4o-mini": (1.0, 2.0), "acme-new-1": (4.0, 8.0)})
    second = server.body
    wait_for(lambda: collector.status()["price_data"]["calls_repriced"] >= 1, "the unpriced call repriced")
    stored = costs(db)
    assert stored["acme-new-1"] == [(12.0, version_of(second), shown)]
    assert stored["gpt-4o-mini"] == [(3.0, version_of(first), shown)]  # priced calls keep the data that priced them
    assert json.loads(run_cli("prices", "missing", "--db", str(db), "--format", "json").stdout) == []

    # The server fails: the data in force stays, and so does pricing.
    server.failing = True
    attempts = collector.status()["price_data"]["refresh_attempts"]
    wait_for(lambda: collector.status()["price_data"]["refresh_attempts"] > attempts + 1, "a failed refresh")
    status = collector.status()["price_data"]
    assert status["version"] == version_of(second) and status["last_error"] == "HTTPStatusError"
    with httpx.Client(base_url=collector.http_endpoint) as client:
        assert client.post("/v1/traces", json=call_export("acme-new-1", 500_000, 0)).status_code == 200
    assert costs(db)["acme-new-1"][-1] == (2.0, version_of(second), shown)
    assert collector.stop() == 0
    text = log.read_text()
    assert secret not in text and "server-secret" not in text  # no URL query, no server's words in the logs
    assert "price data: fetching http://127.0.0.1:" in text

    # Without the server, a restart prices with the data last fetched, kept beside the database.
    server.shutdown()
    stopped = json.loads(run_cli("prices", "status", "--db", str(db), "--format", "json", env=env).stdout)
    assert (stopped["daemon"], stopped["version"]) == ("not running", version_of(second))
    collector = Collector(db, log, config=config, env=env).start()
    wait_for(lambda: collector.status()["price_data"]["version"] == version_of(second), "the kept data")
    assert collector.stop() == 0

    # `reprice` (daemon stopped) brings the rest to the data in force.
    repriced = run_cli("reprice", "--db", str(db), "--config", str(config), "--since", "all", env=env)
    assert repriced.returncode == 0, repriced.stderr
    stored = costs(db)
    assert stored["gpt-4o-mini"] == [(3.0, version_of(second), shown)]
    assert secret not in (db.with_name(db.name + ".prices.json")).read_text()


def test_without_a_url_the_bundled_data_prices(tmp_path):
    db = tmp_path / "spendwatch.duckdb"
    collector = Collector(db, tmp_path / "log", env={"SPENDWATCH_PRICES_URL": "off"}).start()
    status = collector.status()["price_data"]
    assert status["source"] == "bundled" and status["version"].startswith("bundled-")
    assert status["refresh_url"] is None and status["refresh_attempts"] == 0
    with httpx.Client(base_url=collector.http_endpoint) as client:
        assert client.post("/v1/traces", json=call_export("gpt-4o-mini", 1_000_000, 1_000_000)).status_code == 200
    ((cost, version, source),) = costs(db)["gpt-4o-mini"]
    assert cost == pytest.approx(0.75) and source == "bundled" and version == status["version"]  # $0.15 + $0.60
    assert collector.stop() == 0
