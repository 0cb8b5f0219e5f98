"""Attribution end to end, through `spendwatch up`: across two services by baggage, from the spans around a
call, hashed users; grouping and filtering by it in report, top, the dashboard and rules; and budgets that
stop a call (fail-open when the daemon is away, fail-closed when asked).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import spendwatch
from tests.collector import Collector, run_cli
from tests.conftest import make_key
from tests.receivers import JsonReceiver

# Service B: an HTTP service that takes the caller's context (W3C traceparent and baggage) and calls the
# provider through the instrumented openai SDK.
BACKEND = """
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
import openai
from opentelemetry import context, propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

provider = TracerProvider(resource=Resource.create({"service.name": "backend"}))
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=os.environ["ENDPOINT"] + "/v1/traces")))
trace.set_tracer_provider(provider)
import spendwatch
spendwatch.instrument()
client = openai.OpenAI(base_url=os.environ["STANDIN"] + "/v1", api_key=os.environ["KEY"], max_retries=0)

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        token = context.attach(propagate.extract({name.lower(): value for name, value in self.headers.items()}))
        try:
            answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        finally:
            context.detach(token)
        data = json.dumps({"id": answer.id}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""

# Service A: the web front that knows the user and the feature, and says so in baggage only.
FRONTEND = """
import json, os, sys
import urllib.request
from opentelemetry import baggage, context, propagate

for user, feature in (("alice", "search"), ("bob", "chat"), ("alice", "chat")):
    entries = baggage.set_baggage("enduser.id", user)
    entries = baggage.set_baggage("feature", feature, entries)
    token = context.attach(entries)
    headers = {}
    propagate.inject(headers)
    context.detach(token)
    request = urllib.request.Request(os.environ["BACKEND"], data=b"{}", headers=headers, method="POST")
    with urllib.request.urlopen(request) as answer:
        print(user, feature, json.loads(answer.read())["id"])
"""


def test_baggage_from_one_service_attributes_the_calls_another_makes(tmp_path, standin):
    collector = Collector(tmp_path / "spendwatch.duckdb", tmp_path / "log").start()
    env = {**os.environ, "STANDIN": standin.base_url, "ENDPOINT": collector.http_endpoint, "KEY": make_key()}
    backend = subprocess.Popen(
        [sys.executable, "-c", BACKEND], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        port = int(backend.stdout.readline())
        front = subprocess.run(
            [sys.executable, "-c", FRONTEND],
            env={**env, "BACKEND": f"http://127.0.0.1:{port}/"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        backend.terminate()
        backend.wait(timeout=10)
    assert front.returncode == 0, front.stderr
    expected = {line.split()[2]: tuple(line.split()[:2]) for line in front.stdout.splitlines()}
    assert collector.stop() == 0
    rows = collector.query("SELECT response_id, user, feature, service_name FROM llm_calls")
    assert {row[0]: row[1:3] for row in rows} == expected
    assert {row[3] for row in rows} == {"backend"}


APP_SPANS = """
import os
import openai
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider(resource=Resource.create({"service.name": "web"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=os.environ["ENDPOINT"] + "/v1/traces")))
trace.set_tracer_provider(provider)
import spendwatch
spendwatch.instrument()
client = openai.OpenAI(base_url=os.environ["STANDIN"] + "/v1", api_key=os.environ["KEY"], max_retries=0)
tracer = trace.get_tracer("web")
# The app's request span says who; an agent span beneath it which agent; the call itself says nothing.
with tracer.start_as_current_span("GET /export", attributes={"enduser.id": "carol", "spendwatch.feature": "export"}):
    with tracer.start_as_current_span("invoke_agent exporter", attributes={"gen_ai.agent.name": "exporter"}):
        with tracer.start_as_current_span("step"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
provider.shutdown()
"""


@pytest.mark.parametrize("hashed", [False, True], ids=["plain", "hashed-users"])
def test_the_spans_around_a_call_say_who_it_was_for(tmp_path, standin, hashed):
    config = tmp_path / "spendwatch.toml"
    config.write_text("[attribution]\nhash_users = true\n" if hashed else "")
    secret = "user-hash-key-" + os.urandom(8).hex()
    collector = Collector(
        tmp_path / "spendwatch.duckdb", tmp_path / "log", config=config, env={"SPENDWATCH_USER_HASH_KEY": secret}
    ).start()
    env = {**os.environ, "STANDIN": standin.base_url, "ENDPOINT": collector.http_endpoint, "KEY": make_key()}
    app = subprocess.run([sys.executable, "-c", APP_SPANS], env=env, capture_output=True, text=True, timeout=60)
    assert app.returncode == 0, app.stderr
    raw = collector.db.read_bytes()
    assert collector.stop() == 0
    raw += collector.db.read_bytes()
    rows = sorted(collector.query("SELECT user, feature, agent FROM llm_calls"), key=lambda row: row[0] or "")
    if hashed:
        import hashlib
        import hmac

        carol = hmac.new(secret.encode(), b"carol", hashlib.sha256).hexdigest()[:16]
        assert rows == [(None, None, None), (carol, "export", "exporter")]
        assert b"carol" not in raw  # the raw id is stored nowhere, not even in the attributes
    else:
        assert rows == [(None, None, None), ("carol", "export", "exporter")]


def calls_export(rows: list[tuple[str, str, int]]) -> dict:
    """Spans as spendwatch's own, for the rules and the report: (user, feature, input tokens) each."""
    now = time.time_ns()
    spans = []
    for index, (user, feature, tokens) in enumerate(rows):
        attributes = {
            "gen_ai.provider.name": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": tokens,
            "gen_ai.usage.output_tokens": 0,
            "enduser.id": user,
            "spendwatch.feature": feature,
        }
        spans.append(
            {
                "traceId": os.urandom(16).hex(),
                "spanId": os.urandom(8).hex(),
                "name": "chat",
                "startTimeUnixNano": str(now - (index + 2) * 10**9),
                "endTimeUnixNano": str(now - (index + 1) * 10**9),
                "attributes": [
                    {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
                    for k, v in attributes.items()
                ],
            }
        )
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]}
    scope = {"scope": {"name": "spendwatch.instrumentation"}, "spans": spans}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [scope]}]}


