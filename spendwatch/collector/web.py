"""Every HTTP endpoint of the daemon — OTLP/HTTP, the read API, the dashboard — on one asyncio loop.

The endpoints are small Starlette apps served by uvicorn with its httptools protocol (llhttp, the parser
Node.js itself uses): chunked bodies, keep-alive, pipelining, and a 400 for a request it cannot parse
all come from there. They run on one asyncio loop in one thread of the daemon, so a slow or idle client
costs a coroutine and a few kilobytes, never a thread; the work that takes CPU (decoding an export,
running a query) goes to worker threads, and the writer keeps its own.

What uvicorn leaves to its user, and this module adds, in a small subclass of its protocol:
- a deadline for a request's headers (uvicorn times out idle keep-alive connections only, so a client
  that sends its headers a byte at a time would hold its connection for ever): 408, then close;
- an answer for a client that half-closes its side mid-request (uvicorn closes the connection without
  one): the app sees the body end early and answers 400; a request cut short inside its headers gets 400;
- a cap on open connections, answered 503 with `Retry-After`, as OTLP asks of an overloaded server;
- a cap on the size of a request's headers (llhttp sets none), answered 400.
Body limits, body deadlines and everything OTLP-specific are the apps' own (`read_body`).

Listening sockets are bound here, before the loop starts, with a backlog of `BACKLOG`: a port in use
fails `spendwatch up` at once with one line, and port 0 is resolved before the daemon file is written.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from starlette.requests import Request
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

logger = logging.getLogger("spendwatch.collector")

BACKLOG = 2048  # a burst of exporters connecting at once waits in the kernel instead of being reset
MAX_CONNECTIONS = int(os.environ.get("SPENDWATCH_MAX_CONNECTIONS") or 1024)
# How long a client may take to send its request's headers, and to send each part of its body.
READ_TIMEOUT_SECONDS = float(os.environ.get("SPENDWATCH_HTTP_READ_TIMEOUT") or 10)
BODY_TIMEOUT_SECONDS = 60.0  # the whole body, however it trickles
MAX_HEADER_BYTES = 64 * 1024  # a request line and headers beyond this are refused: llhttp itself sets no bound
KEEP_ALIVE_SECONDS = 60  # above the OpenTelemetry SDKs' export interval (5 s), so a kept connection is reused
RETRY_AFTER_SECONDS = 1
CONNECTION_STATE = "spendwatch.connection"  # the scope key under which the protocol tells the app about its connection


class ConnectionState:
    """What the protocol knows about a request that the ASGI messages cannot say."""

    __slots__ = ("cut_short", "over_limit")

    def __init__(self, over_limit: bool) -> None:
        self.over_limit = over_limit
        self.cut_short = False


class _Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline, half-close answers and a connection cap."""

    _header_deadline: asyncio.TimerHandle | None = None
    _in_headers = False
    _header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = 0
        self._arm_header_deadline()

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        super().on_header(name, value)

    def _count_header_bytes(self, count: int) -> None:
        self._header_bytes += count
        if self._header_bytes > MAX_HEADER_BYTES:
            # Raised inside the parser's callback: uvicorn answers it as an invalid request, 400, and closes.
            raise ValueError(f"request headers over {MAX_HEADER_BYTES} bytes")

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        self._in_headers = False
        self.scope[CONNECTION_STATE] = ConnectionState(len(self.connections) > MAX_CONNECTIONS)  # type: ignore[literal-required]
        super().on_headers_complete()

    def eof_received(self) -> bool | None:
        cycle = self.cycle
        if self._in_headers:
            self.send_400_response("The request ended inside its headers.")
            return None
        if cycle is not None and not cycle.response_complete:
            # The client shut its side and still waits for the answer: keep the socket open to give it.
            cycle.keep_alive = False
            if cycle.more_body:
                state = cycle.scope.get(CONNECTION_STATE)
                if state is not None:
                    state.cut_short = True
                cycle.more_body = False
                cycle.message_event.set()
            return True
        return None

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self._header_deadline = self.loop.call_later(READ_TIMEOUT_SECONDS, self._headers_too_slow)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self._in_headers:
            message = b"The request's headers took too long.\n"
            self.transport.write(
                STATUS_LINE[408]
                + b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
                + b"content-length: %d\r\n\r\n" % len(message)
                + message
            )
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()


