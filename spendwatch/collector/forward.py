"""Forwarding what the daemon receives to upstream OTLP endpoints (`[[forward]]`): a tracing backend,
another collector — spendwatch as one stage of an existing pipeline.

Each trace export the daemon has stored is stripped, written to a queue on disk, and sent by a thread of
its own per upstream, oldest first:

- **Stripped by default** of what the daemon itself never stores: every span's attributes (and its
  events', links' and resource's) pass the same allow-list the store uses (`attributes.py`: the semantic
  conventions' names that carry no content, the resource's identity, `[attributes] keep`) plus the names
  the store reads into its columns, and every string kept goes through the secret scrubber (`scrub.py`),
  span names and status messages too. Prompts, completions, tool arguments and keys never leave. With
  `strip = false` an upstream gets the export as it arrived.
- **On disk, bounded**: one file per export under `<db>.forward/<upstream>/`, written before the
  exporter is answered and deleted once the upstream accepted it, so a restart (or a kill) loses
  nothing queued and sends again at most what was in flight: OTLP's at-least-once. Past `max_queue_mb`
  the oldest exports are dropped, and counted.
- **Retried** with exponential backoff (honouring `Retry-After`) on what OTLP calls retryable: no
  connection, a timeout, HTTP 429/502/503/504, gRPC UNAVAILABLE, RESOURCE_EXHAUSTED and the like; any
  other refusal drops the export (it would never be accepted) and is counted and logged.

Only traces are forwarded; metric and log exports are acknowledged as before and not passed on.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spendwatch import semconv
from spendwatch.collector import scrub
from spendwatch.collector.attributes import RESOURCE_IDENTITY, KeepList, allowed
from spendwatch.collector.spans import TYPED_ATTRIBUTES

logger = logging.getLogger("spendwatch.collector")

PROTOCOLS = ("http/protobuf", "grpc")
RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0


@dataclass(frozen=True)
class Upstream:
    """One `[[forward]]` table."""

    endpoint: str
    protocol: str = "http/protobuf"
    headers: tuple[tuple[str, str], ...] = ()
    strip: bool = True
    max_queue_bytes: int = 256 * 1024 * 1024
    timeout: float = 10.0

    @property
    def directory_name(self) -> str:
        return hashlib.sha256(f"{self.protocol} {self.endpoint}".encode()).hexdigest()[:16]

    @property
    def traces_url(self) -> str:
        """OTLP/HTTP's convention: a base endpoint gets `/v1/traces`; a URL with a path is used as given."""
        scheme, _, rest = self.endpoint.partition("://")
        return self.endpoint if "/" in rest.strip("/") else f"{scheme}://{rest.rstrip('/')}/v1/traces"


# --- stripping -----------------------------------------------------------------------------------------


def _forwardable(name: str, keep: KeepList) -> bool:
    if name in TYPED_ATTRIBUTES:
        return True
    if not allowed(name, keep):
        return False
    return not (name in keep and scrub.secret_name(name))  # the user kept `app.*`, not `app.api_key`


def _scrub_any_value(value: Any, depth: int = 0) -> bool:
    """Scrub an AnyValue in place; False when it cannot be kept (nested beyond reason)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        value.string_value = scrub.scrub_text(value.string_value)
    elif kind == "array_value":
        if depth > 8:
            return False
        kept = [item for item in value.array_value.values if _scrub_any_value(item, depth + 1)]
        del value.array_value.values[:]
        value.array_value.values.extend(kept)
    elif kind == "kvlist_value":
        if depth > 8:
            return False
        kept = [
            pair
            for pair in value.kvlist_value.values
            if not scrub.secret_name(pair.key) and _scrub_any_value(pair.value, depth + 1)
        ]
        del value.kvlist_value.values[:]
        value.kvlist_value.values.extend(kept)
    elif kind == "bytes_value":
        return False
    return True


def _strip_attributes(attributes: Any, keep: KeepList, resource: bool = False) -> None:
    kept = []
    for pair in attributes:
        name = pair.key
        if resource:
            wanted = name == "service.name" or name in RESOURCE_IDENTITY or name in keep
        else:
            wanted = _forwardable(name, keep)
        if wanted and _scrub_any_value(pair.value):
            kept.append(pair)
    del attributes[:]
    attributes.extend(kept)


def strip_request(request: Any, keep: KeepList) -> Any:
    """A copy of a trace export with only what may leave: see the module's docstring."""
    copy = type(request)()
    copy.CopyFrom(request)
    for resource_spans in copy.resource_spans:
        _strip_attributes(resource_spans.resource.attributes, keep, resource=True)
        for scope_spans in resource_spans.scope_spans:
            _strip_attributes(scope_spans.scope.attributes, keep)
            for span in scope_spans.spans:
                span.name = scrub.scrub_text(span.name)
                span.trace_state = ""
                span.status.message = scrub.scrub_text(span.status.message)
                _strip_attributes(span.attributes, keep)
                for event in span.events:
                    event.name = scrub.scrub_text(event.name)
                    _strip_attributes(event.attributes, keep)
                for link in span.links:
                    link.trace_state = ""
                    _strip_attributes(link.attributes, keep)
    return copy


