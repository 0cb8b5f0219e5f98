"""urllib3 (and so requests, botocore and boto3): `HTTPConnectionPool._make_request`, one HTTP request.

`_make_request` sends one request on one connection and returns its response: `urlopen`'s retries and
redirects each make their own, and requests' `HTTPAdapter.send` and botocore's `URLLib3Session.send`
both end there, so a requests or boto3 call is one span, never one per layer. (urllib3 2.x; 1.x is left
unpatched.)

The response's raw bytes are observed where urllib3 reads them from the socket — `_raw_read` for a
body with a length, `_handle_chunk` for a chunked one — by methods set on that one response object, so
responses that are not LLM calls pay nothing. Each chunk is handed to us on the next read (or at the
end), after the app has had it. The span ends when the body has been read to its end, when the response
is closed, released or drained, or when it is collected. A body urllib3 preloaded (`preload_content`,
its default for direct use) is read from the response at once.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from spendwatch._internal import log_internal_error
from spendwatch.instrumentation.budgets import BudgetExceeded
from spendwatch.instrumentation.call import Call, Recorder
from spendwatch.instrumentation.families.registry import may_be_llm_call
from spendwatch.instrumentation.request import LowerHeaders, Request


def patch(module: ModuleType, replace_method: Callable[..., None], recorder_of: Callable[[], Recorder | None]) -> None:
    if not module.__version__.startswith("2."):
        return
    from urllib3 import connectionpool

    replace_method(
        connectionpool.HTTPConnectionPool,
        "_make_request",
        lambda original: _make_request_handler(original, recorder_of),
    )


def _make_request_handler(
    original: Callable[..., Any], recorder_of: Callable[[], Recorder | None]
) -> Callable[..., Any]:
    def _make_request(self: Any, conn: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        recorder = recorder_of()
        if recorder is None or method != "POST":
            return original(self, conn, method, url, *args, **kwargs)
        call = _start(recorder, self, url, args, kwargs)
        if call is None:
            return original(self, conn, method, url, *args, **kwargs)
        try:
            response = original(self, conn, method, url, *args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        _observe(call, response, kwargs)
        return response

    return _make_request


def _start(recorder: Recorder, pool: Any, url: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call | None:
    try:
        path, _, query = url.partition("?")
        if not may_be_llm_call("POST", path):
            return None
        scheme, host, port = pool.scheme, pool.host, pool.port
        if "://" in path:  # an absolute URL: a request sent through a proxy
            parts = urlsplit(url)
            scheme, host, port, path, query = parts.scheme, parts.hostname or host, parts.port, parts.path, parts.query
        body = kwargs["body"] if "body" in kwargs else (args[0] if args else None)
        headers = kwargs["headers"] if "headers" in kwargs else (args[1] if len(args) > 1 else None)
        return recorder.start(Request(scheme, host, port, path, query, LowerHeaders.of(headers), body=body))
    except BudgetExceeded:  # an enforced budget refused the call: the app is to know
        raise
    except Exception:
        log_internal_error()
        return None


def _observe(call: Call, response: Any, kwargs: dict[str, Any]) -> None:
    try:
        preloaded = getattr(response, "_body", None)
        decoded = preloaded is not None and kwargs.get("decode_content", True)
        if not call.on_response(response.status, response.headers, decoded=decoded):
            return
        if preloaded is not None:
            call.feed(preloaded)
            call.finish()
            return
        _ObservedResponse(call, response)
    except Exception:
        log_internal_error()


class _ObservedResponse:
    """Reads of one urllib3 response, seen through methods set on that instance alone."""

    def __init__(self, call: Call, response: Any) -> None:
        self.call = call
        self.reading = False  # inside a read: urllib3 releases the connection before handing the data back
        self.ended = False
        cls = type(response)
        raw_read, handle_chunk, update_chunk_length = cls._raw_read, cls._handle_chunk, cls._update_chunk_length

        def _raw_read(amt: Any = None, *args: Any, **kwargs: Any) -> bytes:
            data = self.read(raw_read, response, amt, *args, **kwargs)
            if not data or amt is None or response.length_remaining == 0:
                self.ended = True
            if self.ended:
                call.finish()
            return data

        def _handle_chunk(*args: Any, **kwargs: Any) -> bytes:
            data = self.read(handle_chunk, response, *args, **kwargs)
            if self.ended:
                call.finish()
            return data

        def _update_chunk_length(*args: Any, **kwargs: Any) -> Any:
            result = update_chunk_length(response, *args, **kwargs)
            if response.chunk_left == 0:  # the last, empty chunk: the body is over
                call.finish()
            return result

        response._raw_read = _raw_read
        response._handle_chunk = _handle_chunk
        response._update_chunk_length = _update_chunk_length
        for name in ("release_conn", "drain_conn", "close"):
            response.__dict__[name] = self._ending(getattr(cls, name), response)
        weakref.finalize(response, call.finish)

    def read(self, method: Callable[..., bytes], *args: Any, **kwargs: Any) -> bytes:
        self.reading = True
        try:
            data = method(*args, **kwargs)
        except BaseException as exc:
            self.reading = False
            self.call.fail(exc)
            raise
        self.reading = False
        self.seen(data)
        return data

    def seen(self, data: bytes | None) -> None:
        call = self.call
        pending = call.pending
        if pending:
            call.pending = None
            call.feed(pending)
        if data:
            call.pending = data  # fed on the next read or at the end: the app has it first

    def _ending(self, method: Callable[..., Any], response: Any) -> Callable[..., Any]:
        call = self.call

        def ending(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(response, *args, **kwargs)
            finally:
                if self.reading:
                    self.ended = True  # finished once the read has handed its data over
                else:
                    call.finish()

        return ending
