"""The stand-in's HTTP plumbing: routing, compression, chunked streams."""

from __future__ import annotations

import gzip
import json
import secrets
import sys
import threading
import time
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from spendwatch.standin import admin, routes, wire
from spendwatch.standin.exchange import Answer, Billed, Exchange

_KEY_HEADERS = ("x-api-key", "api-key", "x-goog-api-key")


def _credential(exchange: Exchange) -> str | None:
    for name in _KEY_HEADERS:
        if exchange.headers.get(name):
            return exchange.headers[name].strip()
    scheme, _, token = (exchange.headers.get("authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return (exchange.query.get("key") or [None])[0]


def _response_id(answer: Answer) -> str | None:
    """The id the answer carries: in its body, or in the first event of its stream that has one."""
    documents: list[Any] = [answer.body] if answer.events is None else []
    for event in answer.events or ():
        for line in event.decode(errors="replace").splitlines():
            text = line[len("data:") :].strip() if line.startswith("data:") else line.strip().lstrip("[,")
            try:
                documents.append(json.loads(text))
            except ValueError:
                continue
    for document in documents:
        if not isinstance(document, dict):
            continue
        for container in (document, document.get("message"), document.get("response")):
            if isinstance(container, dict):
                for name in ("id", "responseId"):
                    if isinstance(container.get(name), str):
                        return container[name]
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stall
    server: StandinServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        body = _form_fields(self.headers.get("content-type") or "", raw)
        if body is None:
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {}
        url = urlsplit(self.path)
        exchange = Exchange(url.path, parse_qs(url.query), body, self.headers, self.server.next_serial())
        self.server.record(exchange)
        status = int(self.headers.get("x-standin-status") or 200)
        if self.server.fails_now(self.headers.get("x-standin-fail-first")):
            status = status if status >= 400 else 500
        if status >= 400:
            self._send_json(status, wire.error_body(exchange, status))
            return
        answer = routes.answer(exchange)
        if answer is None:
            self._send_json(404, {"error": {"message": f"no stand-in route for {url.path}"}})
            return
        self.server.bill(
            Billed(
                exchange.serial,
                url.path,
                _response_id(answer),
                exchange.model,
                exchange.usage,
                _credential(exchange),
                served_model=exchange.response_model,
                project=self.headers.get("openai-project") or self.headers.get("x-standin-workspace"),
            )
        )
        if answer.events is None:
            self._send_json(200, answer.body, answer.headers, answer.content_type)
        else:
            self._send_stream(answer.content_type, answer.events, answer.headers)

    def do_GET(self) -> None:
        """The admin APIs (standin/admin.py): what the stand-in billed, as the providers report it."""
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        answered = self.server.admin_answer(url.path, query, self.headers)
        if answered is None:
            self._send_json(404, {"error": {"message": f"no stand-in route for {url.path}"}})
            return
        status, headers, body = answered
        self._send_json(status, body, headers)

    def _send_json(
        self, status: int, payload: Any, extra: dict[str, str] | None = None, content_type: str = "application/json"
    ) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"content-type": content_type, **(extra or {})}
        if "gzip" in (self.headers.get("accept-encoding") or ""):
            data = gzip.compress(data)
            headers["content-encoding"] = "gzip"
        if status == 429 and extra is None:
            headers["retry-after"] = "0"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, content_type: str, events: list[bytes], extra: dict[str, str] | None = None) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            for event in events:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading early
            self.close_connection = True


def _form_fields(content_type: str, raw: bytes) -> dict[str, str] | None:
    """The text fields of a multipart/form-data body (an audio upload's model and format); None otherwise."""
    if not content_type.startswith("multipart/form-data"):
        return None
    message = BytesParser(policy=default_policy).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
    )
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name and not part.get_filename():
            fields[name] = part.get_content().strip() if part.get_content_maintype() == "text" else ""
    return fields


class StandinServer(ThreadingHTTPServer):
    """`with StandinServer() as server:` serves on `server.base_url` from a background thread."""

    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0, admin_keys: dict[str, str] | None = None) -> None:
        super().__init__((host, port), _Handler)
        self._lock = threading.Lock()
        self._serial = 0
        self.requests: list[Exchange] = []
        self.billed: list[Billed] = []
        # What the admin APIs report beyond `billed`: usage the stand-in does not serve (images, a batch job).
        self.usage: list[admin.AdminUsage] = []
        self.admin = admin.AdminState(
            keys=admin_keys
            or {
                "openai": "sk-admin-standin-" + secrets.token_urlsafe(24),
                "anthropic": "sk-ant-admin01-standin-" + secrets.token_urlsafe(24),
            }
        )
        self._failures: dict[str, int] = {}
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return  # a client that hung up early: what clients do, not a stand-in failure
        super().handle_error(request, client_address)

    def next_serial(self) -> int:
        with self._lock:
            self._serial += 1
            return self._serial

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            self.requests.append(exchange)

    def bill(self, billed: Billed) -> None:
        with self._lock:
            self.billed.append(billed)

    def admin_answer(self, path: str, query: dict[str, list[str]], headers: Any) -> tuple[int, dict, Any] | None:
        with self._lock:
            records = [record for record in map(admin.usage_of, self.billed) if record is not None] + self.usage
        answered = admin.answer(self.admin, records, path, query, headers, datetime.now(UTC))
        with self._lock:
            self.admin.requests.append((time.monotonic(), path, query, answered[0] if answered else 404))
        return answered

    def fail_admin(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        """The next `times` admin requests fail with `status` (and `retry-after`, when given)."""
        with self._lock:
            self.admin.faults.extend(admin.AdminFault(status, retry_after) for _ in range(times))

    def fails_now(self, header: str | None) -> bool:
        """`x-standin-fail-first: ID=N`: the first N requests carrying ID fail (an SDK's retry then succeeds)."""
        if not header:
            return False
        name, _, count = header.partition("=")
        with self._lock:
            seen = self._failures.get(name, 0)
            self._failures[name] = seen + 1
        return seen < int(count or 1)

    def __enter__(self) -> StandinServer:
        self._thread = threading.Thread(target=self.serve_forever, name="spendwatch-standin", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.shutdown()
        self.server_close()
