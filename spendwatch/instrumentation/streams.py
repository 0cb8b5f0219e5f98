"""Reading a response body as it passes, without holding it up or changing it.

The app receives the raw bytes first; a copy goes through the content decoding (gzip, deflate, brotli or
zstd where their modules are installed) and then one of three readers:
- `SseReader` for `text/event-stream` (OpenAI, Anthropic, Gemini `alt=sse`): one JSON value per event;
- `NdjsonReader` for `application/x-ndjson` (Ollama): one JSON value per line;
- `EventStreamReader` for `application/vnd.amazon.eventstream` (Bedrock): AWS's binary framing, one JSON
  payload per message;
- `BodyReader` for anything else: the whole body, read at the end; a body cut short (the app closed it
  early) yields the JSON values that were complete, which is how a JSON-array stream is read.
Each reader hands decoded JSON values to a callback; a value that is not JSON is skipped.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from typing import Any

import orjson

MAX_BUFFERED_BODY = 64 * 1024 * 1024  # a larger non-stream body is not parsed; its usage is estimated

_decode_json = json.JSONDecoder().raw_decode
_scan_once = json.JSONDecoder().scan_once  # raw_decode's own scanner (C), without its Python frame


class UnsupportedEncoding(Exception):
    pass


def content_decoder(content_encoding: str | None) -> Callable[[bytes], bytes] | None:
    """A function that decodes the body chunk by chunk, or None for an identity body."""
    if not content_encoding:
        return None
    decoders = [_one_decoder(coding.strip().lower()) for coding in content_encoding.split(",")]
    decoders = [decoder for decoder in reversed(decoders) if decoder is not None]
    if not decoders:
        return None
    if len(decoders) == 1:
        return decoders[0]

    def chained(data: bytes) -> bytes:
        for decoder in decoders:
            data = decoder(data)
        return data

    return chained


def _one_decoder(coding: str) -> Callable[[bytes], bytes] | None:
    if coding in ("", "identity"):
        return None
    if coding in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16).decompress
    if coding == "deflate":
        return _DeflateDecoder().decode
    if coding == "br":
        try:
            import brotli  # type: ignore[import-not-found]
        except ImportError:
            try:
                import brotlicffi as brotli  # type: ignore[import-not-found,no-redef]
            except ImportError:
                raise UnsupportedEncoding(coding) from None
        decompressor = brotli.Decompressor()
        return getattr(decompressor, "process", None) or decompressor.decompress
    if coding == "zstd":
        try:
            import zstandard  # type: ignore[import-not-found]
        except ImportError:
            raise UnsupportedEncoding(coding) from None
        return zstandard.ZstdDecompressor().decompressobj().decompress
    raise UnsupportedEncoding(coding)


class _DeflateDecoder:
    """`deflate` is zlib-wrapped by the standard, raw by some servers: try the one, fall back to the other."""

    def __init__(self) -> None:
        self._decompressor = zlib.decompressobj()
        self._first = True

    def decode(self, data: bytes) -> bytes:
        if self._first:
            self._first = False
            try:
                return self._decompressor.decompress(data)
            except zlib.error:
                self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._decompressor.decompress(data)


def json_value(data: bytes | str) -> Any:
    """One JSON value, or None. orjson first (~0.6 µs for a stream chunk, against ~1.8 µs for the standard
    library's scanner); what it refuses and JSON-as-Python-reads-it accepts (NaN, integers beyond 64 bits)
    goes to the standard library's own scanner, so either way the value is the one `json.loads` gives."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        if text[:1].isspace():
            text = text.lstrip()
        value, end = _scan_once(text, 0)
    except (ValueError, StopIteration):  # UnicodeDecodeError is a ValueError; StopIteration: no value at all
        return None
    return value if end == len(text) or text[end:].isspace() else None


class _LineReader:
    """Splits the stream into lines as it arrives, holding back only the unfinished last one."""

    def __init__(self, on_value: Callable[[Any], None]) -> None:
        self._on_value = on_value
        self._partial = b""

    def feed(self, chunk: bytes) -> None:
        if self._partial:
            chunk = self._partial + chunk
        lines = chunk.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line)

    def close(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = b""

    def _line(self, line: bytes) -> None:
        raise NotImplementedError


class SseReader(_LineReader):
    """Server-sent events: `data:` lines joined, dispatched at each blank line."""

    def __init__(self, on_value: Callable[[Any], None]) -> None:
        super().__init__(on_value)
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> None:  # the lines handled inline: this runs for every chunk of a stream
        if not self._partial and not self._data and chunk[-2:] == b"\n\n":
            # One whole event with one data line (and perhaps its name), as providers send most chunks:
            # read without splitting it into lines.
            start = chunk.find(b"\n") + 1 if chunk[:6] == b"event:" else 0
            if chunk[start : start + 6] == b"data: " and chunk.find(b"\n", start) == len(chunk) - 2:
                self._event(chunk[start + 6 : -2])
                return
        if self._partial:
            chunk = self._partial + chunk
        lines = chunk.split(b"\n")
        self._partial = lines.pop()
        data = self._data
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    self._dispatch()
                    data = self._data
            elif line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])

    def _dispatch(self) -> None:
        if not self._data:
            return
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        self._data = []
        self._event(data)

    def _event(self, data: bytes) -> None:
        """One event's data: its JSON value, handed on; OpenAI's closing `[DONE]` is not JSON."""
        if data != b"[DONE]":
            value = json_value(data)
            if value is not None:
                self._on_value(value)

    def close(self) -> None:
        partial, self._partial = self._partial, b""
        if partial:
            self.feed(partial + b"\n")
        self._dispatch()


