"""Patching the HTTP libraries at the transport level: httpx and httpx2 here, aiohttp and urllib3 beside.

Each library is patched at the one place every request of it passes, on the class, so clients created
before instrumenting are covered, and every SDK built on it goes through: httpx and httpx2's
`HTTPTransport.handle_request` / `AsyncHTTPTransport.handle_async_request` (openai 3.x, anthropic 2.x,
google-genai 3.x, LiteLLM's sync path), aiohttp's `ClientSession._request` (`aiohttp_transport`: plain
aiohttp, openai's `DefaultAioHttpClient`, LiteLLM's async path) and urllib3's
`HTTPConnectionPool._make_request` (`urllib3_transport`: requests, botocore and boto3, urllib3 itself).

One span per HTTP request, never two when one library rides on another: each patch sits where a request
goes on the wire, and a library riding on another never reaches the patched place of both — httpx2's
aiohttp transport is not its `AsyncHTTPTransport`, requests and botocore reach urllib3 below their own
layers, and urllib3's retries and redirects each make one `_make_request`.

A module not yet imported is patched the moment it is imported (a wrapt post-import hook): importing
httpx ourselves would break apps that call `httpx2.alias_httpx()` at start-up, and would cost every app
the import.

For an LLM call the response's byte stream is wrapped: each chunk goes to the app first and to us after,
so the app sees every byte exactly as and when it would without us.
"""

from __future__ import annotations

import importlib.util
import sys
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from types import ModuleType
from typing import Any

import wrapt

from spendwatch._internal import log_internal_error
from spendwatch.instrumentation.budgets import BudgetExceeded
from spendwatch.instrumentation.call import Call, Recorder
from spendwatch.instrumentation.families.registry import may_be_llm_call
from spendwatch.instrumentation.request import Request, multipart_text_fields

_recorder: Recorder | None = None
_patched: list[tuple[type, str, Callable[..., Any]]] = []
_hooks_registered: set[str] = set()


def recorder() -> Recorder | None:
    """The recorder while instrumented; None once uninstrumented (a patch left in place calls through)."""
    return _recorder


def patch(recorder: Recorder) -> None:
    global _recorder
    _recorder = recorder
    for name in PATCHERS:
        module = sys.modules.get(name)
        if module is not None:
            _patch_module(module)
        elif name not in _hooks_registered and importlib.util.find_spec(name) is not None:
            _hooks_registered.add(name)
            wrapt.register_post_import_hook(_on_import, name)


def unpatch() -> None:
    global _recorder
    _recorder = None
    while _patched:
        cls, method_name, original = _patched.pop()
        setattr(cls, method_name, original)


def _on_import(module: ModuleType) -> None:
    if _recorder is not None:
        _patch_module(module)


def _patch_module(module: ModuleType) -> None:
    try:
        PATCHERS[module.__name__](module)
    except Exception:  # a version whose internals moved: that library goes unobserved, the app runs on
        log_internal_error()


def replace_method(cls: type, method_name: str, make_replacement: Callable[[Callable[..., Any]], Any]) -> None:
    """Put `make_replacement(original)` in place of `cls.method_name`, once, undone by `unpatch`."""
    original = cls.__dict__[method_name]
    if getattr(original, "__spendwatch_original__", None) is not None:
        return  # already patched (httpx aliased to httpx2: one class)
    replacement = make_replacement(original)
    replacement.__spendwatch_original__ = original
    setattr(cls, method_name, replacement)
    _patched.append((cls, method_name, original))


def _patch_httpx(module: ModuleType) -> None:
    sync_stream, async_stream = _observed_stream_classes(module)
    replace_method(module.HTTPTransport, "handle_request", lambda original: _sync_handler(original, sync_stream))
    replace_method(
        module.AsyncHTTPTransport, "handle_async_request", lambda original: _async_handler(original, async_stream)
    )


