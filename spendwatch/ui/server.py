"""The dashboard's HTTP server inside `spendwatch up`: 127.0.0.1 only, behind a token, like the read API.

`spendwatch ui` opens `http://127.0.0.1:PORT/?token=...`. The first request with the token gets a
cookie (HttpOnly, SameSite=Strict, named after the port so that two daemons' cookies do not overwrite
each other) and a redirect to the same page without the token, so the token leaves the address bar and
the history. A request with neither a valid token nor the cookie gets 401 and a one-line hint.

Each page runs its SQL on a cursor of its own, concurrently with ingest, under the read API's rules:
queries only, a time limit, inside a transaction that is rolled back.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from spendwatch.collector.readonly import QueryError, run_query
from spendwatch.collector.store import Store
from spendwatch.rules.config import RulesConfig
from spendwatch.ui.page import render
from spendwatch.ui.panels import DEFAULT_PERIOD, DEFAULT_STACK, PERIODS, STACKS, gather

logger = logging.getLogger("spendwatch.collector")

UNAUTHORISED = "This dashboard needs its token: run `spendwatch ui` to open it.\n"
SECURITY_HEADERS = {
    # No script, no external anything: the page is its own inline style and inline SVG.
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: DashboardServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("dashboard: " + format, *args)

    def do_GET(self) -> None:
        if self.headers.get("host", "").lower() not in self.server.hosts:
            # A page elsewhere whose name an attacker pointed at 127.0.0.1 (DNS rebinding) sends its own name
            # as the Host; it could not read the data without the cookie, but it gets nothing at all.
            self._send(403, "text/plain; charset=utf-8", "this dashboard answers to 127.0.0.1 and localhost only\n")
            return
        url = urlsplit(self.path)
        parameters = {name: values[-1] for name, values in parse_qs(url.query).items()}
        if url.path == "/health":
            self._send(200, "text/plain; charset=utf-8", "ok\n")
            return
        if url.path != "/":
            self._send(404, "text/plain; charset=utf-8", f"no such page {url.path}\n")
            return
        supplied = parameters.pop("token", None)
        if supplied is not None:
            if not self.server.token_matches(supplied):
                self._send(401, "text/plain; charset=utf-8", UNAUTHORISED)
                return
            clean = "/" + (f"?{urlencode(parameters)}" if parameters else "")
            cookie = f"{self.server.cookie_name}={self.server.token}; HttpOnly; SameSite=Strict; Path=/"
            self._send(303, "text/plain; charset=utf-8", "", {"location": clean, "set-cookie": cookie})
            return
        if not self.server.token_matches(self._cookie()):
            self._send(401, "text/plain; charset=utf-8", UNAUTHORISED)
            return
        period = parameters.get("period") if parameters.get("period") in PERIODS else DEFAULT_PERIOD
        stack = parameters.get("stack") if parameters.get("stack") in STACKS else DEFAULT_STACK
        try:
            page = self.server.page(period, stack)
        except QueryError as error:
            logger.error("dashboard: a query failed: %s", error)
            self._send(500, "text/plain; charset=utf-8", f"the dashboard's queries failed: {error}\n")
            return
        self._send(200, "text/html; charset=utf-8", page)

    def _cookie(self) -> str:
        try:
            jar = SimpleCookie(self.headers.get("cookie", ""))
        except CookieError:
            return ""
        morsel = jar.get(self.server.cookie_name)
        return morsel.value if morsel is not None else ""

    def _send(self, status: int, content_type: str, text: str, headers: dict[str, str] | None = None) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, store: Store, token: str, rules: Callable[[], RulesConfig]) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.store = store
        self.token = token
        self.rules = rules  # the current rules config: key names and budgets change on SIGHUP
        bound = self.server_address[1]  # `port` may be 0: any free one
        self.cookie_name = f"spendwatch_ui_{bound}"
        self.hosts = {f"127.0.0.1:{bound}", f"localhost:{bound}", f"[::1]:{bound}"}
        self._thread = threading.Thread(target=self.serve_forever, name="spendwatch-dashboard", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def token_matches(self, supplied: str) -> bool:
        return hmac.compare_digest(supplied.encode(), self.token.encode())

    def page(self, period: str, stack: str) -> str:
        cursor = self.store.con.cursor()
        try:

            def query(sql: str, params) -> list[list[Any]]:
                return run_query(cursor, sql, params=list(params))[1]

            return render(gather(query, self.rules(), datetime.now(UTC), period, stack))
        finally:
            cursor.close()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