class BodyError(Exception):
    """A request body that cannot be read: answered with this status and message, then the connection closes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def busy(request: Request) -> bool:
    """Whether this request came over a connection beyond `MAX_CONNECTIONS`: answer 503 and close."""
    state = request.scope.get(CONNECTION_STATE)
    return state is not None and state.over_limit


async def read_body(request: Request, limit: int, encoding: str | None = None) -> bytes:
    """The whole body, inflated if `encoding` is gzip or deflate, never more than `limit` bytes either way.

    Raises `BodyError`: 413 over the limit (before reading when Content-Length says so), 400 for a body
    cut short or not valid gzip/deflate, 408 for a client too slow to send it.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        await _drain(request, DRAIN_FACTOR * limit)
        raise BodyError(413, f"a body of {declared} bytes exceeds the limit of {limit}")
    inflater = None
    if encoding in ("gzip", "deflate"):
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)
    parts: list[bytes] = []
    size = 0
    received = 0
    deadline = time.monotonic() + BODY_TIMEOUT_SECONDS
    more = True
    while more:
        try:
            async with asyncio.timeout(min(READ_TIMEOUT_SECONDS, max(0.0, deadline - time.monotonic()))):
                message = await request.receive()
        except TimeoutError:
            raise BodyError(408, "the request's body took too long") from None
        if message["type"] != "http.request":
            raise BodyError(400, "the client went away before the body ended")
        chunk, more = message.get("body", b""), message.get("more_body", False)
        received += len(chunk)
        if inflater is not None:
            try:
                chunk = inflater.decompress(chunk, limit - size + 1)
            except zlib.error as error:
                raise BodyError(400, f"the body is not valid {encoding}: {error}") from None
            if inflater.unconsumed_tail:
                if more:
                    await _drain(request, DRAIN_FACTOR * limit)
                raise BodyError(413, f"the {encoding} body inflates beyond the limit of {limit} bytes")
        elif received > limit:
            if more:
                await _drain(request, DRAIN_FACTOR * limit)
            raise BodyError(413, f"the body exceeds the limit of {limit} bytes")
        size += len(chunk)
        if size > limit:
            if more:
                await _drain(request, DRAIN_FACTOR * limit)
            raise BodyError(413, f"the body inflates beyond the limit of {limit} bytes")
        parts.append(chunk)
    state = request.scope.get(CONNECTION_STATE)
    short = declared is not None and declared.isdigit() and received < int(declared)
    if short or (state is not None and state.cut_short):
        raise BodyError(400, f"the body ended after {received} bytes, before the end its request announced")
    if inflater is not None and not inflater.eof:
        raise BodyError(400, f"the {encoding} body is truncated")
    return b"".join(parts)


# A body over the limit is read (and thrown away) up to this many times the limit before the 413: closing
# a socket with unread data makes the kernel reset the connection, and the client, still sending, then
# loses the answer with it. Past the budget (or the body deadline) the connection is closed anyway.
DRAIN_FACTOR = 4


async def _drain(request: Request, budget: int) -> None:
    deadline = time.monotonic() + BODY_TIMEOUT_SECONDS
    drained = 0
    while drained <= budget:
        try:
            async with asyncio.timeout(min(READ_TIMEOUT_SECONDS, max(0.0, deadline - time.monotonic()))):
                message = await request.receive()
        except TimeoutError:
            return
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class HttpServers:
    """Several Starlette apps, each on its own socket, served by uvicorn on one asyncio loop in one thread."""

    def __init__(self) -> None:
        self._servers: list[tuple[uvicorn.Server, socket.socket]] = []
        self._thread = threading.Thread(target=self._run, name="spendwatch-http", daemon=True)
        self._started = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    def add(self, app: Callable[..., Awaitable[Any]], host: str, port: int) -> int:
        """Bind `host:port` now (OSError if it cannot be) and serve `app` there once started; the bound port."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # not SO_REUSEPORT: a second daemon fails
            sock.bind((host.strip("[]"), port))
            sock.listen(BACKLOG)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        config = uvicorn.Config(
            app,
            http=_Protocol,
            lifespan="off",
            log_config=None,
            access_log=False,  # the access log would carry query strings (the dashboard's token link)
            backlog=BACKLOG,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=10,
            server_header=False,
            date_header=False,
            ws="none",
        )
        self._servers.append((uvicorn.Server(config), sock))
        return sock.getsockname()[1]

    def start(self) -> None:
        self._thread.start()
        self._started.wait(10)

    def stop(self) -> None:
        """Stop accepting, finish the requests in flight (up to the graceful timeout), and return."""
        for server, _ in self._servers:
            server.should_exit = True
        self._thread.join(timeout=30)

    def _run(self) -> None:
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # its start-up lines repeat the daemon's own

        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            self.loop.set_default_executor(_executor())
            self._started.set()
            await asyncio.gather(*(server.serve(sockets=[sock]) for server, sock in self._servers))

        asyncio.run(serve())


def _executor():
    from concurrent.futures import ThreadPoolExecutor

    # Decoding exports and running reads: a few threads, so that the loop itself only moves bytes.
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="spendwatch-http-work")


def log_requests(name: str, app: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """ASGI middleware: each request's method, path (never its query string: it may carry a token) and status,
    at debug level."""

    async def logged(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        status: list[int] = []

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await app(scope, receive, sending)
        finally:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("%s: %s %s %s", name, scope["method"], scope["path"][:200], status[0] if status else "-")

    return logged
