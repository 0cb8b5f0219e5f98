"""Which builder answers a request: Bedrock's paths, then the media APIs, then the providers' wire formats."""

from __future__ import annotations

from spendwatch.standin import bedrock, media, wire
from spendwatch.standin.exchange import Answer, Exchange


def answer(exchange: Exchange) -> Answer | None:
    path = exchange.path
    if "/model/" in path:
        for suffix, build in bedrock.ROUTES:
            if path.endswith(suffix):
                return build(exchange)
    for suffix, build in (*media.ROUTES, *wire.ROUTES):
        if path.endswith(suffix):
            return build(exchange)
    return None
