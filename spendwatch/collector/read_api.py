"""The daemon's read API: queries and status for the CLI, on loopback only, behind a token.

DuckDB lets no second process open a file that another writes, so while the daemon runs, every read
goes through it. The API listens on 127.0.0.1 on a port of its own (never beside OTLP, which may face a
network), and each request must carry the token the daemon wrote into its private daemon file beside
the database; the token is checked before the body is read. Queries run on the read connections
(`ReadConnections`: never the writer's, settings locked, memory and time limited, results capped) in a
worker thread, so a long query holds neither the loop nor ingest.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from spendwatch.collector.readonly import QueryError, ReadConnections, decode_params
from spendwatch.collector.web import BodyError, log_requests, read_body
from spendwatch.errors import UserError

logger = logging.getLogger("spendwatch.collector")

MAX_QUERY_BYTES = 1024 * 1024


# `Accept` header -> (body, content type): the Prometheus exposition (exports/prometheus.py)
Exposition = Callable[[str], tuple[bytes, str]]


def _refused(request: Request, *accepted: bytes) -> Response | None:
    supplied = request.headers.get("authorization", "").encode()
    if any(hmac.compare_digest(supplied, expected) for expected in accepted):
        return None
    return JSONResponse({"error": "missing or wrong token"}, status_code=401, headers={"connection": "close"})


class MetricsEndpoint:
    """`GET /metrics` behind the read token (or a token of its own for a scraper's config), computed on a
    read thread: a scrape never holds the loop."""

    def __init__(self, exposition: Exposition, executor: Any, *tokens: str | None) -> None:
        self.exposition = exposition
        self.executor = executor
        self.accepted = tuple(f"Bearer {token}".encode() for token in tokens if token)

    async def serve(self, request: Request) -> Response:
        refused = _refused(request, *self.accepted)
        if refused is not None:
            return refused
        accept = request.headers.get("accept", "")
        body, content_type = await asyncio.get_running_loop().run_in_executor(self.executor, self.exposition, accept)
        return Response(body, headers={"content-type": content_type})

    def app(self) -> Any:
        return log_requests("metrics", Starlette(routes=[Route("/metrics", self.serve)]))


class ReadApi:
    def __init__(
        self,
        reads: ReadConnections,
        token: str,
        status: Callable[[], dict[str, Any]],
        metrics: MetricsEndpoint | None = None,
        jobs: dict[str, Callable[[dict[str, Any]], Any]] | None = None,
    ) -> None:
        self.reads = reads
        self.expected_authorization = f"Bearer {token}".encode()
        self.status = status
        # What the CLI may ask the daemon to do now rather than on its schedule (`billing import` while it
        # runs): a name and a function of the request's JSON, given by the daemon that composes the rooms.
        self.jobs = jobs or {}
        routes = [
            Route("/health", self.health),
            Route("/status", self.status_endpoint),
            Route("/query", self.query, methods=["POST"]),
            Route("/jobs/{name}", self.job, methods=["POST"]),
        ]
        if metrics is not None:
            routes.append(Route("/metrics", metrics.serve))
        self.app = log_requests("read api", Starlette(routes=routes))
        self.url = ""  # set once the daemon has bound its port

    def _refused(self, request: Request) -> Response | None:
        return _refused(request, self.expected_authorization)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def status_endpoint(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        return JSONResponse(await asyncio.get_running_loop().run_in_executor(None, self.status))

    async def job(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        job = self.jobs.get(request.path_params["name"])
        if job is None:
            return JSONResponse({"error": f"this daemon has no job {request.path_params['name']!r}"}, status_code=404)
        try:
            document = json.loads(await read_body(request, MAX_QUERY_BYTES) or b"{}")
            if not isinstance(document, dict):
                raise TypeError
        except (BodyError, ValueError, TypeError, RecursionError):
            return JSONResponse({"error": "expected a JSON object"}, status_code=400)
        try:
            answer = await asyncio.get_running_loop().run_in_executor(None, job, document)
        except UserError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(answer)

    async def query(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        try:
            body = await read_body(request, MAX_QUERY_BYTES)
        except BodyError as error:
            text = "query too long" if error.status == 413 else str(error)
            return JSONResponse({"error": text}, status_code=error.status, headers={"connection": "close"})
        try:
            document = json.loads(body)
            sql, params = document["sql"], decode_params(document.get("params") or [])
            if not isinstance(sql, str):
                raise TypeError
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return JSONResponse({"error": 'expected {"sql": "...", "params": [...]}'}, status_code=400)
        try:
            answer = await asyncio.get_running_loop().run_in_executor(
                self.reads.executor, self.reads.query_json, sql, params
            )
        except QueryError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return Response(answer, media_type="application/json")
