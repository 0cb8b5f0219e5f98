"""OTLP/HTTP: `/v1/traces`, `/v1/metrics`, `/v1/logs` (protobuf or JSON, plain or gzip) and `/health`."""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from spendwatch.collector import otlp
from spendwatch.collector.ingest import Ingest
from spendwatch.collector.writer import Overloaded

logger = logging.getLogger("spendwatch.collector")

RETRY_AFTER_SECONDS = 1
# Each export in flight holds its body (up to the size limit) while it waits for the writer.
MAX_EXPORTS_IN_FLIGHT = int(os.environ.get("SPENDWATCH_MAX_EXPORTS_IN_FLIGHT") or 64)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: HttpReceiver

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http: " + format, *args)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, b"ok\n", "text/plain")
        elif self.path == "/ready":
            ready = self.server.ready()
            answer = b"ready\n" if ready else b"not ready: starting, or writes are failing\n"
            self._send(200 if ready else 503, answer, "text/plain")
        else:
            self._send(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        signal = otlp.SIGNALS.get(path)
        if signal is None:
            self._drain()
            self._send(404, f"no OTLP endpoint at {path}\n".encode(), "text/plain")
            return
        request_type, response_type = signal
        if not self._authorised():
            self._drain()
            self._send(401, b"missing or wrong ingest token\n", "text/plain", {"www-authenticate": "Bearer"})
            return
        if not self.server.slots.acquire(blocking=False):  # too many exports in flight: memory stays bounded
            self.close_connection = True  # the body is left unread
            self._send(
                503, b"too many exports in flight; retry\n", "text/plain", {"retry-after": str(RETRY_AFTER_SECONDS)}
            )
            return
        try:
            self._export(path, request_type, response_type)
        finally:
            self.server.slots.release()

    def _export(self, path: str, request_type: type, response_type: type) -> None:
        try:
            body = self._body()
            message, as_json = otlp.decode(
                request_type,
                otlp.inflate(body, self.headers.get("content-encoding"), self.server.max_body_bytes),
                self.headers.get("content-type"),
            )
        except otlp.BadRequest as error:
            self._send(error.status, f"{error}\n".encode(), "text/plain")
            return
        try:
            if path == "/v1/traces":
                self.server.ingest.export_traces(message)
            else:
                self.server.ingest.export_other(message)
        except Overloaded:
            self._send(503, b"the writer is behind; retry\n", "text/plain", {"retry-after": str(RETRY_AFTER_SECONDS)})
            return
        except Exception as error:  # a failed write: retryable, and logged by the writer
            self._send(
                503,
                f"could not store the export ({type(error).__name__}); retry\n".encode(),
                "text/plain",
                {"retry-after": str(RETRY_AFTER_SECONDS)},
            )
            return
        payload, content_type = otlp.encode(response_type(), as_json)
        self._send(200, payload, content_type)

    def _authorised(self) -> bool:
        token = self.server.ingest_token
        if not token:
            return True
        supplied = self.headers.get("authorization", "")
        return hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode())

    def _body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            raise otlp.BadRequest(411, "chunked request bodies are not accepted: send content-length")
        length = int(self.headers.get("content-length") or 0)
        if length > self.server.max_body_bytes:
            self.close_connection = True
            raise otlp.BadRequest(413, f"body of {length} bytes exceeds the limit of {self.server.max_body_bytes}")
        return self.rfile.read(length)

    def _drain(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length <= self.server.max_body_bytes:
            self.rfile.read(length)
        else:
            self.close_connection = True

    def _send(self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


class HttpReceiver(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        host: str,
        port: int,
        ingest: Ingest,
        max_body_bytes: int = otlp.DEFAULT_MAX_BODY_BYTES,
        ingest_token: str | None = None,
    ):
        super().__init__((host, port), _Handler)
        self.ingest = ingest
        self.max_body_bytes = max_body_bytes
        self.ingest_token = ingest_token
        self.ready: Callable[[], bool] = lambda: True
        self.slots = threading.BoundedSemaphore(MAX_EXPORTS_IN_FLIGHT)
        self._thread = threading.Thread(target=self.serve_forever, name="spendwatch-otlp-http", daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
