"""The dashboard inside `spendwatch up`: 127.0.0.1 only, behind a token, like the read API.

`spendwatch ui` opens `http://127.0.0.1:PORT/?token=...`. The first request with the token gets a
cookie (HttpOnly, SameSite=Strict, named after the port so that two daemons' cookies do not overwrite
each other) and a redirect to the same page without the token, so the token leaves the address bar and
the history. A request with neither a valid token nor the cookie gets 401 and a one-line hint; one
addressed to another name than 127.0.0.1 or localhost gets 403.

A Starlette app on the daemon's HTTP loop; each page runs its SQL on the read connections (never the
writer's) under the read API's rules — queries only, a time limit, a read-only transaction — in a
worker thread.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from spendwatch.collector.readonly import QueryError, ReadConnections
from spendwatch.collector.web import log_requests
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


class DashboardServer:
    def __init__(self, reads: ReadConnections, token: str, rules: Callable[[], RulesConfig]) -> None:
        self.reads = reads
        self.token = token
        self.rules = rules  # the current rules config: key names and budgets change on SIGHUP
        self.port = 0
        self.app = log_requests("dashboard", Starlette(routes=[Route("/health", self.health), Route("/", self.index)]))
        self.app = _guarded(self, self.app)

    def bound(self, port: int) -> None:
        """The port it was given (`--ui-port 0` takes any free one): the cookie and the Host names follow it."""
        self.port = port

    @property
    def cookie_name(self) -> str:
        return f"spendwatch_ui_{self.port}"

    @property
    def hosts(self) -> set[str]:
        return {f"127.0.0.1:{self.port}", f"localhost:{self.port}", f"[::1]:{self.port}"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def token_matches(self, supplied: str) -> bool:
        return hmac.compare_digest(supplied.encode(), self.token.encode())

    async def health(self, request: Request) -> Response:
        return _text(200, "ok\n")

    async def index(self, request: Request) -> Response:
        parameters = dict(request.query_params)
        supplied = parameters.pop("token", None)
        if supplied is not None:
            if not self.token_matches(supplied):
                return _text(401, UNAUTHORISED)
            clean = "/" + (f"?{urlencode(parameters)}" if parameters else "")
            cookie = f"{self.cookie_name}={self.token}; HttpOnly; SameSite=Strict; Path=/"
            return _text(303, "", {"location": clean, "set-cookie": cookie})
        if not self.token_matches(request.cookies.get(self.cookie_name, "")):
            return _text(401, UNAUTHORISED)
        period = parameters.get("period") if parameters.get("period") in PERIODS else DEFAULT_PERIOD
        stack = parameters.get("stack") if parameters.get("stack") in STACKS else DEFAULT_STACK
        try:
            page = await asyncio.get_running_loop().run_in_executor(self.reads.executor, self.page, period, stack)
        except QueryError as error:
            logger.error("dashboard: a query failed: %s", error)
            return _text(500, f"the dashboard's queries failed: {error}\n")
        return HTMLResponse(page, headers=SECURITY_HEADERS)

    def page(self, period: str, stack: str) -> str:
        def query(sql: str, params) -> list[list[Any]]:
            return self.reads.run_query(sql, list(params))[1]

        return render(gather(query, self.rules(), datetime.now(UTC), period, stack))


def _guarded(dashboard: DashboardServer, app: Callable) -> Callable:
    """Only requests addressed to the loopback names: a page elsewhere whose name an attacker pointed at
    127.0.0.1 (DNS rebinding) sends its own name as the Host; it could not read the data without the
    cookie, but it gets nothing at all."""

    async def guarded(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
            if host not in dashboard.hosts:
                await _text(403, "this dashboard answers to 127.0.0.1 and localhost only\n")(scope, receive, send)
                return
        await app(scope, receive, send)

    return guarded


def _text(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    return PlainTextResponse(text, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})
