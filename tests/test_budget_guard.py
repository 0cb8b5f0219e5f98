"""The app's budget and rate-card thread: started when spendwatch instruments, so that no call pays for it,
and started again in a forked child, where the parent's thread did not come along."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from spendwatch.instrumentation import SpendwatchInstrumentor
from spendwatch.instrumentation.budgets import BUDGETS_PATH, BudgetGuard


@pytest.fixture
def daemon_state():
    """A stand-in for the daemon's budget state: counts the times it was asked."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = json.dumps({"blocks": [], "refresh_seconds": 3600}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}{BUDGETS_PATH}", asked
    server.shutdown()
    server.server_close()


def test_instrumenting_starts_the_thread_before_any_call(daemon_state, monkeypatch):
    url, asked = daemon_state
    monkeypatch.setenv("SPENDWATCH_BUDGETS_URL", url)
    monkeypatch.setenv("SPENDWATCH_APP_COST", "off")
    instrumentor = SpendwatchInstrumentor()
    instrumentor.instrument()
    try:
        guard = instrumentor._guard
        assert guard.first_round.wait(10), "the thread did not ask the daemon"
        assert asked == [BUDGETS_PATH]  # asked with no LLM call made
    finally:
        instrumentor.uninstrument()


def test_a_forked_child_asks_with_its_own_thread(daemon_state):
    url, asked = daemon_state
    guard = BudgetGuard(url, enforce=True)
    guard.start()
    assert guard.first_round.wait(10)
    assert len(asked) == 1
    pid = os.fork()
    if pid == 0:  # the child: its first call starts its thread, which asks the daemon
        status = 1
        try:
            guard.check(lambda name: None)
            status = 0 if guard.first_round.wait(10) else 3
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(asked) == 2
    guard.stop(wait=5)