_COST_ATTRIBUTES = frozenset(
    {
        semconv.GEN_AI_USAGE_COST_AMOUNT,
        semconv.GEN_AI_USAGE_COST_CURRENCY,
        semconv.GEN_AI_USAGE_COST_SOURCE,
        semconv.SPENDWATCH_COST_PRICE_DATA,
    }
)


def with_costs(request: Any, costs: dict[tuple[bytes, bytes], float]) -> None:
    """The semantic conventions' cost proposal on each counted span: `gen_ai.usage.cost.amount` in USD,
    source `local`, the figure the store counts. Whatever cost a span arrived with (the app's own, from the
    daemon's rate cards, or another instrumentation's) is replaced, and a span the store does not count
    carries none: an upstream that sums the attribute counts each call once, at the stored price."""
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if any(pair.key in _COST_ATTRIBUTES for pair in span.attributes):
                    kept = [pair for pair in span.attributes if pair.key not in _COST_ATTRIBUTES]
                    del span.attributes[:]
                    span.attributes.extend(kept)
                cost = costs.get((span.trace_id, span.span_id))
                if cost is None:
                    continue
                for key, kind, value in (
                    (semconv.GEN_AI_USAGE_COST_AMOUNT, "double_value", cost),
                    (semconv.GEN_AI_USAGE_COST_CURRENCY, "string_value", "USD"),
                    (semconv.GEN_AI_USAGE_COST_SOURCE, "string_value", semconv.COST_SOURCE_LOCAL),
                ):
                    pair = span.attributes.add()
                    pair.key = key
                    setattr(pair.value, kind, value)


def count_spans(request: Any) -> int:
    return sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)


# --- the queue on disk -----------------------------------------------------------------------------------


