"""Wire formats: one module per API family, each saying where usage lives in its bodies and streams.

Every module has the same small surface:
- `DEFAULT_PROVIDER`: the provider name for its paths on a host no table names;
- `request_model(path, body)` and `request_stream(path, body)`: what the request asked for;
- `observe(call, obj)`: read one decoded JSON value (a whole response, or one stream event) into `call`.

`observe` only reads what it needs: model, id, finish reasons, usage, and the length (never the text) of
generated text, which is all an estimate needs when a stream carries no usage.
"""

from typing import Any


def body_model(body: dict[str, Any] | None) -> str | None:
    """The `model` a JSON request body names, where the format puts it in the body."""
    model = body.get("model") if body else None
    return model if isinstance(model, str) else None


def body_streams(body: dict[str, Any] | None) -> bool:
    """Whether a JSON request body asks for a stream with `"stream": true`."""
    return bool(body and body.get("stream") is True)
