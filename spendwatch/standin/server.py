"""The stand-in's HTTP plumbing: routing, compression, chunked streams."""

from __future__ import annotations

import gzip
import json
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from spendwatch.standin import admin, wire

DEFAULT_REPLY = "Hello from the stand-in provider."


@dataclass(frozen=True)
class Usage:
    """A call's usage in semconv terms: input includes cache reads and writes, output includes reasoning."""

    input: int = 25
    output: int = 0  # 0: one token per streamed chunk of the reply
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0

    @classmethod
    def from_header(cls, value: str | None, default_output: int) -> Usage:
        fields: dict[str, int] = {}
        for item in (value or "").split(","):
            name, _, number = item.partition("=")
            if name.strip():
                fields[name.strip()] = int(number)
        fields.setdefault("output", default_output)
        return cls(**fields)

    def header(self) -> str:
        return ",".join(f"{name}={getattr(self, name)}" for name in self.__dataclass_fields__)


@dataclass
class Exchange:
    """One request as the wire builders see it."""

    path: str
    query: dict[str, list[str]]
    body: dict[str, Any]
    headers: Any
    serial: int

    @property
    def reply(self) -> str:
        return self.headers.get("x-standin-reply") or DEFAULT_REPLY

    @property
    def chunks(self) -> list[str]:
        count = int(self.headers.get("x-standin-chunks") or 0)
        words = self.reply.split(" ")
        pieces = [word if index == 0 else " " + word for index, word in enumerate(words)]
        if count:
            pieces = [pieces[index % len(pieces)] for index in range(count)]
        return pieces

    @property
    def usage(self) -> Usage:
        return Usage.from_header(self.headers.get("x-standin-usage"), default_output=len(self.chunks))

    @property
    def model(self) -> str:
        return self.body.get("model") or "standin-model"

    @property
    def response_model(self) -> str:
        return self.headers.get("x-standin-response-model") or self.model


@dataclass(frozen=True)
class Billed:
    """A request the stand-in answered as a provider would bill it: what the tests compare rows with."""

    serial: int
    path: str
    response_id: str | None
    model: str
    usage: Usage
    key: str | None
    at: float = field(default_factory=time.time)  # epoch seconds: the admin APIs' time buckets
    served_model: str | None = None  # the model that answered, as the provider's usage reports name it
    project: str | None = None  # OpenAI's `OpenAI-Project` header; `x-standin-workspace` for Anthropic


_KEY_HEADERS = ("x-api-key", "api-key", "x-goog-api-key")


def _credential(exchange: Exchange) -> str | None:
    for name in _KEY_HEADERS:
        if exchange.headers.get(name):
            return exchange.headers[name].strip()
    scheme, _, token = (exchange.headers.get("authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return (exchange.query.get("key") or [None])[0]


def _response_id(answer: wire.Answer) -> str | None:
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
        answer = wire.answer(exchange)
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
            self._send_json(200, answer.body)
        else:
            self._send_stream(answer.content_type, answer.events)

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

    def _send_json(self, status: int, payload: Any, extra_headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        headers = {"content-type": "application/json", **(extra_headers or {})}
        if "gzip" in (self.headers.get("accept-encoding") or ""):
            data = gzip.compress(data)
            headers["content-encoding"] = "gzip"
        if status == 429 and extra_headers is None:
            headers["retry-after"] = "0"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, content_type: str, events: list[bytes]) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            for event in events:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading early
            self.close_connection = True


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
