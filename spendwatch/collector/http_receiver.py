"""OTLP/HTTP: `/v1/traces`, `/v1/metrics`, `/v1/logs` (protobuf or JSON, plain, gzip or deflate), `/health`, `/ready`.

Answers as the OTLP specification asks: 200 with the export's response (and `partial_success` when some
spans were refused, the rest stored); 400 for what cannot be parsed, 413 over the size limit, 415 for a
content type or encoding that is not OTLP's — each with a `google.rpc.Status` body in the request's own
encoding; 429 or 503 with `Retry-After` only when the daemon cannot take the export now (the writer is
behind, too many exports in flight, too many connections, a write that failed), which exporters retry.

The order of the work keeps what a client can make the daemon hold small: the token is checked before
the body is read, the body is read (with a size limit, kept while inflating, and deadlines) before an
export slot is taken, and the CPU work (decoding, building rows) runs on a worker thread while the loop
goes on serving other connections.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from spendwatch.collector import otlp, rate_cards
from spendwatch.collector.ingest import COMMIT_TIMEOUT_SECONDS, Ingest
from spendwatch.collector.web import RETRY_AFTER_SECONDS, BodyError, busy, log_requests, read_body
from spendwatch.collector.writer import Overloaded

logger = logging.getLogger("spendwatch.collector")

# Each export in flight holds its body (up to the size limit) while it waits for the writer.
MAX_EXPORTS_IN_FLIGHT = int(os.environ.get("SPENDWATCH_MAX_EXPORTS_IN_FLIGHT") or 64)
ENCODINGS = ("identity", "gzip", "deflate")


# Where apps read the state of enforced budgets: on the OTLP/HTTP port they already reach.
BUDGETS_PATH = "/v1/spendwatch/budgets"
MAX_PRICES_BODY_BYTES = 256 * 1024


class HttpReceiver:
    """The OTLP/HTTP app; `ready` says whether ingest can accept (set by the daemon once it has started)."""

    def __init__(
        self, ingest: Ingest, max_body_bytes: int = otlp.DEFAULT_MAX_BODY_BYTES, ingest_token: str | None = None
    ) -> None:
        self.ingest = ingest
        self.max_body_bytes = max_body_bytes
        self.expected_authorization = f"Bearer {ingest_token}".encode() if ingest_token else None
        self.ready: Callable[[], bool] = lambda: True
        self.budget_state: Callable[[], dict] = lambda: {"blocks": []}  # the daemon's rules, once they run
        self.in_flight = 0
        routes = [Route("/health", self.health), Route("/ready", self.readiness)]
        routes.append(Route(BUDGETS_PATH, self.budgets))
        routes.append(Route(rate_cards.PRICES_PATH, self.prices, methods=["POST"]))
        routes += [Route(path, self.export, methods=["POST"]) for path in otlp.SIGNALS]
        self.app = log_requests("otlp/http", Starlette(routes=routes))

    async def health(self, request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readiness(self, request: Request) -> Response:
        if self.ready():
            return PlainTextResponse("ready\n")
        return PlainTextResponse("not ready: starting, or the writer cannot take exports now\n", status_code=503)

    async def budgets(self, request: Request) -> Response:
        """Which calls the instrumentation is to refuse: enforced budgets spent (behind the ingest token)."""
        if self.expected_authorization is not None and not hmac.compare_digest(
            request.headers.get("authorization", "").encode(), self.expected_authorization
        ):
            return JSONResponse({"error": "missing or wrong ingest token"}, status_code=401)
        return JSONResponse(self.budget_state(), headers={"cache-control": "no-store"})

    async def prices(self, request: Request) -> Response:
        """The rate cards the instrumentation prices its calls with (rate_cards.py; behind the ingest token)."""
        if self.expected_authorization is not None and not hmac.compare_digest(
            request.headers.get("authorization", "").encode(), self.expected_authorization
        ):
            return JSONResponse({"error": "missing or wrong ingest token"}, status_code=401)
        try:
            body = await read_body(request, MAX_PRICES_BODY_BYTES, "identity")
            cards = rate_cards.answer(self.ingest.pricer, json.loads(body))
        except (BodyError, ValueError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(cards, headers={"cache-control": "no-store"})

    async def export(self, request: Request) -> Response:
        media = otlp.otlp_media_type(request.headers.get("content-type"))
        if busy(request):
            return _failure(503, otlp.UNAVAILABLE, "too many connections; retry", media, retry=True, close=True)
        if self.expected_authorization is not None and not hmac.compare_digest(
            request.headers.get("authorization", "").encode(), self.expected_authorization
        ):
            response = _failure(401, otlp.UNAUTHENTICATED, "missing or wrong ingest token", media, close=True)
            response.headers["www-authenticate"] = "Bearer"
            return response
        if media is None:
            shown = (request.headers.get("content-type") or "")[:80]
            text = f"unsupported content-type {shown!r}: use application/x-protobuf or application/json"
            return _failure(415, otlp.INVALID_ARGUMENT, text, None, close=True)
        encoding = (request.headers.get("content-encoding") or "identity").strip().lower()
        if encoding not in ENCODINGS:
            text = f"unsupported content-encoding {encoding[:40]!r}: use gzip, deflate or none"
            return _failure(415, otlp.INVALID_ARGUMENT, text, media, close=True)
        try:
            body = await read_body(request, self.max_body_bytes, encoding)
        except BodyError as error:
            return _failure(error.status, otlp.INVALID_ARGUMENT, str(error), media, close=True)
        if self.in_flight >= MAX_EXPORTS_IN_FLIGHT:  # memory stays bounded: each waiting export holds its body
            return _failure(503, otlp.UNAVAILABLE, "too many exports in flight; retry", media, retry=True)
        self.in_flight += 1
        try:
            return await self._export(request.url.path, body, media)
        finally:
            self.in_flight -= 1

    async def _export(self, path: str, body: bytes, media: str) -> Response:
        request_type, response_type = otlp.SIGNALS[path]
        loop = asyncio.get_running_loop()
        try:
            message, _ = await loop.run_in_executor(None, otlp.decode, request_type, body, media)
        except otlp.BadRequest as error:
            return _failure(error.status, otlp.INVALID_ARGUMENT, str(error), media)
        response = response_type()
        if path != "/v1/traces":
            self.ingest.export_other(message)
            return _message(response, media)
        try:
            future, refusals = await loop.run_in_executor(None, self.ingest.submit_traces, message)
            written = None
            if future is not None:
                # shielded: a timeout here must not cancel the writer's future, which it will still settle
                written = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), COMMIT_TIMEOUT_SECONDS)
        except Overloaded:
            return _failure(503, otlp.UNAVAILABLE, "the writer is behind; retry", media, retry=True)
        except Exception as error:  # a failed write (logged by the writer), or one that takes too long: retryable
            text = f"could not store the export ({type(error).__name__}); retry"
            return _failure(503, otlp.UNAVAILABLE, text, media, retry=True)
        if self.ingest.forwarders:
            await loop.run_in_executor(None, self.ingest.stored, message)
        outcome = self.ingest.outcome(refusals, written)
        if outcome.rejected:  # some spans refused, the rest stored: OTLP's partial success
            response.partial_success.rejected_spans = outcome.rejected
            response.partial_success.error_message = outcome.message
        return _message(response, media)


def _message(message, media: str) -> Response:
    payload, content_type = otlp.encode(message, media == otlp.JSON)
    return Response(payload, media_type=content_type)


def _failure(
    status: int, code: int, text: str, media: str | None, *, retry: bool = False, close: bool = False
) -> Response:
    payload, content_type = otlp.encode_status(code, text, media)
    response = Response(payload, status_code=status, media_type=content_type)
    if retry:
        response.headers["retry-after"] = str(RETRY_AFTER_SECONDS)
    if close:  # the body may be unread or half-read: start the next request on a fresh connection
        response.headers["connection"] = "close"
    return response
