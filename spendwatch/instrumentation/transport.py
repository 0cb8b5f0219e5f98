"""Patching httpx and httpx2 at the transport level.

`HTTPTransport.handle_request` and `AsyncHTTPTransport.handle_async_request` are replaced on the class,
so clients created before instrumenting are covered, and every SDK built on either library (openai 3.x,
anthropic 2.x and google-genai 3.x use httpx2) goes through them. A module not yet imported is patched
the moment it is imported (a wrapt post-import hook): importing httpx ourselves would break apps that
call `httpx2.alias_httpx()` at start-up, and would cost every app the import.

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
from spendwatch.instrumentation.call import Call, Recorder

HTTP_MODULES = ("httpx", "httpx2")

_recorder: Recorder | None = None
_patched: list[tuple[type, str, Callable[..., Any]]] = []
_hooks_registered: set[str] = set()


def patch(recorder: Recorder) -> None:
    global _recorder
    _recorder = recorder
    for name in HTTP_MODULES:
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
    sync_stream, async_stream = _observed_stream_classes(module)
    for cls, method_name, make_handler, stream_class in (
        (module.HTTPTransport, "handle_request", _sync_handler, sync_stream),
        (module.AsyncHTTPTransport, "handle_async_request", _async_handler, async_stream),
    ):
        original = cls.__dict__[method_name]
        if getattr(original, "__spendwatch_original__", None) is not None:
            continue  # httpx aliased to httpx2: one class, patched once
        handler = make_handler(original, stream_class)
        handler.__spendwatch_original__ = original
        setattr(cls, method_name, handler)
        _patched.append((cls, method_name, original))


def _start(request: Any) -> Call | None:
    recorder = _recorder
    if recorder is None:
        return None
    try:
        return recorder.start(request.method, request.url, request)
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
            try:
                for chunk in self._inner:
                    call.pending = chunk
                    yield chunk
                    call.pending = None
                    call.feed(chunk)
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
            try:
                async for chunk in self._inner:
                    call.pending = chunk
                    yield chunk
                    call.pending = None
                    call.feed(chunk)
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