PER_USER = """
[daemon]
settle = "0s"

[notifiers]
ops = "json://127.0.0.1:{port}/alerts"

[[rules]]
name = "per-user"
kind = "budget"
every = "1s"
window = "day"
limit_usd = 0.10
thresholds = [1.0]
where = {{ feature = ["search", "chat"] }}
group_by = ["user"]
notify = ["ops"]
"""


def test_grouped_and_filtered_by_who_and_a_budget_per_user_fires_once_per_user(tmp_path):
    with JsonReceiver() as receiver:
        config = tmp_path / "spendwatch.toml"
        config.write_text(PER_USER.format(port=receiver.port))
        collector = Collector(tmp_path / "spendwatch.duckdb", tmp_path / "log", config=config).start()
        db = str(collector.db)
        rows = [("alice", "search", 800_000), ("bob", "chat", 900_000), ("carol", "search", 100_000)]
        rows += [("alice", "export", 900_000)]  # over the limit, but not a feature the rule looks at
        assert httpx.post(f"{collector.http_endpoint}/v1/traces", json=calls_export(rows)).status_code == 200
        alerts = receiver.wait_for(2, timeout=15)
        collector.more("rule_evaluations", 3)
        report = json.loads(run_cli("report", "--db", db, "--by", "user,feature", "--format", "json").stdout)
        top = run_cli("top", "--db", db, "--by", "user", "--once")
        with httpx.Client(base_url=collector.info["ui_url"], follow_redirects=True) as browser:
            page = browser.get("/", params={"token": collector.info["ui_token"], "stack": "user"})
        assert collector.stop() == 0
    assert len(receiver.received) == 2  # alice ($0.12 on search) and bob ($0.135), once each; carol is under
    assert sorted(alert["title"] for alert in alerts) == ["per-user: 120% of $0.1000", "per-user: 135% of $0.1000"]
    assert any("user alice" in alert["message"] for alert in alerts) and any("user bob" in a["message"] for a in alerts)
    spent = {(row["user"], row["feature"]): row["calls"] for row in report["rows"]}
    assert spent == {("alice", "search"): 1, ("bob", "chat"): 1, ("carol", "search"): 1, ("alice", "export"): 1}
    assert top.returncode == 0 and "alice" in top.stdout and "carol" in top.stdout
    assert page.status_code == 200 and "alice" in page.text and "bob" in page.text


ENFORCED = """
[daemon]
settle = "0s"

[notifiers]
ops = "json://127.0.0.1:9/alerts"

[[rules]]
name = "per-user-cap"
kind = "budget"
every = "1s"
window = "day"
limit_usd = 0.10
group_by = "user"
enforce = true
notify = ["ops"]
"""


