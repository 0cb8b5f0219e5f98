"""A request as every transport hands it over: address, headers and body, read lazily.

httpx, aiohttp and urllib3 each describe a request their own way; the call and the families see this one
shape. It is only built for a request whose method and path already look like an LLM call, so building
it is off the fast path; the body is read (and parsed) only when the call is over.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from spendwatch.instrumentation.streams import json_value

_MAX_FIELD_BYTES = 512


class Request:
    __slots__ = ("_body", "_form", "_json", "headers", "host", "parsed", "path", "port", "query", "scheme")

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int | None,
        path: str,
        query: str,
        headers: Any,
        body: bytes | Callable[[], bytes | None] | None = None,
        json_value: Any = None,
        form: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
        self.query = query
        self.headers = headers  # case-insensitive `.get(name)`; httpx's also has `.raw`
        self._body = body
        self._json = json_value  # a body the app handed over as an object (aiohttp's `json=`)
        self.parsed: dict[str, Any] | None = None
        self._form = form  # the text fields of a multipart body the library streams rather than buffers

    def body(self) -> bytes | None:
        body = self._body
        if callable(body):
            try:
                body = body()
            except Exception:  # a streamed request body that was never buffered: nothing to read
                body = None
            self._body = body
        if isinstance(body, str):
            body = body.encode("utf-8", errors="replace")
        return body if isinstance(body, bytes | bytearray | memoryview) else None

    def json_body(self) -> Any:
        if self._json is not None:
            return self._json
        content = self.body()
        if not content or bytes(content[:1]) != b"{":
            return None
        return json_value(bytes(content))

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        return value if isinstance(value, str) else None

    def query_param(self, name: str) -> str | None:
        if not self.query:
            return None
        values = parse_qs(self.query).get(name)
        return values[0] if values else None

    def form_field(self, name: str) -> str | None:
        """A text field of a multipart/form-data body (the model of an audio upload), never a file's bytes."""
        if "multipart/form-data" not in (self.header("content-type") or ""):
            return None
        if self._form is not None:
            try:
                return self._form().get(name)
            except Exception:
                return None
        content = self.body()
        if not content:
            return None
        pattern = (
            rb'name="'
            + re.escape(name.encode())
            + rb'"\r\n(?:[^\r\n]+\r\n)*\r\n([^\r\n]{0,%d})\r\n' % (_MAX_FIELD_BYTES)
        )
        found = re.search(pattern, bytes(content))
        return found.group(1).decode("utf-8", errors="replace") if found else None


def multipart_text_fields(stream: Any) -> dict[str, str]:
    """The text fields of httpx's (or httpx2's) multipart stream, whose files are never read."""
    found = {}
    for form_field in getattr(stream, "fields", None) or ():
        if type(form_field).__name__ == "DataField":
            value = form_field.value
            found[form_field.name] = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
    return found


class LowerHeaders(dict):
    """Headers of a library whose header mapping may be case-sensitive, keyed by lowercase name."""

    @classmethod
    def of(cls, headers: Any) -> LowerHeaders:
        lowered = cls()
        if not headers:
            return lowered
        items = headers.items() if hasattr(headers, "items") else headers
        for name, value in items:
            if isinstance(name, bytes):
                name = name.decode("latin-1")
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            lowered.setdefault(str(name).lower(), value)
        return lowered
