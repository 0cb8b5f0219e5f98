"""Provider families: everything spendwatch knows about one API family, as data, one module each.

A family module exports one `FAMILY`: the hosts it answers on (each to a `gen_ai.provider.name`) and its
`Route`s — a path suffix, the operation it is, and the `Wire` that reads it: what the request asked for
(`read_request`), what a response head says (`on_headers`), and what each decoded JSON value of a body or
stream says (`observe`). How a body is framed (a JSON body, server-sent events, NDJSON, AWS event
stream) follows from its content type and is read by `streams`; the wire only sees decoded values.
A route can name its own credential (`credential`) where the key is not a plain header: Bedrock's SigV4
access key id, Vertex AI's project.

`registry.FAMILIES` lists them; the transports and the classifier consult the registry, never a name.
Adding a provider is one module here, one line in the registry and one test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


def _nothing(*args: Any) -> None:
    return None


@dataclass(slots=True)
class Wire:
    """How one API's bodies are read.

    - `read_request(call, request)`: the request's model, whether it streams, and any request-side facts
      (characters to speak, images asked for); runs once, when the call is over;
    - `observe(call, value)`: one decoded JSON value (a whole body, or one stream event);
    - `on_headers(call, headers)`: the response's head (usage some APIs put in headers).
    """

    read_request: Callable[[Any, Any], None]
    observe: Callable[[Any, Any], None]
    on_headers: Callable[[Any, Any], None] = _nothing


@dataclass(frozen=True, slots=True)
class Route:
    """An API path: the suffix that finds it, what it is, and how it is read."""

    path_suffix: str
    operation: str
    wire: Wire
    provider: str  # the provider name on a host no family names
    path_contains: str = ""  # a further part the path must hold (suffixes like `/invoke` are common words)
    credential: Callable[[Any], str | None] | None = None  # the key, where no plain header carries it
    estimate: bool = True  # a call answered without usage is estimated from its text (token-billed APIs)
    always_streams: bool = False  # a stream whatever its content type (Gemini's JSON array)


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    routes: tuple[Route, ...] = ()
    hosts: Mapping[str, str] = field(default_factory=dict)  # exact host or host:port to provider
    host_suffixes: tuple[tuple[str, str], ...] = ()  # hosts that name the customer's resource or region
    host_prefixes: tuple[tuple[str, str], ...] = ()


def request_json(request: Any) -> dict[str, Any] | None:
    """The request body as a JSON object, parsed once per call (None for anything else)."""
    cached = request.parsed
    if cached is not None:
        return cached or None
    body = request.json_body()
    request.parsed = body if isinstance(body, dict) else {}
    return request.parsed or None


def body_model(body: dict[str, Any] | None) -> str | None:
    """The `model` a JSON request body names, where the format puts it in the body."""
    model = body.get("model") if body else None
    return model if isinstance(model, str) else None


def body_streams(body: dict[str, Any] | None) -> bool:
    """Whether a JSON request body asks for a stream with `"stream": true`."""
    return bool(body and body.get("stream") is True)


def count(value: Any) -> int | None:
    """A non-negative integer count, or None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def set_parts(call: Any, parts: Mapping[str, Any]) -> None:
    """Parts of the usage priced apart (audio, images, cache writes by lifetime), each under its span
    attribute; a part is set, never added, since a stream repeats its usage; zero and odd values are left out."""
    for name, value in parts.items():
        if count(value):
            call.extra[name] = value


def set_text(call: Any, name: str, value: Any) -> None:
    """A short text fact of the response (a service tier, a speed) as a span attribute."""
    if isinstance(value, str) and 0 < len(value) <= 64:
        call.extra[name] = value
