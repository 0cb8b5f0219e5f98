"""The cost of a call, in the app, as the daemon prices it: from its rate cards, cached.

The daemon serves, at `POST /v1/spendwatch/prices` on its OTLP/HTTP port, a rate card for each (provider,
models, key id, tier) asked for (`spendwatch/collector/rate_cards.py`): its price data's per-token rates,
the config's own prices, the discount rule that matches the key. The budgets' background thread asks for
the cards of the calls this process has made, every few seconds and at once when a call of a kind not
seen before has ended; the request path only looks a card up and multiplies, in the daemon's own
steps and order, so the figure is the one the daemon stores, to the last bit.

A call's span then carries the semantic conventions' cost proposal (`gen_ai.usage.cost.amount`, USD,
source `local`) and `spendwatch.last_call().cost_usd` says it. There is no cost in the app (None, and no
attribute) for the first call of a kind until its card has arrived (a few milliseconds after it, with
the daemon up), while the daemon is unreachable and no card is cached, on a new UTC day until the cards
are read again, and for a call whose price is more than per-token rates (fees, modalities, a tiered price
above its first tier): the daemon prices those alone. The daemon never counts the app's figure: it prices
every call itself, and a forwarded span carries the daemon's figure.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendwatch import semconv

PRICES_PATH = "/v1/spendwatch/prices"
MAX_KINDS = 256  # kinds of call (provider, models, key, tier) a process prices itself; more: the daemon alone
FETCH_TIMEOUT_SECONDS = 2.0
_PER_MILLION = 1_000_000
_PRICE_CONTEXT = frozenset(semconv.PRICE_CONTEXT_ATTRIBUTES)
_MISSING = object()

# A kind of call: provider, response model, request model, key id, tier facts, what else it counted.
Kind = tuple[str, str | None, str | None, str | None, tuple[tuple[str, Any], ...], tuple[str, ...]]


class _Card:
    __slots__ = ("committed", "factor", "per_million", "rates", "reasoning_apart", "share", "up_to", "version")

    def __init__(self, document: dict[str, Any]) -> None:
        rates = document.get("rates")
        self.rates = tuple(Decimal(rate) for rate in rates) if rates else None
        self.per_million = _four(document.get("per_million"))
        self.committed = _four(document.get("committed_per_million"))
        up_to = document.get("up_to")
        self.up_to = float("inf") if up_to is None else float(up_to)
        self.share = float(document.get("share") or 1.0)
        factor = document.get("factor")
        self.factor = None if factor is None else float(factor)
        self.reasoning_apart = bool(document.get("reasoning_apart"))
        self.version = str(document.get("version") or "")
        if self.rates is None and self.per_million is None:
            raise ValueError("a rate card without rates")


class RateCards:
    """The daemon's rate cards for the kinds of call this process made; `cost` runs on the request path."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.token = token
        self._cards: dict[Kind, _Card | None] = {}  # None: the daemon prices this kind alone
        self._until = 0.0  # the end of the UTC day the cards hold for, in epoch seconds
        self._wanted: dict[Kind, None] = {}
        self.asked = threading.Event()  # set when a kind without a card has ended: read the cards now

    @staticmethod
    def kind(
        provider: str,
        response_model: str | None,
        request_model: str | None,
        api_key_id: str | None,
        extra: dict[str, Any],
    ) -> Kind:
        tier: tuple[tuple[str, Any], ...] = ()
        counted: tuple[str, ...] = ()
        if extra:
            tier = tuple(sorted((name, value) for name, value in extra.items() if name in _PRICE_CONTEXT))
            counted = tuple(sorted(name for name, value in extra.items() if name not in _PRICE_CONTEXT and value))
        return (provider, response_model, request_model, api_key_id, tier, counted)

    def cost(
        self,
        kind: Kind,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_tokens: int | None,
        cache_write_tokens: int | None,
        reasoning_tokens: int | None,
    ) -> tuple[float, str] | None:
        """(USD, price data version) of a call of this kind with this usage; None where the app cannot know."""
        card = self._cards.get(kind, _MISSING)
        if card is _MISSING:
            if len(self._cards) + len(self._wanted) < MAX_KINDS and kind not in self._wanted:
                self._wanted[kind] = None
                self.asked.set()
            return None
        if card is None or (input_tokens is None and output_tokens is None):
            return None
        if time.time() >= self._until:
            return None  # yesterday's cards: prices and contracts change by the day
        assert isinstance(card, _Card)
        counts = (input_tokens or 0, output_tokens or 0, cache_read_tokens or 0, cache_write_tokens or 0)
        if card.per_million is not None:
            listed = _token_cost(card.per_million, *counts)
        else:
            if (reasoning_tokens and card.reasoning_apart) or not counts[2] + counts[3] <= counts[0] <= card.up_to:
                return None
            rates = card.rates
            assert rates is not None
            uncached = counts[0] - counts[2] - counts[3]
            listed = float(uncached * rates[0] + counts[1] * rates[1] + counts[2] * rates[2] + counts[3] * rates[3])
            if card.share != 1.0:
                listed *= card.share
        if card.factor is not None:
            return listed * card.factor, card.version
        if card.committed is not None:
            return _token_cost(card.committed, *counts) + 0.0, card.version
        return listed, card.version

    # -- the background ---------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Ask the daemon for the cards of every kind seen; whether it answered."""
        wanted = list(self._wanted)
        kinds = [*self._cards, *(kind for kind in wanted if kind not in self._cards)][:MAX_KINDS]
        if not kinds:
            return True
        calls = [
            {
                "provider": provider,
                "models": [model for model in (response_model, request_model) if model],
                "api_key_id": key_id,
                "tier": dict(tier),
                "extra": list(counted),
            }
            for provider, response_model, request_model, key_id, tier, counted in kinds
        ]
        request = urllib.request.Request(
            self.url,
            data=json.dumps({"calls": calls}).encode(),
            headers={"content-type": "application/json", "accept": "application/json"},
        )
        if self.token:
            request.add_header("authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as answer:
                document = json.loads(answer.read(4 * 1024 * 1024))
            cards = document["cards"]
            day = datetime.fromisoformat(str(document["day"])).replace(tzinfo=UTC)
            found = {kind: _card(card) for kind, card in zip(kinds, cards, strict=True)}
        except Exception:  # unreachable, refused, malformed: the cards held stay, for today
            return False
        self._cards = found
        self._until = (day + timedelta(days=1)).timestamp()
        for kind in wanted:
            self._wanted.pop(kind, None)
        return True


def _card(document: Any) -> _Card | None:
    if not isinstance(document, dict) or document.get("unpriced") or not document:
        return None
    try:
        return _Card(document)
    except (ValueError, TypeError, ArithmeticError):
        return None


def _four(values: Any) -> tuple[float, float, float | None, float | None] | None:
    if not isinstance(values, list) or len(values) != 4:
        return None
    return (float(values[0]), float(values[1]), *(None if value is None else float(value) for value in values[2:]))


def _token_cost(
    rates: tuple[float, float, float | None, float | None],
    input_tokens: int,
    output_tokens: int,
    cache_read: int,
    cache_write: int,
) -> float:
    """USD for the tokens at rates per million, as the daemon's `TokenRates.cost` makes it."""
    uncached = max(input_tokens - cache_read - cache_write, 0)
    cache_read_rate = rates[0] if rates[2] is None else rates[2]
    cache_write_rate = rates[0] if rates[3] is None else rates[3]
    return (
        uncached * rates[0] + cache_read * cache_read_rate + cache_write * cache_write_rate + output_tokens * rates[1]
    ) / _PER_MILLION
