"""The daemon's read API: queries and status for the CLI, on loopback only, behind a token.

DuckDB lets no second process open a file that another writes, so while the daemon runs, every read
goes through it. The API listens on 127.0.0.1 on a port of its own (never beside OTLP, which may face a
network), and each request must carry the token the daemon wrote into its private daemon file beside
the database. Queries run on a cursor of their own, concurrently with ingest, in a snapshot.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from spendwatch.collector.readonly import QueryError, decode_params, run_query
from spendwatch.collector.store import Store

logger = logging.getLogger("spendwatch.collector")

MAX_QUERY_BYTES = 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: ReadApi

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("read api: " + format, *args)

    def _authorised(self) -> bool:
        supplied = self.headers.get("authorization", "")
        if hmac.compare_digest(supplied.encode(), f"Bearer {self.server.token}".encode()):
            return True
        self._json(401, {"error": "missing or wrong token"})
        return False

    def do_GET(self) -> None:
        if self.path == "/health":
            self._json(200, {"ok": True})
        elif self.path == "/status":
            if self._authorised():
                self._json(200, self.server.status())
        else:
            self._json(404, {"error": f"no such endpoint {self.path}"})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length <= MAX_QUERY_BYTES else b""
        if self.path != "/query":
            self._json(404, {"error": f"no such endpoint {self.path}"})
            return
        if not self._authorised():
            return
        if length > MAX_QUERY_BYTES:
            self._json(413, {"error": "query too long"})
            return
        try:
            request = json.loads(body)
            sql, params = request["sql"], decode_params(request.get("params") or [])
            if not isinstance(sql, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self._json(400, {"error": 'expected {"sql": "...", "params": [...]}'})
            return
        cursor = self.server.store.con.cursor()
        try:
            columns, rows = run_query(cursor, sql, params=params)
        except QueryError as error:
            self._json(400, {"error": str(error)})
            return
        finally:
            cursor.close()
        self._json(200, {"columns": columns, "rows": rows})

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ReadApi(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, store: Store, token: str, status: Callable[[], dict[str, Any]]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.store = store
        self.token = token
        self.status = status
        self._thread = threading.Thread(target=self.serve_forever, name="spendwatch-read-api", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