class DiskQueue:
    """Exports as files named `<sequence>-<spans>.pb`, oldest first; bounded in bytes, oldest dropped."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for leftover in directory.glob("*.tmp"):  # a write cut short by a kill: never acknowledged
            leftover.unlink(missing_ok=True)
        self._lock = threading.Condition()
        self._files = sorted(directory.glob("*.pb"))
        self._bytes = sum(path.stat().st_size for path in self._files)
        self._next = int(self._files[-1].name.split("-")[0]) + 1 if self._files else 1

    def put(self, payload: bytes, spans: int) -> int:
        """Queue an export; returns the spans dropped to make room (oldest first, or this one if too big)."""
        dropped = 0
        with self._lock:
            if len(payload) > self.max_bytes:
                return spans
            while self._files and self._bytes + len(payload) > self.max_bytes:
                dropped += self._remove(self._files[0])
            path = self.directory / f"{self._next:020d}-{spans}.pb"
            self._next += 1
            temporary = path.with_suffix(".tmp")
            with open(temporary, "wb") as file:
                file.write(payload)
            os.replace(temporary, path)
            self._files.append(path)
            self._bytes += len(payload)
            self._lock.notify_all()
        return dropped

    def oldest(self, timeout: float) -> Path | None:
        with self._lock:
            if not self._files:
                self._lock.wait(timeout)
            return self._files[0] if self._files else None

    def done(self, path: Path) -> int:
        with self._lock:
            return self._remove(path) if path in self._files else 0

    def _remove(self, path: Path) -> int:
        self._files.remove(path)
        with contextlib.suppress(FileNotFoundError):
            self._bytes -= path.stat().st_size
            path.unlink()
        return int(path.stem.split("-")[1])

    def wake(self) -> None:
        with self._lock:
            self._lock.notify_all()

    def __len__(self) -> int:
        return len(self._files)

    @property
    def size_bytes(self) -> int:
        return self._bytes


# --- sending ---------------------------------------------------------------------------------------------


class Refused(Exception):
    """The upstream refused the export for good: never retried."""


class TryAgain(Exception):
    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class _HttpSender:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.url = upstream.traces_url

    def send(self, payload: bytes) -> None:
        headers = {"content-type": "application/x-protobuf", **dict(self.upstream.headers)}
        request = urllib.request.Request(self.url, data=payload, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.upstream.timeout) as response:
                response.read()
        except urllib.error.HTTPError as error:
            after = error.headers.get("retry-after") if error.headers else None
            if error.code in RETRYABLE_HTTP:
                raise TryAgain(f"HTTP {error.code}", float(after) if after and after.isdigit() else None) from None
            raise Refused(f"HTTP {error.code}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
            raise TryAgain(type(getattr(error, "reason", error)).__name__) from None

    def close(self) -> None:
        pass


class _GrpcSender:
    RETRYABLE = ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "ABORTED", "CANCELLED", "OUT_OF_RANGE",
                 "DATA_LOSS")  # fmt: skip

    def __init__(self, upstream: Upstream) -> None:
        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

        self._grpc = grpc
        self._request_type = trace_service_pb2.ExportTraceServiceRequest
        self.upstream = upstream
        scheme, _, target = upstream.endpoint.partition("://")
        if not target:
            scheme, target = "http", upstream.endpoint
        target = target.rstrip("/")
        if scheme == "https":
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials())
        else:
            self._channel = grpc.insecure_channel(target)
        self._stub = trace_service_pb2_grpc.TraceServiceStub(self._channel)

    def send(self, payload: bytes) -> None:
        request = self._request_type.FromString(payload)
        metadata = [(name.lower(), value) for name, value in self.upstream.headers]
        try:
            self._stub.Export(request, metadata=metadata, timeout=self.upstream.timeout)
        except self._grpc.RpcError as error:
            code = error.code().name if hasattr(error, "code") and error.code() else "UNKNOWN"
            if code in self.RETRYABLE:
                raise TryAgain(f"gRPC {code}") from None
            raise Refused(f"gRPC {code}") from None

    def close(self) -> None:
        self._channel.close()


class Forwarder:
    """One upstream: its queue on disk and the thread that empties it."""

    def __init__(self, upstream: Upstream, directory: Path) -> None:
        self.upstream = upstream
        self.queue = DiskQueue(directory / upstream.directory_name, upstream.max_queue_bytes)
        self.forwarded = 0  # spans the upstream accepted
        self.retried = 0  # sends tried again
        self.dropped = 0  # spans given up on: refused, or pushed out of a full queue
        self._stop = threading.Event()
        self._sender = _GrpcSender(upstream) if upstream.protocol == "grpc" else _HttpSender(upstream)
        self._thread = threading.Thread(target=self._run, name="spendwatch-forward", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.queue.wake()
        self._thread.join(timeout=self.upstream.timeout + 5)
        self._sender.close()

    def enqueue(self, request: Any, keep: KeepList, costs: dict[tuple[bytes, bytes], float] | None = None) -> None:
        """Queue an export the daemon stored (on the receiver's thread, before the exporter is answered),
        with `costs` (by trace and span id) on the spans the store counts."""
        message = strip_request(request, keep) if self.upstream.strip else request
        if costs:
            if message is request:
                message = type(request)()
                message.CopyFrom(request)
            with_costs(message, costs)
        dropped = self.queue.put(message.SerializeToString(), count_spans(message))
        if dropped:
            self.dropped += dropped
            logger.warning("forward to %s: queue full, dropped the oldest %d span(s)", self.upstream.endpoint, dropped)

    def stats(self) -> dict[str, Any]:
        return {
            "endpoint": self.upstream.endpoint,
            "forwarded": self.forwarded,
            "retried": self.retried,
            "dropped": self.dropped,
            "queued": len(self.queue),
            "queued_bytes": self.queue.size_bytes,
        }

    def _run(self) -> None:
        backoff = FIRST_BACKOFF_SECONDS
        while not self._stop.is_set():
            path = self.queue.oldest(timeout=1.0)
            if path is None:
                continue
            try:
                payload = path.read_bytes()
            except FileNotFoundError:  # pushed out of a full queue meanwhile
                self.queue.done(path)
                continue
            try:
                self._sender.send(payload)
            except TryAgain as error:
                self.retried += 1
                wait = error.after if error.after is not None else backoff
                logger.info("forward to %s: %s; trying again in %.1f s", self.upstream.endpoint, error, wait)
                self._stop.wait(wait)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            except Refused as error:
                self.dropped += self.queue.done(path)
                logger.error("forward to %s: refused (%s); the export is dropped", self.upstream.endpoint, error)
                continue
            except Exception as error:  # a bug of ours must not stop forwarding for good
                self.retried += 1
                logger.error("forward to %s failed: %s", self.upstream.endpoint, error)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            backoff = FIRST_BACKOFF_SECONDS
            self.forwarded += self.queue.done(path)


def start_forwarders(upstreams: list[Upstream], directory: Path) -> list[Forwarder]:
    forwarders = [Forwarder(upstream, directory) for upstream in upstreams]
    for forwarder in forwarders:
        forwarder.start()
    return forwarders