def _start(request: Any) -> Call | None:
    recorder = _recorder
    if recorder is None or request.method != "POST":  # before the URL, whose properties cost µs each
        return None
    try:
        url = request.url
        path = url.path
        if not may_be_llm_call("POST", path):
            return None
        query = url.query
        return recorder.start(
            Request(
                url.scheme,
                url.host,
                url.port,
                path,
                query.decode("ascii", errors="replace") if isinstance(query, bytes) else query,
                request.headers,
                body=lambda: request.content,
                form=lambda: multipart_text_fields(request.stream),
            )
        )
    except BudgetExceeded:  # an enforced budget refused the call: the app is to know
        raise
    except Exception:
        log_internal_error()
        return None


def _observe(call: Call, response: Any, stream_class: type) -> None:
    try:
        if call.on_response(response.status_code, response.headers):
            response.stream = stream_class(response.stream, call)
    except Exception:
        log_internal_error()


def _sync_handler(original: Callable[..., Any], stream_class: type) -> Callable[..., Any]:
    def handle_request(self: Any, request: Any) -> Any:
        call = _start(request)
        if call is None:
            return original(self, request)
        try:
            response = original(self, request)
        except BaseException as exc:
            call.fail(exc)
            raise
        _observe(call, response, stream_class)
        return response

    return handle_request


def _async_handler(original: Callable[..., Any], stream_class: type) -> Callable[..., Any]:
    async def handle_async_request(self: Any, request: Any) -> Any:
        call = _start(request)
        if call is None:
            return await original(self, request)
        try:
            response = await original(self, request)
        except BaseException as exc:
            call.fail(exc)
            raise
        _observe(call, response, stream_class)
        return response

    return handle_async_request


_stream_classes: dict[str, tuple[type, type]] = {}


def _observed_stream_classes(module: ModuleType) -> tuple[type, type]:
    """Stream wrappers subclassing the module's own byte-stream types, which its client asserts."""
    cached = _stream_classes.get(module.__name__)
    if cached is not None:
        return cached

    class ObservedStream(module.SyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, call: Call) -> None:
            self._inner = inner
            self._call = call
            weakref.finalize(self, call.finish)  # an app that never reads nor closes the body

        def __iter__(self) -> Iterator[bytes]:
            call = self._call
            feed = call.feed  # bound once: this loop runs for every chunk
            try:
                for chunk in self._inner:
                    call.pending = chunk
                    yield chunk
                    call.pending = None
                    feed(chunk)
            except GeneratorExit:
                call.finish()
                raise
            except BaseException as exc:
                call.fail(exc)
                raise
            call.finish()

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                self._call.finish()

    class ObservedAsyncStream(module.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, call: Call) -> None:
            self._inner = inner
            self._call = call
            weakref.finalize(self, call.finish)

        async def __aiter__(self) -> AsyncIterator[bytes]:
            call = self._call
            feed = call.feed  # bound once: this loop runs for every chunk
            try:
                async for chunk in self._inner:
                    call.pending = chunk
                    yield chunk
                    call.pending = None
                    feed(chunk)
            except GeneratorExit:
                call.finish()
                raise
            except BaseException as exc:
                call.fail(exc)
                raise
            call.finish()

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                self._call.finish()

    _stream_classes[module.__name__] = (ObservedStream, ObservedAsyncStream)
    return ObservedStream, ObservedAsyncStream


def _patch_aiohttp(module: ModuleType) -> None:
    from spendwatch.instrumentation import aiohttp_transport

    aiohttp_transport.patch(module, replace_method, recorder)


def _patch_urllib3(module: ModuleType) -> None:
    from spendwatch.instrumentation import urllib3_transport

    urllib3_transport.patch(module, replace_method, recorder)


PATCHERS: dict[str, Callable[[ModuleType], None]] = {
    "httpx": _patch_httpx,
    "httpx2": _patch_httpx,
    "aiohttp": _patch_aiohttp,
    "urllib3": _patch_urllib3,
}