@pytest.fixture
def exporting(monkeypatch):
    """spendwatch instrumented with a tracer provider of its own that exports to the daemon under test."""
    providers = []

    def instrument(collector: Collector, **env: str) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        provider = TracerProvider(resource=Resource.create({"service.name": "api"}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.http_endpoint + "/v1/traces"))
        )
        providers.append(provider)
        spendwatch.instrument(tracer_provider=provider)

    yield instrument
    spendwatch.uninstrument()
    for provider in providers:
        provider.shutdown()


def test_an_enforced_budget_stops_a_users_next_call_and_lets_others_through(tmp_path, standin, exporting):
    config = tmp_path / "spendwatch.toml"
    config.write_text(ENFORCED)
    collector = Collector(tmp_path / "spendwatch.duckdb", tmp_path / "log", config=config).start()
    exporting(
        collector,
        SPENDWATCH_BUDGETS_URL=collector.http_endpoint + "/v1/spendwatch/budgets",
        SPENDWATCH_BUDGET_MAX_AGE="3",
    )
    client = openai.OpenAI(base_url=f"{standin.base_url}/v1", api_key=make_key(), max_retries=0)

    def call(user: str) -> None:
        with spendwatch.attribute(user=user):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-standin-usage": "input=1000000,output=0"},  # $0.15 a call: over $0.10 at once
            )  # fmt: skip

    call("alice")
    billed = len(standin.billed)
    deadline = time.monotonic() + 20
    refused = None
    while refused is None:  # until the rules have seen alice's spend and the app's guard has read them
        assert time.monotonic() < deadline, "alice was never refused"
        try:
            call("alice")
        except spendwatch.BudgetExceeded as error:  # the openai SDK lets it through, unretried
            refused = spendwatch.budget_exceeded(error)
            assert refused is error
        else:
            time.sleep(0.2)
    sent_before_refusal = len(standin.billed)
    assert refused.rule == "per-user-cap" and refused.group == {"user": "alice"}
    assert "not sent" in str(refused)
    import anthropic

    claude = anthropic.Anthropic(base_url=standin.base_url, api_key=make_key("sk-ant-"), max_retries=0)
    with spendwatch.attribute(user="alice"), pytest.raises(anthropic.APIConnectionError) as wrapped:
        claude.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert spendwatch.budget_exceeded(wrapped.value).group == {"user": "alice"}  # the anthropic SDK wraps it
    call("bob")  # another user's calls go through
    assert len(standin.billed) == sent_before_refusal + 1  # alice's refused call never reached the provider
    assert sent_before_refusal >= billed
    # the daemon goes away: after the bounded staleness, calls go through again (fail-open)
    assert collector.stop() == 0
    deadline = time.monotonic() + 20
    while True:
        try:
            call("alice")
            break
        except spendwatch.BudgetExceeded:
            assert time.monotonic() < deadline, "still refused with the daemon gone"
            time.sleep(0.2)


class Hanging:
    """A server that accepts connections and never answers: a daemon that hangs."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen()
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.socket.getsockname()[1]}/v1/spendwatch/budgets"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        for connection in self.accepted:
            connection.close()
        self.socket.close()


def test_a_hanging_daemon_costs_the_request_path_nothing_and_fail_closed_refuses(tmp_path, standin, exporting):
    hanging = Hanging()
    collector = Collector(tmp_path / "spendwatch.duckdb", tmp_path / "log").start()
    try:
        exporting(collector, SPENDWATCH_BUDGETS_URL=hanging.url)
        client = openai.OpenAI(base_url=f"{standin.base_url}/v1", api_key=make_key(), max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        deadline = time.monotonic() + 10
        while not hanging.accepted:  # the guard's background read is now stuck on the hanging daemon ...
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for _ in range(3):  # ... and calls go through meanwhile: the request path never waits on it
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        spendwatch.uninstrument()
        exporting(collector, SPENDWATCH_BUDGETS_URL=hanging.url, SPENDWATCH_ENFORCE="fail-closed")
        with pytest.raises(spendwatch.BudgetExceeded, match="fail-closed"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    finally:
        hanging.close()
        assert collector.stop() == 0


def test_enforce_is_checked_in_the_config(tmp_path):
    config = tmp_path / "spendwatch.toml"
    config.write_text(ENFORCED.replace('group_by = "user"', 'group_by = "day"'))
    result = run_cli("rules", "check", "--config", str(config))
    assert result.returncode == 2 and "group_by" in result.stderr
    config.write_text(ENFORCED.replace('group_by = "user"', 'group_by = "tag.team"'))
    result = run_cli("rules", "check", "--config", str(config))
    assert result.returncode == 2 and "calls can be refused by" in result.stderr
    assert Path(config).exists()
