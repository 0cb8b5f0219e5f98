"""aiohttp's client: `ClientSession._request` for the request, the response's `StreamReader` for its bytes.

`_request` is where every request of every session goes (`session.post`, `session.request`, openai's
`DefaultAioHttpClient` through httpx2's aiohttp transport, LiteLLM's async path), redirects included, so
one call of it is one span. The body is observed where aiohttp's parser hands it to the response's
`StreamReader` (`feed_data`): every byte that arrived, already de-chunked and, unless the session turned
`auto_decompress` off, decompressed — whether or not the app reads it, and without standing between the
app and its reads. The span ends when the body has ended (`on_eof`), when the app closes or releases
the response early, when the connection breaks, or when the response is collected.

The `StreamReader` patch runs for every body chunk of every aiohttp response; for a response that is not
an LLM call it costs one dict lookup, and none at all while no LLM call is being read.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from types import ModuleType
from typing import Any

from spendwatch._internal import log_internal_error
from spendwatch.instrumentation.budgets import BudgetExceeded
from spendwatch.instrumentation.call import Call, Recorder
from spendwatch.instrumentation.families.registry import may_be_llm_call
from spendwatch.instrumentation.request import LowerHeaders, Request, multipart_text_fields

_streams: dict[int, Call] = {}  # id(StreamReader) of a response being observed -> its call
_responses: dict[int, int] = {}  # id(ClientResponse) -> id of its StreamReader


def patch(module: ModuleType, replace_method: Callable[..., None], recorder_of: Callable[[], Recorder | None]) -> None:
    from aiohttp import client, client_reqrep, streams

    replace_method(client.ClientSession, "_request", lambda original: _request_handler(original, recorder_of))
    replace_method(streams.StreamReader, "feed_data", _feed_data_handler)
    replace_method(streams.StreamReader, "set_exception", _set_exception_handler)
    replace_method(client_reqrep.ClientResponse, "close", _closing_handler)
    replace_method(client_reqrep.ClientResponse, "release", _closing_handler)


def _request_handler(original: Callable[..., Any], recorder_of: Callable[[], Recorder | None]) -> Callable[..., Any]:
    async def _request(self: Any, method: str, str_or_url: Any, *args: Any, **kwargs: Any) -> Any:
        recorder = recorder_of()
        if recorder is None or (method != "POST" and method.upper() != "POST"):
            return await original(self, method, str_or_url, *args, **kwargs)
        call = _start(recorder, self, str_or_url, kwargs)
        if call is None:
            return await original(self, method, str_or_url, *args, **kwargs)
        try:
            response = await original(self, method, str_or_url, *args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        _observe(call, response, self, kwargs)
        return response

    return _request


def _start(recorder: Recorder, session: Any, str_or_url: Any, kwargs: dict[str, Any]) -> Call | None:
    try:
        if isinstance(str_or_url, str):
            if not may_be_llm_call("POST", str_or_url.partition("?")[0]):
                return None
        elif not may_be_llm_call("POST", getattr(str_or_url, "path", "")):
            return None
        build_url = getattr(session, "_build_url", None)
        if build_url is not None:
            url = build_url(str_or_url)
        else:
            from yarl import URL

            url = URL(str_or_url)
        if kwargs.get("params"):
            url = url.update_query(kwargs["params"])
        headers = LowerHeaders.of(getattr(session, "_default_headers", None))
        headers.update(LowerHeaders.of(kwargs.get("headers")))
        data = kwargs.get("data")
        return recorder.start(
            Request(
                url.scheme,
                url.host or "",
                url.explicit_port if hasattr(url, "explicit_port") else url.port,
                url.path,
                url.query_string,
                headers,
                body=data if isinstance(data, bytes | bytearray | memoryview | str) else None,
                json_value=kwargs.get("json"),
                form=lambda: multipart_text_fields(data),  # httpx2's multipart stream, handed on by its transport
            )
        )
    except BudgetExceeded:  # an enforced budget refused the call: the app is to know
        raise
    except Exception:
        log_internal_error()
        return None


def _observe(call: Call, response: Any, session: Any, kwargs: dict[str, Any]) -> None:
    try:
        decompress = kwargs.get("auto_decompress")
        if decompress is None:
            decompress = getattr(session, "_auto_decompress", True)
        if not call.on_response(response.status, response.headers, decoded=bool(decompress)):
            return
        stream = response.content
        stream_key, response_key = id(stream), id(response)
        # What arrived with the head is in the buffer already, unread by the app (it has not had the
        # response yet): seen now, the rest as it is fed.
        buffered = list(getattr(stream, "_buffer", ()))
        offset = getattr(stream, "_buffer_offset", 0)
        if buffered and offset:
            buffered[0] = buffered[0][offset:]
        for chunk in buffered:
            call.feed(chunk)
        if stream.is_eof():
            call.finish()
            return
        _streams[stream_key] = call
        _responses[response_key] = stream_key
        stream.on_eof(lambda: _end(stream_key, response_key))
        weakref.finalize(response, _end, stream_key, response_key)
    except Exception:
        log_internal_error()


def _end(stream_key: int, response_key: int, exc: BaseException | None = None) -> None:
    _responses.pop(response_key, None)
    call = _streams.pop(stream_key, None)
    if call is None:
        return
    if exc is None:
        call.finish()
    else:
        call.fail(exc)


def _feed_data_handler(original: Callable[..., Any]) -> Callable[..., Any]:
    def feed_data(self: Any, data: bytes, *args: Any, **kwargs: Any) -> Any:
        result = original(self, data, *args, **kwargs)
        if _streams:
            call = _streams.get(id(self))
            if call is not None:
                call.feed(data)
        return result

    return feed_data


def _set_exception_handler(original: Callable[..., Any]) -> Callable[..., Any]:
    def set_exception(self: Any, exc: BaseException, *args: Any, **kwargs: Any) -> Any:
        result = original(self, exc, *args, **kwargs)
        if _streams and id(self) in _streams:
            for response_key, stream_key in list(_responses.items()):
                if stream_key == id(self):
                    _end(stream_key, response_key, exc)
                    break
            else:
                _end(id(self), 0, exc)
        return result

    return set_exception


def _closing_handler(original: Callable[..., Any]) -> Callable[..., Any]:
    def closing(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _responses:
            stream_key = _responses.get(id(self))
            if stream_key is not None:
                _end(stream_key, id(self))
        return original(self, *args, **kwargs)

    return closing
