"""API-key ids: which key paid for a call, without the key.

The id is a truncated SHA-256 of the key under a fixed, versioned prefix: the same key gives the same id
in every process on every machine (so ids from many services line up, and `spendwatch keys id` can name a
key a user holds), while the id cannot be turned back into the key. The hint keeps at most the key's last
four characters, and none for keys too short for four characters to be safe to show.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

_ID_PREFIX = b"spendwatch-api-key-v1:"
_ID_HEX_CHARS = 16
_HINT_MIN_KEY_LENGTH = 20

# Provider-specific key headers first: a gateway's own bearer token may travel beside them.
_KEY_HEADERS = ("x-api-key", "api-key", "x-goog-api-key")


@lru_cache(maxsize=256)
def api_key_id(key: str) -> str:
    return hashlib.sha256(_ID_PREFIX + key.encode("utf-8")).hexdigest()[:_ID_HEX_CHARS]


def api_key_hint(key: str) -> str | None:
    return key[-4:] if len(key) >= _HINT_MIN_KEY_LENGTH else None


_LOOKED_AT = (*_KEY_HEADERS, "authorization")
_RANK = {name.encode(): rank for rank, name in enumerate(_LOOKED_AT)}


def api_key_from_request(headers: Any, query_key: str | None) -> str | None:
    """The credential of a request: a provider key header, a bearer token, or Gemini's `key=` parameter."""
    raw = getattr(headers, "raw", None)
    found = _one_pass(raw) if raw is not None else [headers.get(name) for name in _LOOKED_AT]
    for value in found[:-1]:
        if value:
            return value.strip()
    authorization = found[-1]
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return query_key or None


def _one_pass(raw: list[tuple[bytes, bytes]]) -> list[str | None]:
    """The looked-at headers in one pass over httpx's raw list: its `get` scans the list once per name."""
    found: list[str | None] = [None] * len(_LOOKED_AT)
    for name, value in raw:
        rank = _RANK.get(name.lower())
        if rank is not None and found[rank] is None:
            found[rank] = value.decode("latin-1")
    return found