class NdjsonReader(_LineReader):
    """Newline-delimited JSON: one value per line."""

    def _line(self, line: bytes) -> None:
        if line.strip():
            value = json_value(line)
            if value is not None:
                self._on_value(value)


class EventStreamReader:
    """AWS event-stream messages: a 12-byte prelude (total length, headers length, CRC), headers, a JSON
    payload and a CRC. We only observe, so the CRCs are left to the client; a message whose
    `:message-type` is `exception` or `error` is handed on as `{"__exception__": its type}`."""

    _PRELUDE = struct.Struct(">II")
    MAX_MESSAGE = 16 * 1024 * 1024

    def __init__(self, on_value: Callable[[Any], None]) -> None:
        self._on_value = on_value
        self._buffer = b""
        self._lost = False

    def feed(self, chunk: bytes) -> None:
        if self._lost:
            return
        buffer = self._buffer + chunk if self._buffer else chunk
        while len(buffer) >= 12:
            total, headers_length = self._PRELUDE.unpack_from(buffer)
            if total < 16 or total > self.MAX_MESSAGE or headers_length > total - 16:
                buffer = b""  # not an event stream after all: stop reading it rather than guess
                self._lost = True
                break
            if len(buffer) < total:
                break
            headers = _event_headers(buffer[12 : 12 + headers_length])
            payload = buffer[12 + headers_length : total - 4]
            buffer = buffer[total:]
            message_type = headers.get(":message-type")
            if message_type in ("exception", "error"):
                self._on_value(
                    {"__exception__": headers.get(":exception-type") or headers.get(":error-code") or "error"}
                )
                continue
            value = json_value(payload) if payload else None
            if value is not None:
                self._on_value(value)
        self._buffer = buffer

    def close(self) -> None:
        self._buffer = b""


# Value lengths of the header types: 0/1 booleans, 2 byte, 3 short, 4 int, 5 long, 8 timestamp, 9 uuid;
# 6 (bytes) and 7 (string) carry a 2-byte length.
_FIXED_HEADER_SIZES = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}


def _event_headers(data: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    position, length = 0, len(data)
    while position < length:
        name_length = data[position]
        name = data[position + 1 : position + 1 + name_length].decode("utf-8", errors="replace")
        position += 1 + name_length
        kind = data[position]
        position += 1
        if kind in (6, 7):
            (value_length,) = struct.unpack_from(">H", data, position)
            value = data[position + 2 : position + 2 + value_length]
            position += 2 + value_length
            if kind == 7:
                headers[name] = value.decode("utf-8", errors="replace")
        else:
            position += _FIXED_HEADER_SIZES.get(kind, length)
    return headers


class BodyReader:
    """A whole body, parsed once it has ended (or been cut short)."""

    def __init__(self, on_value: Callable[[Any], None]) -> None:
        self._on_value = on_value
        self._chunks: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size <= MAX_BUFFERED_BODY:
            self._chunks.append(chunk)
        else:
            self._chunks = []

    def close(self) -> None:
        if not self._chunks:
            return
        text = b"".join(self._chunks).decode("utf-8", errors="replace")
        self._chunks = []
        value = json_value(text)
        if value is not None:
            self._on_value(value)
            return
        for value in iter_json_values(text):
            self._on_value(value)


def iter_json_values(text: str):
    """The complete JSON values in `text`: NDJSON, a JSON array cut short, or concatenated values.

    Inside an (unterminated) top-level array the elements are yielded one by one.
    """
    position, length = 0, len(text)
    while position < length:
        char = text[position]
        if char in " \t\r\n,[]":
            position += 1
            continue
        try:
            value, position = _decode_json(text, position)
        except ValueError:
            return
        yield value
